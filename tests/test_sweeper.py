"""al-run's sweeper composes each job's config once: its check before the sweep keeps what it
composed, and the launcher takes that instead of composing again."""

from __future__ import annotations

import importlib
import pickle

import pytest


def sweeper_module():
    """The module as Hydra found it: its plugin scan imports every ``hydra_plugins`` module
    again, so the classes in use are the ones in ``sys.modules`` after the scan."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()
    assert "hydra_plugins.al_experiments_sweeper.ComposeOnceSweeper" in plugins.class_name_to_class
    return importlib.import_module("hydra_plugins.al_experiments_sweeper")


class CountingLoader:
    """Stands in for Hydra's config loader: composes a dict and counts the compositions."""

    def __init__(self) -> None:
        self.composed: list[tuple[str, ...]] = []
        self.search_path = "kept as the loader's own"

    def load_sweep_config(self, master_config, sweep_overrides):
        if "seed=bad" in sweep_overrides:
            raise ValueError("cannot compose seed=bad")
        self.composed.append(tuple(sweep_overrides))
        return {"overrides": list(sweep_overrides), "composition": len(self.composed)}


def test_a_config_composed_for_the_check_is_handed_to_the_launcher_once():
    loader = CountingLoader()
    configs = sweeper_module().ComposedConfigs(loader)
    configs.compose_ahead({}, ["seed=1"])
    first = configs.load_sweep_config({}, ["seed=1"])
    assert first["composition"] == 1 and loader.composed == [("seed=1",)]
    # Asked again (a second launch of the same overrides), it is composed afresh.
    assert configs.load_sweep_config({}, ["seed=1"])["composition"] == 2
    assert configs.search_path == "kept as the loader's own"


def test_the_check_still_fails_on_a_config_that_cannot_be_composed():
    configs = sweeper_module().ComposedConfigs(CountingLoader())
    with pytest.raises(ValueError, match="seed=bad"):
        configs.compose_ahead({}, ["seed=bad"])


def test_at_most_so_many_configs_are_kept_and_none_travel_to_another_process():
    module = sweeper_module()
    kept = module.KEPT_CONFIGS
    loader = CountingLoader()
    configs = module.ComposedConfigs(loader)
    for seed in range(kept + 2):
        configs.compose_ahead({}, [f"seed={seed}"])
    assert len(configs._kept) == kept
    assert configs.load_sweep_config({}, [f"seed={kept + 1}"])["composition"] == kept + 3
    copy = pickle.loads(pickle.dumps(configs))
    assert copy._kept == {} and isinstance(copy._loader, CountingLoader)


def test_a_presets_sweep_axes_count_with_the_command_lines():
    from omegaconf import OmegaConf

    from al_experiments.app.callbacks import swept_with_preset
    from al_experiments.app.run_names import sweep_size

    config = OmegaConf.create({"hydra": {
        "overrides": {"task": ["+experiment=benchmark_laptop", "seed=0,2"]},
        "sweeper": {"params": {"dataset": "digits,breast_cancer", "+budget": "small,large", "seed": "range(0,4)"}},
    }})
    overrides = swept_with_preset(config)
    assert overrides == ["dataset=digits,breast_cancer", "+budget=small,large", "+experiment=benchmark_laptop", "seed=0,2"]
    assert sweep_size(overrides) == 2 * 2 * 2  # the command line's seeds, not the preset's four


def test_jobs_are_every_combination_with_a_later_value_of_a_key_winning_in_its_place():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parse = OverridesParser.create().parse_overrides
    jobs = sweeper_module().job_overrides(parse(["seed=range(0,4)", "query=random,bald", "+x=1", "seed=5,6"]))
    assert jobs == [["seed=5", "query=random", "+x=1"], ["seed=5", "query=bald", "+x=1"],
                    ["seed=6", "query=random", "+x=1"], ["seed=6", "query=bald", "+x=1"]]
    with pytest.raises(Exception, match=r"^loop.step_size=interval\(1,5\) cannot be swept"):
        sweeper_module().job_overrides(parse(["loop.step_size=interval(1,5)"]))


APP = '''
import json, os, sys
import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base="1.3", config_path=None, config_name="app")
def main(cfg):
    with open(os.path.join(sys.argv[-1].split("=", 1)[1], "jobs.txt"), "a") as out:
        out.write(json.dumps([HydraConfig.get().job.num, cfg.a, cfg.b]) + "\\n")

if __name__ == "__main__":
    from dataclasses import dataclass
    from hydra.core.config_store import ConfigStore

    @dataclass
    class Schema:  # typed, so that a=oops cannot compose
        a: int = 0
        b: str = "x"
        out: str = ""

    ConfigStore.instance().store(name="schema", node=Schema)
    ConfigStore.instance().store(name="app", node={
        "defaults": ["schema", "_self_", {"override hydra/sweeper": "compose_once"}]})
    main()
'''


def run_app(tmp_path, *overrides):
    import json
    import subprocess
    import sys

    from al_experiments import conf

    (tmp_path / "app.py").write_text(APP)
    search = f"hydra.searchpath=[pkg://{conf.__name__}]"
    done = subprocess.run([sys.executable, str(tmp_path / "app.py"), "-m", search, f"hydra.sweep.dir={tmp_path}/sweep",
                           *overrides, f"out={tmp_path}"], capture_output=True, text=True, cwd=tmp_path)
    jobs = tmp_path / "jobs.txt"
    return done, [json.loads(line) for line in jobs.read_text().splitlines()] if jobs.exists() else []


def test_a_sweep_runs_every_job_once_in_batches_of_max_batch_size(tmp_path):
    done, jobs = run_app(tmp_path, "a=1,2,3", "b=x,y", "hydra.sweeper.max_batch_size=4", "hydra.sweeper.params={a: '7,8'}")
    assert done.returncode == 0, done.stderr
    assert jobs == [[0, 1, "x"], [1, 1, "y"], [2, 2, "x"], [3, 2, "y"], [4, 3, "x"], [5, 3, "y"]]
    assert (tmp_path / "sweep" / "multirun.yaml").exists()


def test_a_job_whose_config_cannot_compose_stops_the_sweep_before_any_job_runs(tmp_path):
    done, jobs = run_app(tmp_path, "a=1,oops")
    assert done.returncode != 0 and jobs == []
    assert "oops" in done.stderr

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

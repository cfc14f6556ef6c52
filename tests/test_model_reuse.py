"""The jobs of a multirun in one process take over the last job's network where they would build
the same one (``app.reuse``), and then compute exactly what a freshly built network computes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from _app_helpers import QUICK, csv_files, run_cli
from al_experiments.app.build import build
from al_experiments.app.cli import CONF_DIR
from al_experiments.app.reuse import LAST_MODEL
from al_experiments.app.schema import register_configs

SMALL = ["loop.max_rounds=2", "model.fit.epochs=4", "model.fit.min_steps=null", "query.sample_size=4",
         "model.eval.sample_size=4"]


@pytest.fixture(autouse=True)
def hydra_conf():
    register_configs()
    GlobalHydra.instance().clear()
    LAST_MODEL.clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        yield
    GlobalHydra.instance().clear()
    LAST_MODEL.clear()


def built(*overrides: str):
    return build(compose("config", overrides=[*SMALL, *overrides]))


def results(job) -> list[tuple]:
    """Everything a round computed: training curves, test metrics, the labels it asked for."""
    return [(step["train"], step["eval"], step["indices_selected"]) for step in job.loop.rounds()]


@pytest.mark.parametrize("model", ["mc_dropout_mlp", "ensemble_mlp"])
def test_the_next_job_of_the_same_network_takes_it_over_and_computes_what_a_fresh_build_does(model):
    first = built(f"model={model}", "seed=0")
    results(first)
    # Another seed, query and training length: the network is the same, its Config is not.
    second_job = (f"model={model}", "seed=1", "query=max_entropy", "model.fit.epochs=6")
    second = built(*second_job)
    assert second.model is first.model
    taken_over = results(second)

    LAST_MODEL.clear()
    fresh = built(*second_job)
    assert fresh.model is not first.model
    assert results(fresh) == taken_over
    assert len(taken_over[0][0]["loss"]) == 6  # the second job's epochs, not the first's


@pytest.mark.parametrize("change", [
    ["model.network.hidden_units=[64]"],      # another architecture
    ["model.optimizer.learning_rate=0.01"],   # another optimizer
    ["dataset=breast_cancer"],                # another input shape and class count
])
def test_a_job_that_would_build_another_network_builds_it(change):
    first = built("seed=0")
    results(first)
    assert built("seed=0", *change).model is not first.model


def test_a_network_whose_rounds_restart_from_its_built_weights_is_never_taken_over():
    # reset=initial restores the weights the network was built with: a fresh job needs its own.
    first = built("model.wrapper.reset=initial")
    results(first)
    assert built("model.wrapper.reset=initial", "seed=1").model is not first.model


def _rows(path: Path) -> list[dict]:
    # Everything but the seconds each phase took.
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if not k.endswith("_time")}
                for row in csv.DictReader(handle, delimiter=" ")]


def test_a_sweep_job_on_a_taken_over_network_equals_the_same_job_in_its_own_process(tmp_path):
    sweep_folder, single_folder = tmp_path / "sweep", tmp_path / "single"
    sweep_folder.mkdir(), single_folder.mkdir()
    sweep = run_cli(sweep_folder, "-m", *QUICK, "seed=0,1")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    single = run_cli(single_folder, *QUICK, "seed=1")
    assert single.returncode == 0, single.stderr[-3000:]
    swept = {path.name.split("_", 1)[1]: path for path in csv_files(sweep_folder)}
    (alone,) = csv_files(single_folder)
    assert _rows(swept[alone.name.split("_", 1)[1]]) == _rows(alone)


class HandWritten:
    """A tf_al-style model with the three required methods and nothing else."""

    def reset(self, pool, dataset):
        pass

    def fit(self, inputs, targets, **kwargs):
        return {}

    def evaluate(self, inputs, targets, **kwargs):
        return {}


def test_a_model_without_renew_is_let_go_and_the_next_job_builds_its_own():
    LAST_MODEL.keep("key", HandWritten())
    assert LAST_MODEL.take("key") is None
    assert LAST_MODEL.take("key") is None  # let go, not kept for later

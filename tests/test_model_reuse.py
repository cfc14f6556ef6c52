"""The jobs of a multirun in one process take over the last job's network where they would build
the same one (``app.reuse``), and then compute exactly what a freshly built network computes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from _app_helpers import QUICK, with_store
from conftest import compose_config, in_folder

from al_experiments.app.build import build
from al_experiments.app.job import JobContext, run_job
from al_experiments.app.reuse import LAST_MODEL

SMALL = ["loop.max_rounds=2", "model.fit.epochs=4", "model.fit.min_steps=null", "query.sample_size=4",
         "model.eval.sample_size=4"]


@pytest.fixture(autouse=True)
def no_last_model():
    LAST_MODEL.clear()
    yield
    LAST_MODEL.clear()


def built(*overrides: str):
    return build(compose_config(*SMALL, *overrides))


def results(job) -> list[tuple]:
    """Everything a round computed: training curves, test metrics, the labels it asked for."""
    return [(step["train"], step["eval"], step["indices_selected"]) for step in job.loop.rounds()]


# the ensemble with 2 members of its 5: what is taken over is each member's network, however many
@pytest.mark.parametrize("model", [["model=mc_dropout_mlp"], ["model=ensemble_mlp", "model.wrapper.members=2"]],
                         ids=["mc_dropout_mlp", "ensemble_mlp"])
def test_the_next_job_of_the_same_network_takes_it_over_and_computes_what_a_fresh_build_does(model):
    first = built(*model, "seed=0")
    results(first)
    # Another seed, query and training length: the network is the same, its Config is not.
    second_job = (*model, "seed=1", "query=max_entropy", "model.fit.epochs=6")
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


def _rows(path: str) -> list[dict]:
    # Everything but the seconds each phase took.
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if not k.endswith("_time")}
                for row in csv.DictReader(handle, delimiter=" ")]


def test_a_job_on_a_taken_over_network_writes_what_a_job_on_its_own_network_writes(tmp_path, tmp_path_factory):
    """Through the whole job (sinks and CSV), as the jobs of a sweep run in one process."""
    def job(seed: int, folder: Path) -> str:
        return run_job(in_folder(compose_config(*QUICK, f"seed={seed}"), with_store(folder, tmp_path_factory)),
                       JobContext())["csv"]

    sweep_folder, single_folder = tmp_path / "sweep", tmp_path / "single"
    sweep_folder.mkdir(), single_folder.mkdir()
    job(0, sweep_folder)
    after_another = job(1, sweep_folder)  # takes over seed 0's network
    LAST_MODEL.clear()
    alone = job(1, single_folder)
    assert _rows(after_another) == _rows(alone)


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

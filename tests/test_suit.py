"""ExperimentSuit: naming, seeding and determinism, one scorer per model (B4), and the tf_al
file layout written through ExperimentSuitMetrics (files, .meta.json, locking on reconstruction).
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from al_experiments import Config, Dataset, ExperimentSuit, ExperimentSuitMetrics
from al_experiments.wrapper import McDropout

TF_AL_QUERIES = ["random", "max_entropy", "bald", "max_var_ratio", "std_mean"]


def mlp(seed: int, hidden: int = 32):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def wrap(seed: int = 0, name: str | None = None, hidden: int = 32) -> McDropout:
    cfg = Config(fit={"epochs": 3, "batch_size": 16}, query={"sample_size": 4}, eval={"sample_size": 3})
    wrapper = McDropout(mlp(seed, hidden), cfg, name=name)
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return wrapper


def metrics_only(history):
    return [{k: v for k, v in step.items() if not k.endswith("_time")} for step in history]


@pytest.fixture(scope="module")
def dataset():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, train_size=200, test_size=100, random_state=0, stratify=y)
    return Dataset(xtr, ytr, test=(xte, yte), init_size=10)


@pytest.fixture(scope="module")
def mc():
    return wrap()


# ---------------------------------------------------------------------- naming and arguments
def test_experiment_names_follow_tf_al():
    ds = Dataset(np.zeros((20, 64), np.float32), np.arange(20) % 10)
    a, b = wrap(1), wrap(2, name="wide")
    suit = ExperimentSuit([a, b], ["random", "mean_std"], ds, seed=[7, 9])
    assert suit.experiment_names() == [
        "0_7_mc_dropout_random", "0_7_mc_dropout_std_mean",
        "0_7_mc_dropout_wide_random", "0_7_mc_dropout_wide_std_mean",
        "1_9_mc_dropout_random", "1_9_mc_dropout_std_mean",
        "1_9_mc_dropout_wide_random", "1_9_mc_dropout_wide_std_mean",
    ]
    assert ExperimentSuit(a, "bald", ds, runs=2).experiment_names() == ["0_mc_dropout_bald", "1_mc_dropout_bald"]
    assert ExperimentSuit(a, "bald", ds, seed=3).experiment_names() == ["0_3_mc_dropout_bald"]


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("models", ["bald"]), {}, "Dataset"),
        ((None, "bayesian_magic"), {}, "Known names"),
        ((None, []), {}, "at least one query"),
        ((None, "bald"), {"seed": 1.5}, "seed"),
        ((None, "bald"), {"seed": np.array([1, 2])}, "seed"),
        ((None, "bald"), {"runs": 0}, "runs"),
        ((None, "bald"), {"acceptance_timeout": -1}, "acceptance_timeout"),
    ],
)
def test_bad_suit_arguments_raise(mc, dataset, args, kwargs, message):
    models, queries = args
    ds = "not a dataset" if models == "models" else dataset
    with pytest.raises(ValueError, match=message):
        ExperimentSuit(mc, queries, ds, **kwargs)


def test_unknown_suit_keyword_raises_type_error_listing_the_accepted_ones(mc, dataset):
    with pytest.raises(TypeError) as err:
        ExperimentSuit(mc, "bald", dataset, max_round=2)
    assert str(err.value) == (
        "ExperimentSuit got an unexpected keyword argument 'max_round'; it accepts: acceptance_timeout, "
        "dataset, max_rounds, metrics_accumulator, metrics_handler, models, no_save_state, query_fns, "
        "runs, seed, step_size, verbose. Did you mean 'max_rounds'?"
    )
    suit = ExperimentSuit(models=mc, query_fns="bald", dataset=dataset, step_size=2, max_rounds=1, runs=1,
                          seed=None, no_save_state=True, acceptance_timeout=None, metrics_handler=None,
                          metrics_accumulator=None, verbose=False)
    assert suit.experiment_names() == ["0_mc_dropout_bald"]


def test_models_as_tuple_raise(mc, dataset):
    with pytest.raises(ValueError, match="list"):
        ExperimentSuit((mc, mc), "bald", dataset)


# ---------------------------------------------------------------------- runs and determinism
def test_suit_with_seed_is_deterministic_and_seeds_differ(mc, dataset):
    def start(seed):
        results = ExperimentSuit(mc, ["bald", "random"], dataset, step_size=5, max_rounds=2, seed=seed).start()
        return {name: metrics_only(history) for name, history in results.items()}

    first = start(21)
    assert list(first) == ["0_21_mc_dropout_bald", "0_21_mc_dropout_random"]
    assert all(len(h) == 2 for h in first.values())
    assert start(21) == first
    other = start(22)
    assert [s["indices_selected"] for s in other["0_22_mc_dropout_bald"]] != \
           [s["indices_selected"] for s in first["0_21_mc_dropout_bald"]]


def test_suit_seed_list_reruns_each_seed_identically(mc, dataset):
    results = ExperimentSuit(mc, "max_entropy", dataset, step_size=5, max_rounds=1, seed=[4, 5, 4]).start()
    assert list(results) == ["0_4_mc_dropout_max_entropy", "1_5_mc_dropout_max_entropy",
                             "2_4_mc_dropout_max_entropy"]
    assert metrics_only(results["0_4_mc_dropout_max_entropy"]) == metrics_only(results["2_4_mc_dropout_max_entropy"])


def test_each_model_is_queried_with_its_own_network(dataset):
    """tf_al kept the first model's scorer for every model (B4)."""
    a, b = wrap(1, hidden=16), wrap(2, name="wide", hidden=48)
    calls: list[str] = []
    for wrapper, label in ((a, "a"), (b, "b")):
        original = wrapper.get_query_fn

        def spy(name, _original=original, _label=label):
            calls.append(_label)
            return _original(name)

        wrapper.get_query_fn = spy

    both = ExperimentSuit([a, b], ["bald", "max_entropy"], dataset, step_size=5, max_rounds=2, seed=3).start()
    assert calls == ["a"] * 4 + ["b"] * 4  # 2 queries x 2 rounds, each on its own model
    # Model b's experiments are exactly what b gives when run alone with the same seed.
    alone = ExperimentSuit(b, ["bald", "max_entropy"], dataset, step_size=5, max_rounds=2, seed=3).start()
    for query in ("bald", "max_entropy"):
        name = f"0_3_mc_dropout_wide_{query}"
        assert metrics_only(both[name]) == metrics_only(alone[name])
    assert metrics_only(both["0_3_mc_dropout_bald"]) != metrics_only(both["0_3_mc_dropout_wide_bald"])


def test_acceptance_prompt_does_not_block_without_a_terminal(mc, dataset, capsys):
    results = ExperimentSuit(mc, ["random", "bald"], dataset, step_size=5, max_rounds=1,
                             seed=1, acceptance_timeout=30).start()
    assert len(results) == 2  # stdin is no terminal under pytest: proceed, never wait or spin (B8)
    assert "Proceed" not in capsys.readouterr().out


# ---------------------------------------------------------------------- files
@pytest.mark.slow
def test_suit_writes_tf_al_files_and_reconstructs_them_locked(mc, dataset, tmp_path):
    seed = 20432
    handler = ExperimentSuitMetrics(str(tmp_path))
    ExperimentSuit(mc, TF_AL_QUERIES, dataset, step_size=5, max_rounds=3, seed=seed,
                   no_save_state=True, metrics_handler=handler).start()

    names = [f"0_{seed}_mc_dropout_{q}" for q in TF_AL_QUERIES]
    files = [f for f in os.listdir(tmp_path) if f != ".lock"]  # the tracking layer's directory lock
    assert sorted(files) == sorted([".meta.json"] + [n + ".csv" for n in names])
    meta = json.loads((tmp_path / ".meta.json").read_text())
    assert [e["experiment_name"] for e in meta["experiments"]] == names
    for entry, query in zip(meta["experiments"], TF_AL_QUERIES):
        assert entry["model"] == "mc_dropout" and entry["query_fn"] == query
        params = entry["params"]
        assert params["iterations"] == 3 and params["step_size"] == 5 and params["initial_size"] == 10
        assert len(params["initial_indices"]) == 10 and params["initial_indices"] == sorted(params["initial_indices"])
    # The same seed gives every strategy the same initial set.
    assert len({tuple(e["params"]["initial_indices"]) for e in meta["experiments"]}) == 1

    header = ["train_loss", "train_sparse_categorical_accuracy", "train_time", "query_time",
              "eval_sparse_categorical_crossentropy", "eval_sparse_categorical_accuracy", "eval_time",
              "indices_selected", "iteration", "labeled_pool_size", "unlabeled_pool_size"]
    for name in names:
        first_line = (tmp_path / f"{name}.csv").read_bytes().split(b"\r\n")[0].decode()
        assert first_line.split(" ") == header
        rows = handler.read(name)
        assert [r["iteration"] for r in rows] == ["1", "2", "3"]
        assert [r["labeled_pool_size"] for r in rows] == ["10", "15", "20"]
        assert [r["unlabeled_pool_size"] for r in rows] == ["185", "180", "175"]
        assert all(len(json.loads(r["indices_selected"])) == 5 for r in rows)
        assert all(len(json.loads(r["train_loss"])) == 3 for r in rows)

    reopened = ExperimentSuitMetrics(str(tmp_path))
    assert reopened.experiment_files == {n: 0 for n in names}
    extra = {"iteration": 4}
    for name in names:
        with pytest.raises(ValueError, match="locked"):
            reopened.write_line(name, extra)
    reopened.unlock(names[0])
    reopened.write_line(names[0], extra)
    with pytest.raises(ValueError, match="locked"):
        reopened.write_line(names[1], extra)
    reopened.unlock_all()
    for name in names[1:]:
        reopened.write_line(name, extra)
    assert all(len(reopened.read(n)) == 4 for n in names)

    # A second suit into the same directory must not silently append to the locked files.
    again = ExperimentSuitMetrics(str(tmp_path))
    with pytest.raises(ValueError, match="locked"):
        ExperimentSuit(mc, "random", dataset, step_size=5, max_rounds=1, seed=seed, metrics_handler=again).start()

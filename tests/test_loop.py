"""ActiveLearningLoop end to end on scikit-learn's digits: learning, iteration protocol, the step
dict, run() history, every registered query, errors (B3), determinism and no Config mutation (B19).
"""

from __future__ import annotations

import copy
import io

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from al_experiments import AcquisitionFunction, ActiveLearningLoop, Config, Dataset
from al_experiments.acquisition import available_queries
from al_experiments.wrapper import McDropout

STEP_KEYS = ["train", "train_time", "query_time", "optim", "optim_time", "eval", "eval_time", "indices_selected"]
ACC = "sparse_categorical_accuracy"


def digits_split():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y, test_size=400, random_state=0, stratify=y)


def mlp(seed: int = 0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def config(epochs: int = 100) -> Config:
    return Config(fit={"epochs": epochs, "batch_size": 16}, query={"sample_size": 5}, eval={"sample_size": 5})


def wrap(cfg: Config | None = None, seed: int = 0) -> McDropout:
    wrapper = McDropout(mlp(seed), cfg if cfg is not None else config())
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return wrapper


@pytest.fixture(scope="module")
def digits():
    return digits_split()


@pytest.fixture(scope="module")
def mc():
    """One wrapper for the module: the loop redraws its weights from (seed, round) every round."""
    return wrap()


@pytest.fixture(scope="module")
def quick():
    """A wrapper with short training for the protocol tests."""
    return wrap(config(epochs=3))


def metrics_only(history):
    """A history without the wall-clock times (which legitimately differ between runs)."""
    return [{k: v for k, v in step.items() if not k.endswith("_time")} for step in history]


# ---------------------------------------------------------------------- learning
@pytest.mark.slow
@pytest.mark.parametrize("query", ["random", "bald"])
def test_accuracy_rises_well_above_chance(digits, mc, query):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr, ytr, test=(xte, yte), init_size=10)
    history = ActiveLearningLoop(mc, ds, query, step_size=10, max_rounds=5, seed=0).run()
    accuracy = [step["eval"][ACC] for step in history]
    assert len(accuracy) == 5
    assert [step["labeled_pool_size"] for step in history] == [10, 20, 30, 40, 50]
    # Chance is 0.1; with 50 labels this MLP reaches roughly 0.7-0.85 on digits.
    assert accuracy[-1] > 0.55, accuracy
    assert np.mean(accuracy[-2:]) > accuracy[0] + 0.05, accuracy
    assert all(np.isfinite(step["eval"]["sparse_categorical_crossentropy"]) for step in history)


# ---------------------------------------------------------------------- iteration protocol
def test_len_and_tqdm_iteration_with_a_short_last_round(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:95], ytr[:95], test=(xte[:50], yte[:50]), init_size=10)
    loop = ActiveLearningLoop(quick, ds, "random", step_size=10, max_rounds=None, seed=1)
    assert len(loop) == 9  # ceil(85 unlabelled / 10)
    bar = tqdm(loop, file=io.StringIO())
    assert bar.total == 9
    steps = [step for step in bar]
    assert len(steps) == 9
    assert [len(s["indices_selected"]) for s in steps] == [10] * 8 + [5]
    selected = [i for s in steps for i in s["indices_selected"]]
    assert len(set(selected)) == 85
    assert set(selected).isdisjoint(loop.initial_indices.tolist())
    assert not loop.pool.has_unlabeled() and loop.is_done()
    assert list(loop) == []  # iterating again continues the same (exhausted) pool
    with pytest.raises(StopIteration):
        loop.step()


def test_run_history_columns_on_a_short_last_round(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:95], ytr[:95], init_size=10)
    loop = ActiveLearningLoop(quick, ds, "max_entropy", step_size=10, seed=2)
    history = loop.run()
    assert history is loop.history and len(history) == 9
    assert [s["iteration"] for s in history] == list(range(1, 10))
    # Training-set size of each round (tf_al reported 85 instead of 90 for the short last round).
    assert [s["labeled_pool_size"] for s in history] == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert [s["unlabeled_pool_size"] for s in history] == [75, 65, 55, 45, 35, 25, 15, 5, 0]
    assert [len(s["train"]["loss"]) for s in history] == [3] * 9
    assert all(s["eval"] is None and s["eval_time"] is None for s in history)  # no test set
    assert loop.collect_meta_params()["iterations"] == 9  # rounds, not 85 points (B16)


def test_copies_in_each_selected_batch_are_counted_where_the_pool_knows_them(digits, quick):
    # 30 images, each three times in the pool (copies at i, 30 + i, 60 + i): random picks of 10
    # out of 90 counted against a direct count; a pool without copy ids gets no column.
    xtr, _, ytr, _ = digits
    x, y = np.concatenate([xtr[:30]] * 3), np.concatenate([ytr[:30]] * 3)
    loop = ActiveLearningLoop(quick, Dataset(x, y, init_size=10, copy_of=np.tile(np.arange(30), 3)), "random",
                              step_size=10, max_rounds=3, seed=4)
    history = loop.run()
    for step in history:
        picked = np.asarray(step["indices_selected"]) % 30
        assert step["copies_selected"] == len(picked) - len(set(picked.tolist()))
    assert sum(step["copies_selected"] for step in history) > 0  # the count is not trivially 0
    plain = ActiveLearningLoop(quick, Dataset(x, y, init_size=10), "random", step_size=10, max_rounds=1, seed=4)
    assert "copies_selected" not in plain.run()[0]
    assert loop.collect_meta_params()["samples"] == "none"
    with pytest.raises(ValueError, match="copy_of must hold one integer id per train-pool point"):
        Dataset(x, y, copy_of=np.arange(5))


@pytest.mark.parametrize("max_rounds, expected", [(3, 3), (0, 0), (50, 9)])
def test_max_rounds_caps_len(digits, quick, max_rounds, expected):
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:100], ytr[:100], init_size=10)
    loop = ActiveLearningLoop(quick, ds, "random", step_size=10, max_rounds=max_rounds, seed=0)
    assert len(loop) == expected
    assert len(loop.run()) == expected
    assert loop.pool.get_length_labeled() == 10 + 10 * expected


def test_step_dict_keys_and_order(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:200], ytr[:200], test=(xte[:100], yte[:100]), init_size=10)
    loop = ActiveLearningLoop(quick, ds, "bald", step_size=5, max_rounds=2, seed=3)
    step = loop.step()
    assert list(step) == STEP_KEYS
    assert list(step["train"]) == ["loss", ACC]
    assert list(step["eval"]) == ["sparse_categorical_crossentropy", ACC]
    assert step["optim"] is None and step["optim_time"] is None  # no validation split
    assert all(isinstance(step[k], float) and step[k] >= 0 for k in ("train_time", "query_time", "eval_time"))
    assert len(step["indices_selected"]) == 5 and all(type(i) is int for i in step["indices_selected"])
    history = loop.run()
    assert len(history) == 2  # the round taken by hand, then the one left
    assert list(history[1]) == STEP_KEYS + ["iteration", "labeled_pool_size", "unlabeled_pool_size"]
    assert history[1]["iteration"] == 2 and history[1]["labeled_pool_size"] == 15
    assert history[0]["iteration"] == 1 and history[0]["indices_selected"] == step["indices_selected"]


def test_iterating_by_hand_records_and_resumes_like_run(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:200], ytr[:200], test=(xte[:100], yte[:100]), init_size=10)

    def loop():
        return ActiveLearningLoop(quick, ds, "max_entropy", step_size=5, max_rounds=4, seed=4)

    reference = metrics_only(loop().run())
    by_hand = loop()
    for _ in range(2):
        step = next(by_hand)
        assert list(step) == STEP_KEYS  # tf_al's step dict, as before
    assert [s["iteration"] for s in by_hand.history] == [1, 2]
    resumed = loop()
    resumed.restore(by_hand.state())  # what a checkpoint of the hand-iterated loop holds
    steps = list(resumed)
    assert len(steps) == 2
    assert metrics_only(resumed.history) == reference


def test_empty_initial_set_trains_from_round_two(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:100], ytr[:100], test=(xte[:50], yte[:50]))
    history = ActiveLearningLoop(quick, ds, "random", step_size=10, max_rounds=2, seed=0).run()
    assert history[0]["train"] is None and history[0]["train_time"] is None
    assert history[0]["labeled_pool_size"] == 0
    assert history[1]["train"] is not None and history[1]["labeled_pool_size"] == 10


def test_validation_split_feeds_the_optimize_step(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:100], ytr[:100], test=(xte[:50], yte[:50]), val=(xte[50:80], yte[50:80]), init_size=10)
    step = ActiveLearningLoop(quick, ds, "random", step_size=10, max_rounds=1, seed=0).step()
    assert list(step["optim"]) == ["sparse_categorical_crossentropy", ACC]
    assert step["optim_time"] >= 0
    # The test set is still the test set: its score is over 50 points, so a multiple of 1/50.
    assert step["eval"][ACC] * 50 == pytest.approx(round(step["eval"][ACC] * 50))


def test_init_indices_and_selected_indices_are_pool_indices(digits, quick):
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:60], ytr[:60], init_indices=[0, 59, 30])
    loop = ActiveLearningLoop(quick, ds, "std_mean", step_size=7, max_rounds=2, seed=0)
    assert loop.initial_indices.tolist() == [0, 30, 59]
    history = loop.run()
    chosen = [i for s in history for i in s["indices_selected"]]
    assert len(set(chosen)) == 14 and not {0, 30, 59} & set(chosen)
    assert sorted(chosen + [0, 30, 59]) == loop.pool.get_labeled_indices().tolist()


# ---------------------------------------------------------------------- query functions
@pytest.mark.parametrize("name", available_queries())
def test_every_registered_query_runs_one_round(digits, quick, name):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:150], ytr[:150], test=(xte[:50], yte[:50]), init_size=10)
    loop = ActiveLearningLoop(quick, ds, name, step_size=8, max_rounds=1, seed=4)
    assert loop.get_query_fn_name() == name
    assert loop.get_experiment_name() == f"mc_dropout_{name}"
    (step,) = loop.run()
    picked = step["indices_selected"]
    assert len(picked) == 8 and len(set(picked)) == 8
    assert set(picked).isdisjoint(loop.initial_indices.tolist())
    assert step["unlabeled_pool_size"] == 150 - 18
    assert 0.0 <= step["eval"][ACC] <= 1.0


def test_selection_is_the_top_scores_of_the_trained_model_best_last(digits):
    """With a deterministic wrapper the picks are exactly the top max_var_ratio scores of the
    network trained this round, in ascending score order (tf_al's "best last")."""
    from al_experiments.wrapper import Model

    xtr, _, ytr, _ = digits
    wrapper = Model(mlp(3), config(epochs=5))
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = Dataset(xtr[:120], ytr[:120], init_size=10)
    loop = ActiveLearningLoop(wrapper, ds, "max_var_ratio", step_size=5, max_rounds=1, seed=5)
    unlabelled = loop.pool.get_unlabeled_indices()
    step = loop.step()
    probs = np.asarray(wrapper.get_model()(xtr[unlabelled], training=False), dtype=np.float64)
    scores = 1.0 - probs.max(axis=1)  # tf_al's max_var_ratio
    expected = unlabelled[np.argsort(-scores, kind="stable")[:5]]
    assert step["indices_selected"] == expected[::-1].tolist()


def test_unknown_query_raises_and_lists_known_names(digits, quick):
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:50], ytr[:50], init_size=5)
    with pytest.raises(ValueError) as err:
        ActiveLearningLoop(quick, ds, "bayesian_magic", step_size=5)
    message = str(err.value)
    assert "bayesian_magic" in message
    for name in ("random", "max_entropy", "bald", "max_var_ratio", "std_mean"):
        assert name in message


def test_mean_std_is_an_alias_of_std_mean(digits, quick):
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:50], ytr[:50], init_size=5)
    loop = ActiveLearningLoop(quick, ds, "mean_std", step_size=5, max_rounds=1, seed=0)
    assert loop.get_query_fn_name() == "std_mean"  # not silently "random" (B3)
    assert AcquisitionFunction("mean_std").get_name() == "std_mean"
    assert len(loop.run()[0]["indices_selected"]) == 5


@pytest.mark.parametrize("query_fn", [["bald", "random"], ("bald",)])
def test_a_list_of_query_functions_raises(digits, quick, query_fn):
    xtr, _, ytr, _ = digits
    with pytest.raises(ValueError, match="ExperimentSuit"):
        ActiveLearningLoop(quick, Dataset(xtr[:50], ytr[:50]), query_fn)


@pytest.mark.parametrize("kwargs", [{"step_size": 0}, {"step_size": 2.5}, {"max_rounds": -1}])
def test_bad_loop_arguments_raise(digits, quick, kwargs):
    xtr, _, ytr, _ = digits
    with pytest.raises(ValueError, match="step_size|max_rounds"):
        ActiveLearningLoop(quick, Dataset(xtr[:50], ytr[:50]), "random", **kwargs)


def test_unknown_loop_keyword_raises_type_error_listing_the_accepted_ones(digits, quick):
    """tf_al ignored unknown keywords (a misspelt step size silently ran with 1)."""
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:50], ytr[:50])
    with pytest.raises(TypeError) as err:
        ActiveLearningLoop(quick, ds, "random", steps=5)
    assert str(err.value) == (
        "ActiveLearningLoop got an unexpected keyword argument 'steps'; it accepts: dataset, "
        "max_rounds, model, oracle, pseudo, query_fn, seed, step_size, verbose. Did you mean 'step_size'?"
    )
    with pytest.raises(TypeError, match="unexpected keyword arguments 'foo', 'sed'; .* Did you mean 'seed' for 'sed'"):
        ActiveLearningLoop(quick, ds, "random", foo=1, sed=3)
    loop = ActiveLearningLoop(quick, ds, "random", oracle=None, seed=4)  # the **kwargs it reads still work
    assert loop.seed == 4


def test_empty_init_indices_label_nothing(digits, quick):
    xtr, _, ytr, _ = digits
    loop = ActiveLearningLoop(quick, Dataset(xtr[:50], ytr[:50], init_indices=[]), "random", seed=0)
    assert loop.pool.get_length_labeled() == 0 and len(loop.initial_indices) == 0


def test_labels_outside_the_output_layer_raise(digits, quick):
    xtr, _, ytr, _ = digits
    with pytest.raises(ValueError, match="outside the model's 10 classes"):
        ActiveLearningLoop(quick, Dataset(xtr[:50], ytr[:50] + 5), "random")


# ---------------------------------------------------------------------- determinism, no mutation
def test_same_seed_same_indices_and_metrics_different_seed_differs(digits, quick):
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:300], ytr[:300], test=(xte[:100], yte[:100]), init_size=10)

    def run(seed, wrapper):
        return metrics_only(ActiveLearningLoop(wrapper, ds, "bald", step_size=5, max_rounds=3, seed=seed).run())

    first = run(11, quick)
    np.random.seed(123)  # the global RNG must not matter once a seed is given
    assert run(11, quick) == first
    other_wrapper = wrap(config(epochs=3), seed=77)  # other Keras initial weights, same loop seed
    assert run(11, other_wrapper) == first
    second = run(12, quick)
    assert [s["indices_selected"] for s in second] != [s["indices_selected"] for s in first]


def test_numpy_seed_makes_seedless_loops_reproducible(digits, quick):
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:200], ytr[:200], init_size=10)

    def run():
        np.random.seed(5)
        loop = ActiveLearningLoop(quick, ds, "random", step_size=5, max_rounds=2)
        return loop.initial_indices.tolist(), [s["indices_selected"] for s in loop.run()]

    assert run() == run()


def test_user_config_is_not_mutated(digits):
    cfg = Config(fit={"epochs": 2, "batch_size": 16}, query={"sample_size": 3}, eval={"sample_size": 2})
    before = copy.deepcopy(cfg.kwargs)
    wrapper = wrap(cfg)
    xtr, xte, ytr, yte = digits
    ds = Dataset(xtr[:80], ytr[:80], test=(xte[:20], yte[:20]), init_size=10)
    ActiveLearningLoop(wrapper, ds, "bald", step_size=10, max_rounds=2, seed=0).run()
    assert cfg.kwargs == before  # tf_al added step_size to cfg["query"] (B19)
    assert "step_size" not in cfg["query"]


# ---------------------------------------------------------------------- real annotation
def test_pseudo_false_asks_the_oracle_callback(digits, quick):
    xtr, xte, ytr, yte = digits
    hidden = ytr[:100]
    asked: list[list[int]] = []

    def annotator(pool, indices):
        asked.append([int(i) for i in indices])
        pool.annotate(indices, hidden[indices])

    ds = Dataset(xtr[:100], hidden, test=(xte[:30], yte[:30]), init_size=10)
    loop = ActiveLearningLoop(quick, ds, "max_entropy", step_size=5, max_rounds=2, pseudo=False,
                              oracle=annotator, seed=0)
    assert not loop.pool.is_pseudo()  # the loop does not peek at the dataset's labels
    history = loop.run()
    assert len(asked) == 3 and len(asked[0]) == 10  # initial set, then one call per round
    assert asked[1] == history[0]["indices_selected"] and asked[2] == history[1]["indices_selected"]
    labelled = loop.pool.get_labeled_indices()
    np.testing.assert_array_equal(loop.pool.get_targets_by(labelled), hidden[labelled])
    assert history[1]["labeled_pool_size"] == 15


def test_pseudo_false_without_callback_raises(digits, quick):
    xtr, _, ytr, _ = digits
    ds = Dataset(xtr[:50], ytr[:50], init_size=5)
    with pytest.raises(ValueError, match="callback"):
        ActiveLearningLoop(quick, ds, "random", step_size=5, pseudo=False)


def test_keras_fit_fallback_keeps_tf_al_train_column_order(digits):
    """A Keras callback in the fit config sends training through Keras' fit, whose history lists
    accuracy before loss; the step keeps tf_al's order (train_loss first)."""
    xtr, xte, ytr, yte = digits
    epochs_seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs_seen.append(epoch))
    cfg = Config(fit={"epochs": 2, "batch_size": 16, "callbacks": [callback]}, query={"sample_size": 2})
    wrapper = McDropout(mlp(0), cfg)
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = Dataset(xtr[:60], ytr[:60], test=(xte[:20], yte[:20]), init_size=10)
    step = ActiveLearningLoop(wrapper, ds, "bald", step_size=5, max_rounds=1, seed=0).step()
    assert epochs_seen == [0, 1]
    assert list(step["train"]) == ["loss", "accuracy"]
    assert len(step["train"]["loss"]) == 2


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_loop_with_one_hot_targets(digits, loss):
    xtr, xte, ytr, yte = digits
    eye = np.eye(10, dtype=np.float32)
    wrapper = McDropout(mlp(1), config(epochs=3))
    wrapper.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    ds = Dataset(xtr[:80], eye[ytr[:80]], test=(xte[:30], eye[yte[:30]]), init_size=10)
    loop = ActiveLearningLoop(wrapper, ds, "max_entropy", step_size=5, max_rounds=2, seed=0)
    counts = np.bincount(ytr[:80][loop.initial_indices], minlength=10)
    assert counts.tolist() == [1] * 10  # class-balanced through the one-hot rows
    history = loop.run()
    assert [list(s["eval"]) for s in history] == [[loss, "accuracy"]] * 2
    assert all(0.0 <= s["eval"]["accuracy"] <= 1.0 for s in history)


# ---------------------------------------------------------------------- resume
@pytest.mark.parametrize("reset", ["reinit", "warm", "initial"])
def test_restored_loop_continues_exactly_like_an_uninterrupted_one(digits, reset):
    """state() after round 2, through JSON, into a loop built afresh (a new process would build
    the same objects from the same config): rounds 3-4 equal the uninterrupted run's."""
    import json

    xtr, xte, ytr, yte = digits

    def build():
        model = McDropout(mlp(0), config(epochs=5), reset=reset)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=[keras.metrics.SparseCategoricalAccuracy()])
        return ActiveLearningLoop(model, Dataset(xtr, ytr, test=(xte, yte), init_size=20), "bald",
                                  step_size=10, max_rounds=4, seed=5)

    uninterrupted = metrics_only(build().run(progress=False))

    first = build()
    for _ in first.rounds():
        if first.i == 2:
            break
    state = first.state()
    model_state = state.pop("model")
    assert (model_state is not None) == (reset == "warm")
    state = json.loads(json.dumps(state))
    state["model"] = model_state

    resumed = build()
    resumed.restore(state)
    assert len(resumed) - resumed.i == 2
    history = resumed.run(progress=False)
    assert metrics_only(history) == uninterrupted


def test_restore_refuses_a_checkpoint_of_another_loop(digits, quick):
    xtr, xte, ytr, yte = digits
    loop = ActiveLearningLoop(quick, Dataset(xtr, ytr, init_size=10), "random", step_size=5, max_rounds=2, seed=1)
    loop.step()
    state = loop.state()
    other_seed = ActiveLearningLoop(quick, Dataset(xtr, ytr, init_size=10), "random", step_size=5, seed=2)
    with pytest.raises(ValueError, match="seed 1, not 2"):
        other_seed.restore(state)
    other_init = ActiveLearningLoop(quick, Dataset(xtr, ytr, init_size=12), "random", step_size=5, seed=1)
    with pytest.raises(ValueError, match="another initial labelled set"):
        other_init.restore(state)

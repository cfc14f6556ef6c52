"""Dataset: real validation split (B1), honoured init_indices (B2), documented train/test/val
sizes with stratification, and one clear sentence for each bad input."""

from __future__ import annotations

import numpy as np
import pytest

from al_experiments import ActiveLearningLoop, Dataset


def data(n: int = 100, classes: int = 4, features: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = np.arange(n) % classes
    return x, rng.permutation(y)


class RandomOnly:
    """The smallest model the loop accepts: no training, only random queries, no evaluation."""

    def reset(self, pool, dataset):
        pass

    def fit(self, x, y, **kwargs):
        return {"loss": [0.0]}

    def evaluate(self, x, y, **kwargs):
        return {"n": float(len(x))}

    def get_query_fn(self, name):
        return None

    def get_model_name(self):
        return "stub"


def test_val_is_a_real_validation_split_and_test_is_untouched():
    x, y = data()
    xt, yt = data(20, seed=1)
    xv, yv = data(8, seed=2)
    ds = Dataset(x, y, test=(xt, yt), val=(xv, yv))
    assert ds.x_test is xt and ds.y_test is yt  # tf_al replaced the test set with val
    assert ds.x_val is xv and ds.y_val is yv
    assert ds.has_test_set() and ds.has_eval_set()
    assert ds.get_split_ratio() == (100, 20, 8)
    assert ds.get_eval_split()[0] is xv
    assert ds.get_test_split()[1] is yt


def test_val_only_gives_no_test_set():
    x, y = data()
    xv, yv = data(8, seed=2)
    ds = Dataset(x, y, val=(xv, yv))
    assert not ds.has_test_set() and ds.has_eval_set()
    assert ds.get_split_ratio() == (100, 0, 8)


def test_init_indices_are_honoured_by_the_loop():
    x, y = data()
    ds = Dataset(x, y, init_indices=[5, 17, 99])
    assert ds.get_init_indices().tolist() == [5, 17, 99]
    assert ds.get_init_size() == 3
    loop = ActiveLearningLoop(RandomOnly(), ds, "random", step_size=4, max_rounds=1, seed=0)
    assert loop.pool.get_labeled_indices().tolist() == [5, 17, 99]
    assert loop.collect_meta_params()["initial_indices"] == [5, 17, 99]
    assert loop.collect_meta_params()["initial_size"] == 3


def test_init_size_gives_an_exact_class_balanced_initial_set():
    x, y = data(120, classes=4)
    ds = Dataset(x, y, init_size=10)
    loop = ActiveLearningLoop(RandomOnly(), ds, "random", step_size=5, seed=1)
    labelled = loop.pool.get_labeled_indices()
    assert len(labelled) == 10
    assert sorted(np.bincount(y[labelled], minlength=4).tolist()) == [2, 2, 3, 3]


@pytest.mark.parametrize("indices, error", [([1, 1], "duplicates"), ([100], "out of range")])
def test_bad_init_indices_raise(indices, error):
    x, y = data()
    with pytest.raises((ValueError, IndexError), match=error):
        Dataset(x, y, init_indices=indices)


@pytest.mark.parametrize("init_size", [-1, 101, 2.5, True])
def test_bad_init_size_raises(init_size):
    x, y = data()
    with pytest.raises(ValueError, match="init_size"):
        Dataset(x, y, init_size=init_size)


def test_split_sizes_with_stratification():
    x, y = data(200, classes=4)
    ds = Dataset(x, y, test_size=0.25, val_size=20, seed=3)
    n_train, n_test, n_val = ds.get_split_ratio()
    assert (n_train, n_test, n_val) == (130, 50, 20)
    # Every point lands in exactly one split.
    rows = np.concatenate([ds.x_train, ds.x_test, ds.x_val])
    assert len(np.unique(rows, axis=0)) == 200
    # Stratified: 4 balanced classes -> each split holds each class within one point of a quarter.
    for split_y, size in ((ds.y_train, 130), (ds.y_test, 50), (ds.y_val, 20)):
        counts = np.bincount(split_y, minlength=4)
        assert np.all(np.abs(counts - size / 4) <= 1), counts
    # Targets stay paired with their inputs.
    lookup = {tuple(row): label for row, label in zip(x, y)}
    assert all(lookup[tuple(row)] == label for row, label in zip(ds.x_test, ds.y_test))


def test_train_size_subsamples_the_pool():
    x, y = data(200, classes=4)
    ds = Dataset(x, y, train_size=40, test_size=40, seed=0)
    assert ds.get_split_ratio() == (40, 40, 0)
    assert np.bincount(ds.y_train, minlength=4).tolist() == [10, 10, 10, 10]
    assert not ds.has_eval_set()


def test_split_is_reproducible_by_seed():
    x, y = data(100)
    a = Dataset(x, y, test_size=0.2, seed=7)
    b = Dataset(x, y, test_size=0.2, seed=7)
    np.testing.assert_array_equal(a.x_test, b.x_test)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7"])
def test_a_split_seed_out_of_range_is_refused_before_scikit_learn_sees_it(seed):
    x, y = data(100)
    with pytest.raises(ValueError) as err:
        Dataset(x, y, test_size=0.2, seed=seed)
    assert str(err.value) == f"seed={seed!r} is invalid: it must be a whole number in [0, 4294967295] or None."


def test_the_largest_seed_splits():
    x, y = data(100)
    assert len(Dataset(x, y, test_size=0.2, val_size=0.1, train_size=50, seed=2**32 - 1).x_train) == 50


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test_size": 1.5}, r"test_size=1\.5 is invalid: it must be a number in \(0, 1\) or a whole number in \[0, 100\)\."),
        ({"test_size": 0.6, "val_size": 0.6}, "do not fit"),
        ({"val_size": -3}, r"val_size=-3 is invalid: it must be a number in \(0, 1\)"),
    ],
)
def test_impossible_split_sizes_raise(kwargs, message):
    x, y = data(100)
    with pytest.raises(ValueError, match=message):
        Dataset(x, y, **kwargs)


def test_test_and_test_size_together_raise():
    x, y = data()
    with pytest.raises(ValueError, match="not both"):
        Dataset(x, y, test=data(10), test_size=0.2)


def test_length_mismatch_raises_one_sentence():
    x, y = data()
    with pytest.raises(ValueError, match=r"Train inputs and targets differ in length \(100 vs 99\)"):
        Dataset(x, y[:99])
    with pytest.raises(ValueError, match=r"Test inputs and targets differ in length \(10 vs 9\)"):
        Dataset(x, y, test=(x[:10], y[:9]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_raise(bad):
    x, y = data()
    x = x.copy()
    x[3, 1] = bad
    with pytest.raises(ValueError, match=r"Train inputs contain 1 NaN or infinite value"):
        Dataset(x, y)
    xt, yt = data(10)
    xt[0, 0] = bad
    with pytest.raises(ValueError, match=r"Test inputs contain 1 NaN or infinite"):
        Dataset(data()[0], data()[1], test=(xt, yt))


def test_non_finite_targets_raise():
    x, y = data()
    y = y.astype(float)
    y[0] = np.nan
    with pytest.raises(ValueError, match="Train targets contain 1 NaN"):
        Dataset(x, y)


def test_shape_mismatch_between_splits_raises():
    x, y = data(features=3)
    xv, yv = data(10, features=4)
    with pytest.raises(ValueError, match=r"val inputs have shape \(4,\) per point but the train inputs \(3,\)"):
        Dataset(x, y, val=(xv, yv))


def test_split_that_is_not_a_pair_raises():
    x, y = data()
    with pytest.raises(ValueError, match=r"test= must be a pair"):
        Dataset(x, y, test=(x, y, y))


def test_error_messages_are_one_sentence():
    x, y = data()
    with pytest.raises(ValueError) as err:
        Dataset(x, y[:50])
    text = str(err.value)
    assert "\n" not in text and text.rstrip().endswith(".")


def test_one_hot_targets_count_classes():
    x, y = data(40, classes=5)
    ds = Dataset(x, np.eye(5)[y], test=(x[:10], np.eye(5)[y[:10]]))
    assert ds.num_classes() == 5
    assert Dataset(x, y).num_classes() == 5


def test_train_size_below_class_count_still_splits():
    # Too small a part to stratify (3 points, 4 classes): a plain split instead of sklearn's error.
    x, y = data(100, classes=4)
    ds = Dataset(x, y, train_size=3, test_size=0.2, seed=0)
    assert ds.get_split_ratio() == (3, 20, 0)

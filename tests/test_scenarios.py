"""Data scenarios for a pool that differs from the test distribution (the EPIG paper's), applied
by the dataset options to the pool only, and the target set drawn from the test distribution;
counted target picks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from al_experiments.app.build import build_dataset
from al_experiments.app.errors import ConfigError
from al_experiments.app.schema import register_configs, validate
from al_experiments.data.scenarios import (
    flip_labels,
    long_tail,
    ood_share,
    relabel_other,
    repeat_pool,
    split_off,
    thin_classes,
)

register_configs()


@pytest.fixture(scope="module", autouse=True)
def hydra_config():
    with initialize_config_module("al_experiments.conf", version_base=None):
        yield


def test_thin_classes_keeps_a_fraction_of_the_named_classes_only():
    y = np.repeat(np.arange(4), 100)
    x = np.arange(400)[:, None]
    xs, ys = thin_classes(x, y, [0, 2], 0.1, np.random.default_rng(0))
    assert np.bincount(ys).tolist() == [10, 100, 10, 100]
    assert np.array_equal(xs[:, 0] // 100, ys) and np.all(np.diff(xs[:, 0]) > 0)  # rows kept, in order
    assert np.bincount(thin_classes(x, y, [1], 0.001, np.random.default_rng(0))[1]).tolist() == [100, 1, 100, 100]


def test_relabel_other_maps_the_classes_of_interest_first_and_the_rest_to_one():
    np.testing.assert_array_equal(relabel_other(np.array([7, 1, 3, 1, 0, 7]), [1, 7]), [1, 0, 2, 0, 2, 1])


def test_split_off_is_stratified_and_disjoint():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    x = np.arange(100)
    (x_rest, y_rest), (x_part, y_part) = split_off(x, y, 10, np.random.default_rng(1))
    assert np.bincount(y_part).tolist() == [5, 3, 2] and len(x_rest) == 90
    assert not set(x_part) & set(x_rest) and set(x_part) | set(x_rest) == set(range(100))
    with pytest.raises(ValueError, match=r"^size=100 is invalid: it must be a whole number in \[1, 100\)\.$"):
        split_off(x, y, 100, np.random.default_rng(1))


def test_repeat_pool_gives_every_copy_its_own_noise_and_names_the_originals():
    x = np.zeros((5, 3), np.float32)
    xr, yr, copy_of = repeat_pool(x, np.arange(5), 3, 0.1, np.random.default_rng(0))
    assert xr.shape == (15, 3) and copy_of.tolist() == [0, 1, 2, 3, 4] * 3 and yr.tolist() == [0, 1, 2, 3, 4] * 3
    assert len(np.unique(xr, axis=0)) == 15  # the first copy too
    assert repeat_pool(x, np.arange(5), 1, 0.0, np.random.default_rng(0))[2] is None


def test_the_options_change_the_pool_and_keep_test_and_validation_as_the_data_has_them():
    plain, _, _ = build_dataset(compose("config", overrides=["dataset.val_size=100"]))
    unbalanced, _, _ = build_dataset(compose("config", overrides=[
        "dataset.val_size=100", "dataset.minority_classes=[0,1,2,3,4]", "dataset.minority_keep=0.1"]))
    counts = np.bincount(unbalanced.get_train_targets())
    base = np.bincount(plain.get_train_targets())
    assert np.all(np.abs(counts[:5] - 0.1 * base[:5]) <= 1) and np.array_equal(counts[5:], base[5:])
    for split in ("get_test_split", "get_eval_split"):
        for a, b in zip(getattr(plain, split)(), getattr(unbalanced, split)()):
            assert np.array_equal(a, b)
    redundant, info, _ = build_dataset(compose("config", overrides=["dataset.test_classes=[1,7]"]))
    assert info.num_classes == 3 and set(redundant.get_test_split()[1].tolist()) == {0, 1}
    assert np.bincount(redundant.get_train_targets()).tolist()[2] > 5 * np.bincount(redundant.get_train_targets())[0]
    targeted, _, _ = build_dataset(compose("config", overrides=["dataset.target_size=150"]))
    x_target, y_target = targeted.get_target_split()
    assert len(x_target) == 150 and len(targeted.get_test_split()[0]) == len(plain.get_test_split()[0]) - 150
    rows = {row.tobytes() for row in targeted.get_test_split()[0]} | {row.tobytes() for row in targeted.get_train_inputs()}
    assert not any(row.tobytes() in rows for row in x_target)  # kept apart from pool and evaluation


@pytest.mark.parametrize("overrides, match", [
    (["dataset.minority_keep=0"], r"dataset\.minority_keep=0\.0 is invalid: it must be a number in \(0, 1\]\."),
    (["dataset.target_size=2.5"], r"dataset\.target_size=2\.5 is invalid: it must be a number in \[0, 1\) or a whole count >= 1\."),
    (["query=epig", "query.options.target=test_distribution"], r"set dataset\.target_size"),
])
def test_bad_scenario_settings_are_one_sentence(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose("config", overrides=overrides))


def test_epig_on_test_distribution_targets_and_the_count_of_target_picks():
    import keras

    from al_experiments import ActiveLearningLoop, Config
    from al_experiments.acquisition import AcquisitionFunction
    from al_experiments.wrapper import McDropout

    dataset, _, _ = build_dataset(compose("config", overrides=["dataset.target_size=100", "dataset.repeat=2"]))
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input(dataset.get_train_inputs().shape[1:]), keras.layers.Flatten(),
                            keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.5),
                            keras.layers.Dense(10, activation="softmax")])
    model = McDropout(net, Config(fit={"epochs": 5}, query={"sample_size": 8}))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    for target, counted in (("test_distribution", False), ("pool", True)):
        query = AcquisitionFunction("epig", target=target, target_size=400)
        loop = ActiveLearningLoop(model, dataset, query, step_size=10, max_rounds=2, seed=0)
        for row in loop.run():
            assert ("target_picks" in row) is counted
        if counted:  # picks whose image (either copy) is among the last round's 400 pool targets
            last = loop.history[-1]
            expected = np.isin(dataset.copy_of[last["indices_selected"]], dataset.copy_of[query.last_target_indices])
            assert last["target_picks"] == int(expected.sum()) and last["target_picks"] > 0


# ----------------------------------------------------------------------------- long tail, label noise, OOD
def test_long_tail_keeps_counts_falling_exponentially_from_the_smallest_class_count():
    y = np.repeat(np.arange(3), [120, 100, 150])
    x = np.arange(len(y))
    xs, ys = long_tail(x, y, 25.0, np.random.default_rng(0))
    # n = 100 (the smallest class); ranks 0, 1, 2 keep 100, 100/5, 100/25
    assert np.bincount(ys).tolist() == [100, 20, 4]
    assert np.array_equal(y[xs], ys) and np.all(np.diff(xs) > 0)
    assert long_tail(x, y, 1.0, np.random.default_rng(0))[0] is x
    with pytest.raises(ValueError, match=r"^ratio=0\.5 is invalid: it must be a finite number >= 1\.$"):
        long_tail(x, y, 0.5, np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["symmetric", "pairwise"])
def test_flip_labels_gets_exactly_the_asked_share_wrong(kind):
    y = np.repeat(np.arange(4), 250)
    noisy, flipped = flip_labels(y, 0.2, kind, 4, np.random.default_rng(1))
    assert flipped.sum() == 200 and np.array_equal(noisy != y, flipped)
    if kind == "pairwise":
        assert np.array_equal(noisy[flipped], (y[flipped] + 1) % 4)
    else:  # every other class about equally often
        pairs = np.bincount((noisy[flipped] - y[flipped]) % 4, minlength=4)
        assert pairs[0] == 0 and pairs[1:].min() > 40
    again, _ = flip_labels(y, 0.2, kind, 4, np.random.default_rng(1))
    assert np.array_equal(again, noisy)
    assert flip_labels(y, 0.0, kind, 4, np.random.default_rng(1))[1].sum() == 0


@pytest.mark.parametrize("fraction, expected", [(0.1, (400, 44)), (0.5, (100, 100))])
def test_ood_share_thins_the_side_in_excess(fraction, expected):
    y = np.concatenate([np.zeros(300, int), np.ones(100, int), np.full(100, 2)])  # class 2 is "other"
    xs, ys = ood_share(np.arange(500), y, 2, fraction, np.random.default_rng(0))
    # 0.1: 100 OOD of 500 is too many, thinned to 44 (44 / 444); 0.5: in-distribution thinned to 100
    assert (int((ys != 2).sum()), int((ys == 2).sum())) == expected
    assert abs(np.mean(ys == 2) - fraction) < 0.01 and np.array_equal(y[xs], ys)


def test_scenario_options_shape_the_pool_and_leave_test_and_validation_true():
    base = ["dataset.val_size=100", "seed=2"]
    plain, _, plain_task = build_dataset(compose("config", overrides=base))
    tail, info, _ = build_dataset(compose("config", overrides=[*base, "dataset.imbalance_ratio=10"]))
    counts = np.bincount(tail.get_train_targets())
    smallest = np.bincount(plain.get_train_targets()).min()
    assert counts[0] == smallest and counts[-1] == round(smallest / 10)
    assert info.pool_classes.split()[0] == f"0:{smallest}"
    noisy, info, task = build_dataset(compose("config", overrides=[*base, "dataset.label_noise=0.3",
                                                                 "dataset.label_noise_kind=pairwise"]))
    wrong = noisy.get_train_targets() != plain.get_train_targets()
    assert info.flipped_labels == round(0.3 * len(wrong)) == wrong.sum()
    assert np.array_equal(np.flatnonzero(wrong), task.flipped)
    ood, info, _ = build_dataset(compose("config", overrides=[*base, "dataset.ood_classes=[8,9]",
                                                              "dataset.ood_fraction=0.25"]))
    y_pool = ood.get_train_targets()
    assert abs(np.mean(y_pool == 8) - 0.25) < 0.005 and y_pool.max() == 8  # classes 8 and 9 are one "other"
    for split in (ood.get_test_split(), ood.get_eval_split()):
        assert set(np.unique(split[1])) == set(range(8))
    for scenario in (tail, noisy):
        np.testing.assert_array_equal(scenario.get_test_split()[1], plain.get_test_split()[1])
        np.testing.assert_array_equal(scenario.get_eval_split()[1], plain.get_eval_split()[1])


@pytest.mark.parametrize("overrides, message", [
    (["dataset.imbalance_ratio=0.5"], "dataset.imbalance_ratio=0.5 is invalid: it must be a finite number >= 1."),
    (["dataset.label_noise=1.0"], "dataset.label_noise=1.0 is invalid: it must be a number in [0, 1)."),
    (["dataset.ood_fraction=0.2"], "dataset.ood_fraction needs dataset.ood_classes"),
    (["dataset.ood_classes=[1]", "dataset.test_classes=[2,3]"], "set one of them"),
])
def test_scenario_values_are_refused_with_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose("config", overrides=overrides))

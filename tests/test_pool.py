"""Pool: labelled/unlabelled state with tf_al's conventions, and its bugs fixed (B6 overshoot,
positions-instead-of-indices, float64 targets, __deepcopy__ losing the state)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from al_experiments import Pool


def labels_of(n_per_class: list[int]) -> np.ndarray:
    """Class labels with n_per_class[c] points of class c, interleaved (not sorted by class)."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    return np.random.default_rng(0).permutation(labels)


def make_pool(labels: np.ndarray, one_hot: bool = False) -> Pool:
    n = len(labels)
    inputs = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    targets = np.eye(labels.max() + 1, dtype=np.float32)[labels] if one_hot else labels
    return Pool(inputs, targets)


def class_counts(pool: Pool, labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels[pool.get_labeled_indices()], minlength=n_classes)


# ---------------------------------------------------------------------- init(n): exact, balanced
@pytest.mark.parametrize(
    "size, n_classes",
    [(7, 3), (25, 10), (20, 10), (1, 3), (3, 3), (11, 4), (0, 3)],
)
def test_init_labels_exactly_n_balanced(size, n_classes):
    labels = labels_of([30] * n_classes)
    pool = make_pool(labels)
    chosen = pool.init(size)
    assert pool.get_length_labeled() == size  # tf_al: 7 of 3 -> 8, 25 of 10 -> 26
    assert pool.get_length_unlabeled() == len(labels) - size
    assert sorted(chosen.tolist()) == pool.get_labeled_indices().tolist()
    counts = class_counts(pool, labels, n_classes)
    assert counts.sum() == size
    assert counts.max() - counts.min() <= 1


def test_init_balanced_with_one_hot_targets():
    labels = labels_of([20, 20, 20, 20])
    pool = make_pool(labels, one_hot=True)
    pool.init(10)
    counts = class_counts(pool, labels, 4)
    assert counts.sum() == 10
    assert sorted(counts.tolist()) == [2, 2, 3, 3]


def test_init_rare_class_gives_surplus_to_others():
    # Class 0 has only 2 points: it gives everything it has, the rest is spread evenly.
    labels = labels_of([2, 30, 30])
    pool = make_pool(labels)
    pool.init(12)
    counts = class_counts(pool, labels, 3)
    assert counts.tolist() == [2, 5, 5]


@pytest.mark.parametrize(
    "per_class, size, expected",
    [([1, 6, 6], 11, [1, 5, 5]), ([2, 3, 10, 10], 17, [2, 3, 6, 6]), ([4, 4], 8, [4, 4])],
)
def test_init_water_fills_rare_classes(per_class, size, expected):
    # The remainder after a rare class runs out is shared evenly, never twice to one class.
    for seed in range(10):
        labels = labels_of(per_class)
        pool = make_pool(labels)
        pool.init(size, rng=np.random.default_rng(seed))
        assert class_counts(pool, labels, len(per_class)).tolist() == expected


def test_init_can_exhaust_classes_without_looping_forever():
    labels = labels_of([1, 2, 3])
    pool = make_pool(labels)
    pool.init(6)  # tf_al looped forever once a class ran out
    assert pool.get_length_labeled() == 6
    assert not pool.has_unlabeled()
    assert pool.init(0).tolist() == []  # an empty request on a full pool is a no-op
    with pytest.raises(ValueError, match="only 0 are unlabelled"):
        pool.init(1)


def test_init_accepts_numpy_integer_sizes():
    labels = labels_of([10, 10])
    for size in (np.int64(4), np.int32(4), np.uint8(4)):
        pool = make_pool(labels)
        pool.init(size)
        assert pool.get_length_labeled() == 4


@pytest.mark.parametrize("size", [-1, 61, 1000])
def test_init_impossible_size_raises_clear_error(size):
    pool = make_pool(labels_of([30, 30]))
    with pytest.raises(ValueError, match=r"initial|^size=-1 is invalid: it must be a whole number >= 0\.$"):
        pool.init(size)
    assert pool.get_length_labeled() == 0


@pytest.mark.parametrize("size", [2.5, "3", None, True])
def test_init_wrong_type_raises(size):
    pool = make_pool(labels_of([5, 5]))
    with pytest.raises(ValueError):
        pool.init(size)


def test_init_without_known_targets_raises():
    pool = Pool(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="Oracle"):
        pool.init(2)


def test_init_is_reproducible_under_numpy_seed():
    labels = labels_of([30, 30, 30])
    np.random.seed(5)
    a = make_pool(labels).init(9)
    np.random.seed(5)
    b = make_pool(labels).init(9)
    assert a.tolist() == b.tolist()


# ---------------------------------------------------------------------- init(indices): absolute
def test_init_with_explicit_indices_are_absolute_pool_indices():
    labels = labels_of([5, 5])
    pool = make_pool(labels)
    pool.annotate([0, 1, 2])
    pool.init([3, 7])  # tf_al read these as positions among the unlabelled: 6 and 10
    assert pool.get_labeled_indices().tolist() == [0, 1, 2, 3, 7]


def test_init_with_array_and_duplicates_and_labelled():
    pool = make_pool(labels_of([5, 5]))
    pool.init(np.array([9, 4]))
    assert pool.get_labeled_indices().tolist() == [4, 9]
    with pytest.raises(ValueError, match="duplicate"):
        pool.init([1, 1])
    with pytest.raises(ValueError, match="already labelled"):
        pool.init([4])
    with pytest.raises(IndexError):
        pool.init([10])
    assert pool.get_labeled_indices().tolist() == [4, 9]


@pytest.mark.parametrize("empty", [[], (), np.array([], dtype=int), np.array([])])
def test_init_with_an_empty_index_list_raises_index_error_as_tf_al(empty):
    pool = make_pool(labels_of([3, 3]))
    with pytest.raises(IndexError, match="empty list of indices; pass the pool indices to label, or a number"):
        pool.init(empty)
    assert pool.get_length_labeled() == 0
    assert pool.init(0).tolist() == []  # the way to label nothing


def test_annotate_with_no_indices_is_a_no_op_as_in_tf_al():
    pool = make_pool(labels_of([3, 3]))
    pool.annotate([])
    pool.annotate(np.array([], dtype=int), np.array([]))
    assert pool.get_length_labeled() == 0 and pool.get_labelling_order().tolist() == []


# ---------------------------------------------------------------------- a single index
def test_annotate_a_single_index_with_a_single_target():
    pool = Pool(np.arange(12.0).reshape(6, 2))
    pool.annotate(3, 5)  # raised "got 1 indices but targets of shape ()"
    pool.annotate([1], 7)
    pool.annotate(np.int64(4), np.array([2]))
    pool[0] = 9
    assert pool.get_labeled_indices().tolist() == [0, 1, 3, 4]
    assert pool.get_targets_by([0, 1, 3, 4]).tolist() == [9, 7, 5, 2]
    with pytest.raises(ValueError, match="got 2 indices but targets of shape \\(\\); pass one target per index"):
        pool.annotate([2, 5], 1)  # a scalar for several points stays an error
    with pytest.raises(IndexError, match="out of range"):
        pool.annotate(6, 1)


def test_annotate_a_single_index_with_a_one_hot_target():
    pool = Pool(np.zeros((4, 1)), np.eye(3)[[0, 1, 2, 0]])
    pool.annotate(2, np.array([0.0, 0.0, 1.0]))
    pool[1] = [0.0, 1.0, 0.0]
    assert pool.get_labeled_indices().tolist() == [1, 2]
    np.testing.assert_array_equal(pool.get_targets_by([1, 2]), [[0, 1, 0], [0, 0, 1]])


def test_getters_index_like_numpy_a_list_keeps_the_axis_a_single_index_drops_it():
    labels = labels_of([3, 3])
    pool = make_pool(labels)
    pool.annotate(4)
    inputs = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert pool.get_inputs_by(4).tolist() == inputs[4].tolist()  # shape (2,), as tf_al's inputs[4]
    assert pool.get_inputs_by([4]).tolist() == [inputs[4].tolist()]
    assert pool.get_targets_by(4) == labels[4] and pool.get_targets_by([4]).tolist() == [labels[4]]
    assert pool.get_true_targets_by(np.int64(5)) == labels[5]
    assert pool.get_inputs_by([]).shape == (0, 2)
    for getter in (pool.get_inputs_by, pool.get_targets_by, pool.get_true_targets_by):
        with pytest.raises(IndexError, match="out of range"):
            getter(6)
        with pytest.raises(IndexError, match="out of range"):
            getter([0, 7])


# ---------------------------------------------------------------------- state conventions
def test_get_indices_minus_one_convention():
    pool = make_pool(labels_of([3, 3]))
    assert pool.get_indices().tolist() == [0, 1, 2, 3, 4, 5]
    pool.annotate([1, 4])
    assert pool.get_indices().tolist() == [0, -1, 2, 3, -1, 5]
    assert pool.get_labeled_indices().tolist() == [1, 4]
    assert pool.get_unlabeled_indices().tolist() == [0, 2, 3, 5]
    assert pool.get_length_labeled() == 2 and pool.get_length_unlabeled() == 4
    assert pool.has_labeled() and pool.has_unlabeled()


def test_unlabeled_data_gives_inputs_and_pool_indices():
    pool = make_pool(labels_of([3, 3]))
    pool.annotate([0, 5])
    inputs, indices = pool.get_unlabeled_data()
    assert indices.tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(inputs, pool.get_inputs_by([1, 2, 3, 4]))


def test_labeled_data_gives_true_targets():
    labels = labels_of([3, 3])
    pool = make_pool(labels)
    pool.annotate([2, 3])
    inputs, targets = pool.get_labeled_data()
    assert inputs.shape == (2, 2)
    assert targets.tolist() == labels[[2, 3]].tolist()


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_labelled_integer_targets_keep_their_dtype(dtype):
    labels = labels_of([4, 4]).astype(dtype)
    pool = Pool(np.zeros((8, 3)), labels)
    pool.init(4)
    _, targets = pool.get_labeled_data()
    assert targets.dtype == dtype  # tf_al: float64
    assert pool.get_targets_by(pool.get_labeled_indices()).dtype == dtype


def test_labelled_one_hot_targets_keep_dtype_and_shape():
    labels = labels_of([4, 4, 4])
    pool = make_pool(labels, one_hot=True)
    pool.init(6)
    _, targets = pool.get_labeled_data()
    assert targets.dtype == np.float32 and targets.shape == (6, 3)
    np.testing.assert_array_equal(targets.argmax(1), labels[pool.get_labeled_indices()])


def test_annotate_with_explicit_targets_and_setitem():
    pool = Pool(np.zeros((4, 1)))
    assert not pool.is_pseudo()
    pool.annotate([0, 2], np.array([7, 9]))
    pool[[3]] = np.array([1])
    assert pool.get_labeled_indices().tolist() == [0, 2, 3]
    assert pool.get_targets_by([0, 2, 3]).tolist() == [7, 9, 1]


def test_annotate_without_known_targets_needs_targets():
    pool = Pool(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="targets"):
        pool.annotate([1])
    with pytest.raises(ValueError, match="one target per index"):
        pool.annotate([1, 2], np.array([1]))


def test_pool_length_mismatch_raises():
    with pytest.raises(ValueError, match="5 inputs but 4 targets"):
        Pool(np.zeros((5, 2)), np.zeros(4))


def test_deepcopy_keeps_state_and_is_independent():
    labels = labels_of([5, 5])
    pool = make_pool(labels)
    pool.annotate([3, 1])
    clone = copy.deepcopy(pool)
    assert clone.get_labeled_indices().tolist() == [1, 3]  # tf_al: fresh, unlabelled pool
    assert clone.get_labelling_order().tolist() == [3, 1]
    assert clone.get_targets_by([1, 3]).tolist() == labels[[1, 3]].tolist()
    clone.annotate([0])
    assert pool.get_labeled_indices().tolist() == [1, 3]
    assert clone.get_labeled_indices().tolist() == [0, 1, 3]
    pool.annotate([9])
    assert 9 not in clone.get_labeled_indices()


# ---------------------------------------------------------------------- properties
operation = st.one_of(
    st.tuples(st.just("init"), st.integers(0, 12)),
    st.tuples(st.just("annotate"), st.lists(st.integers(0, 39), max_size=6)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    per_class=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    ops=st.lists(operation, max_size=8),
)
def test_random_operation_sequences_keep_the_pool_consistent(per_class, ops):
    labels = labels_of(per_class)
    n = len(labels)
    pool = make_pool(labels)
    expected_order: list[int] = []
    for kind, arg in ops:
        unlabelled_before = pool.get_length_unlabeled()
        if kind == "init":
            if arg > unlabelled_before:
                with pytest.raises(ValueError):
                    pool.init(arg)
                continue
            chosen = pool.init(arg)
            assert len(chosen) == arg
            assert pool.get_length_unlabeled() == unlabelled_before - arg
            new = sorted(chosen.tolist())
        else:
            idx = [i for i in arg if i < n]
            new = [i for i in dict.fromkeys(idx) if i not in expected_order]
            pool.annotate(idx)
        expected_order.extend(int(i) for i in new)

        labelled = pool.get_labeled_indices()
        unlabelled = pool.get_unlabeled_indices()
        assert len(labelled) + len(unlabelled) == n
        assert not set(labelled.tolist()) & set(unlabelled.tolist())
        assert pool.get_length_labeled() == len(labelled)
        assert pool.get_length_unlabeled() == len(unlabelled)
        assert sorted(expected_order) == labelled.tolist()
        assert pool.get_labelling_order().tolist() == expected_order
        state = pool.get_indices()
        assert np.flatnonzero(state == -1).tolist() == labelled.tolist()
        assert state[unlabelled].tolist() == unlabelled.tolist()
        np.testing.assert_array_equal(pool.get_targets_by(labelled), labels[labelled])


@settings(max_examples=60, deadline=None)
@given(
    per_class=st.lists(st.integers(1, 15), min_size=1, max_size=6),
    fraction=st.floats(0, 1),
)
def test_init_quota_property(per_class, fraction):
    """Exactly n labels; per class min(available, share), shares differing by at most 1 among
    classes that did not run out."""
    labels = labels_of(per_class)
    size = int(round(fraction * len(labels)))
    pool = make_pool(labels)
    pool.init(size)
    counts = class_counts(pool, labels, len(per_class))
    assert counts.sum() == size
    available = np.array(per_class)
    assert np.all(counts <= available)
    not_full = counts < available
    if not_full.any():
        # A class that still has points got at least as much as any other class.
        assert counts[not_full].min() >= counts.max() - 1
        assert counts[not_full].max() - counts[not_full].min() <= 1

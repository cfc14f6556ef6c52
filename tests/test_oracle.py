"""Oracle: pseudo labelling from known targets, and real annotation through a callback
(tf_al's loop could not take a callback at all, bug B17)."""

from __future__ import annotations

import numpy as np
import pytest

from al_experiments import Oracle, Pool


def hidden_labels(n: int) -> np.ndarray:
    return (np.arange(n) * 7) % 3


def test_pseudo_oracle_copies_true_labels():
    labels = hidden_labels(12)
    pool = Pool(np.zeros((12, 2)), labels)
    oracle = Oracle(pseudo_mode=True)
    oracle.annotate(pool, [2, 5])
    assert pool.get_labeled_indices().tolist() == [2, 5]
    assert pool.get_targets_by([2, 5]).tolist() == labels[[2, 5]].tolist()


def test_pseudo_oracle_init_delegates_to_pool_init():
    labels = hidden_labels(30)
    pool = Pool(np.zeros((30, 2)), labels)
    chosen = Oracle(pseudo_mode=True).init(pool, 6)
    assert len(chosen) == 6 and pool.get_length_labeled() == 6
    assert np.bincount(labels[pool.get_labeled_indices()], minlength=3).tolist() == [2, 2, 2]


def test_callback_labels_points_on_annotate_and_init():
    labels = hidden_labels(20)
    calls: list[list[int]] = []

    def annotator(pool, indices):
        calls.append(list(indices))
        pool.annotate(indices, labels[indices])

    pool = Pool(np.zeros((20, 2)))  # no known labels: nothing to pseudo-label from
    oracle = Oracle(callback=annotator)
    assert not oracle.is_pseudo()
    initial = oracle.init(pool, 4)
    assert len(initial) == 4 and len(set(initial.tolist())) == 4
    assert calls == [list(initial)]
    oracle.annotate(pool, [0, 19])
    assert calls[-1] == [0, 19]
    labelled = pool.get_labeled_indices()
    assert len(labelled) == len(set(initial.tolist()) | {0, 19})
    np.testing.assert_array_equal(pool.get_targets_by(labelled), labels[labelled])


def test_callback_used_when_pseudo_mode_is_overridden():
    labels = hidden_labels(10)
    seen = []

    def annotator(pool, indices):
        seen.append(list(indices))
        pool.annotate(indices, np.full(len(indices), 2))

    pool = Pool(np.zeros((10, 1)), labels)  # pseudo pool, but the oracle is asked for real labels
    Oracle(callback=annotator, pseudo_mode=True).annotate(pool, [1], pseudo_mode=False)
    assert seen == [[1]]
    assert pool.get_targets_by([1]).tolist() == [2]


def test_callback_that_forgets_to_label_raises():
    def lazy(pool, indices):
        pool.annotate(indices[:1], np.zeros(1, dtype=int))

    pool = Pool(np.zeros((10, 1)))
    with pytest.raises(RuntimeError, match="without labelling 2 of the 3"):
        Oracle(callback=lazy).annotate(pool, [1, 2, 3])


def test_non_pseudo_oracle_without_callback_raises():
    pool = Pool(np.zeros((5, 1)), np.arange(5))
    with pytest.raises(ValueError, match="callback"):
        Oracle().annotate(pool, [0])
    with pytest.raises(ValueError, match="callback"):
        Oracle().init(pool, 2)


def test_oracle_argument_checks():
    with pytest.raises(ValueError, match="function"):
        Oracle(callback="not callable")
    oracle = Oracle(pseudo_mode=True)
    assert oracle.is_pseudo() is True
    assert oracle.is_pseudo(False) is False
    with pytest.raises(ValueError, match="True or False"):
        oracle.is_pseudo("yes")
    pool = Pool(np.zeros((5, 1)))
    with pytest.raises(ValueError, match="Cannot label 6"):
        Oracle(callback=lambda p, i: None).init(pool, 6)


@pytest.mark.parametrize("pseudo", [True, False])
@pytest.mark.parametrize("empty", [[], np.array([], dtype=int)])
def test_init_with_an_empty_index_list_raises_index_error(pseudo, empty):
    asked = []
    pool = Pool(np.zeros((5, 1)), np.arange(5) if pseudo else None)
    oracle = Oracle(callback=lambda p, i: asked.append(i), pseudo_mode=pseudo)
    with pytest.raises(IndexError, match="Oracle.init got an empty list of indices; pass the pool indices"):
        oracle.init(pool, empty)
    assert asked == [] and pool.get_length_labeled() == 0


def test_annotate_takes_a_single_index_and_an_empty_list_like_the_pool():
    labels = hidden_labels(6)
    pool = Pool(np.zeros((6, 1)), labels)
    oracle = Oracle(pseudo_mode=True)
    oracle.annotate(pool, 4)
    oracle.annotate(pool, [])
    assert pool.get_labeled_indices().tolist() == [4] and pool.get_targets_by(4) == labels[4]
    asked = []

    def annotator(p, indices):
        asked.append(indices.tolist())
        p.annotate(indices, labels[indices])

    callback_pool = Pool(np.zeros((6, 1)))
    Oracle(callback=annotator).annotate(callback_pool, np.int64(2))
    Oracle(callback=annotator).annotate(callback_pool, [])  # nothing to ask
    assert asked == [[2]] and callback_pool.get_targets_by([2]).tolist() == [labels[2]]
    with pytest.raises(IndexError, match="out of range"):
        oracle.annotate(pool, 6)

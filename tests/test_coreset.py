"""k_center_greedy: greedy core-set selection on embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import traced_peak

from al_experiments.acquisition.batch.coreset import k_center_greedy


def brute_force_greedy(x, labelled, batch_size, first=None):
    """Reference: recompute every candidate's distance to every centre at each step."""
    picks = [] if first is None else [first]
    while len(picks) < min(batch_size, len(x)):
        centres = np.concatenate([labelled, x[picks]]) if len(picks) else labelled
        d = np.sqrt(((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(axis=1)
        d[picks] = -1.0
        picks.append(int(np.argmax(d)))
    return np.array(picks)


def test_hand_worked_1d():
    # Candidates 0, 1, 5, 10 with 0 labelled: distances 0, 1, 5, 10 -> take 10 (pos 3).
    # Against {0, 10}: 0, 1, 5 -> take 5 (pos 2). Against {0, 5, 10}: 0, 1 -> take 1 (pos 1).
    # Last the duplicate of the labelled point (distance 0).
    x = np.array([[0.0], [1.0], [5.0], [10.0]])
    np.testing.assert_array_equal(k_center_greedy(x, [[0.0]], 4), [3, 2, 1, 0])


def test_hand_worked_2d():
    # Labelled origin. Candidates: origin again (d=0), (3, 4) d=5, (-3, 0) d=3, (0, -4) d=4.
    # Pick (3, 4). Then (0, -4) is min(4, |(3, 8)| = 8.5) = 4 and (-3, 0) is
    # min(3, |(6, 4)| = 7.2) = 3: pick (0, -4). Then (-3, 0): min(3, 5) = 3 > 0: pick it.
    x = np.array([[0.0, 0.0], [3.0, 4.0], [-3.0, 0.0], [0.0, -4.0]])
    np.testing.assert_array_equal(k_center_greedy(x, [[0.0, 0.0]], 4), [1, 3, 2, 0])
    np.testing.assert_array_equal(k_center_greedy(x, [[0.0, 0.0]], 2), [1, 3])


def test_ties_go_to_the_lowest_position():
    # All three candidates at distance 1 from the labelled origin: take position 0 = (1, 0).
    # Then (0, 1) is min(1, sqrt 2) = 1 and (-1, 0) is min(1, 2) = 1: tie again -> position 1.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(k_center_greedy(x, np.zeros((1, 2)), 3), [0, 1, 2])


@pytest.mark.parametrize("seed", range(4))
def test_equals_brute_force_with_labels(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 5))
    labelled = rng.normal(size=(15, 5))
    got = k_center_greedy(x, labelled, 20, chunk_size=7)
    np.testing.assert_array_equal(got, brute_force_greedy(x, labelled, 20))


@pytest.mark.parametrize("seed", range(4))
def test_equals_brute_force_without_labels(seed):
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(50, 3))
    got = k_center_greedy(x, None, 15, rng=seed)
    # The first pick is the random start; from there on it must be the greedy sequence.
    np.testing.assert_array_equal(got, brute_force_greedy(x, np.empty((0, 3)), 15, first=got[0]))


def test_no_label_start_uses_rng():
    x = np.random.default_rng(0).normal(size=(40, 2))
    firsts = {int(k_center_greedy(x, None, 1, rng=seed)[0]) for seed in range(30)}
    assert len(firsts) > 5  # not always position 0 (the widely copied bug)
    np.testing.assert_array_equal(
        k_center_greedy(x, None, 10, rng=3), k_center_greedy(x, None, 10, rng=3)
    )
    # Empty labelled sets of either spelling mean the same.
    np.testing.assert_array_equal(
        k_center_greedy(x, np.empty((0, 2)), 10, rng=3), k_center_greedy(x, [], 10, rng=3)
    )


def test_labels_make_it_deterministic():
    rng = np.random.default_rng(1)
    x, labelled = rng.normal(size=(30, 4)), rng.normal(size=(5, 4))
    np.testing.assert_array_equal(
        k_center_greedy(x, labelled, 10, rng=0), k_center_greedy(x, labelled, 10, rng=99)
    )


def test_chunk_size_does_not_change_the_result():
    rng = np.random.default_rng(5)
    x, labelled = rng.normal(size=(200, 8)), rng.normal(size=(70, 8))
    reference = k_center_greedy(x, labelled, 40)
    for chunk in (1, 3, 64, 199, 10_000):
        np.testing.assert_array_equal(k_center_greedy(x, labelled, 40, chunk_size=chunk), reference)


def test_duplicates_picked_once_and_only_after_everything_else():
    rng = np.random.default_rng(2)
    distinct = rng.normal(size=(30, 6)) * 100.0  # large norms: the expansion loses precision
    labelled = rng.normal(size=(10, 6)) * 100.0
    # Two copies of every distinct point, then copies of three labelled points.
    x = np.concatenate([distinct, distinct, labelled[:3]])
    got = k_center_greedy(x, labelled, len(x), chunk_size=4)
    assert sorted(got) == list(range(len(x)))
    # Each distinct point once (the first copy: its twin ties it and comes later), then the
    # remaining 33 candidates, all at distance 0, in position order.
    assert sorted(got[:30]) == list(range(30))
    np.testing.assert_array_equal(got[30:], np.arange(30, len(x)))


def test_all_candidates_identical():
    x = np.ones((5, 3))
    np.testing.assert_array_equal(k_center_greedy(x, np.ones((2, 3)), 5), [0, 1, 2, 3, 4])
    got = k_center_greedy(x, None, 5, rng=4)
    assert sorted(got) == list(range(5))


def test_distance_table_is_never_materialised():
    rng = np.random.default_rng(0)
    x, labelled = rng.normal(size=(3000, 4)), rng.normal(size=(3000, 4))
    got, peak = traced_peak(lambda: k_center_greedy(x, labelled, 5, chunk_size=256))
    assert got.shape == (5,)
    # The full 3000 x 3000 float64 table would be 72 MB; 256 x 256 blocks are 0.5 MB.
    assert peak < 8 * 2**20


def test_a_float32_pool_gives_its_float64_copys_picks_without_being_copied_whole():
    """A large pool's embeddings come from the network in float32: they are read in float64 a
    block at a time, so the picks are those of the float64 copy, and no such copy is made."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 32)).astype(np.float32)
    labelled = rng.normal(size=(50, 32)).astype(np.float32)
    expected = k_center_greedy(x.astype(np.float64), labelled.astype(np.float64), 8, chunk_size=512)
    got, peak = traced_peak(lambda: k_center_greedy(x, labelled, 8, chunk_size=512))
    np.testing.assert_array_equal(got, expected)
    # The float64 copy alone would be 5 MB; a block of 512 rows is 0.1 MB, the distances 0.16 MB.
    assert peak < x.size * 8 / 4, peak


def test_batch_size_rules():
    x = np.arange(6.0).reshape(3, 2)
    out = k_center_greedy(x, None, 0, rng=0)
    assert out.shape == (0,) and out.dtype == np.int64
    assert k_center_greedy(x, x[:1], 10).dtype == np.int64
    assert sorted(k_center_greedy(x, x[:1], 10)) == [0, 1, 2]
    assert k_center_greedy(np.empty((0, 2)), None, 3).shape == (0,)
    with pytest.raises(ValueError, match=r"^batch_size=-1 is invalid: it must be a whole number >= 0\.$"):
        k_center_greedy(x, None, -1)


def test_errors():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="embeddings must be a 2-D array"):
        k_center_greedy(np.zeros(4), None, 1)
    with pytest.raises(ValueError, match="labelled_embeddings must be a 2-D array"):
        k_center_greedy(x, np.zeros(3), 1)
    with pytest.raises(ValueError, match="D=2 features but embeddings have D=3"):
        k_center_greedy(x, np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="NaN/inf"):
        k_center_greedy(np.array([[0.0, np.nan]]), None, 1)
    late = np.zeros((10_000, 2), dtype=np.float32)  # checked a block of rows at a time: a later block too
    late[9_000, 1] = np.inf
    with pytest.raises(ValueError, match=r"embeddings contains 1 NaN/inf value"):
        k_center_greedy(late, None, 1)
    with pytest.raises(ValueError, match=r"^chunk_size=0 is invalid: it must be a whole number >= 1\.$"):
        k_center_greedy(x, None, 1, chunk_size=0)
    with pytest.raises(ValueError, match="rng='seed' is invalid: it must be None, a whole number >= 0 or a numpy Generator"):
        k_center_greedy(x, None, 1, rng="seed")
    with pytest.raises(ValueError, match="numeric"):
        k_center_greedy([["a", "b"]], None, 1)

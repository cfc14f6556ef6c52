"""TypiClust and ProbCover: the array math against hand-worked cases, as query strategies (on the
model's embeddings or the raw inputs) and as initial-set draws (loop.init_strategy), in a real
loop and in a composed config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from al_experiments import AcquisitionFunction, ActiveLearningLoop, Dataset, Pool
from al_experiments.acquisition import RoundView, probcover, typiclust
from al_experiments.acquisition.batch.features import l2_normalise
from al_experiments.acquisition.batch.probcover import ball_graph, greedy_cover, purity_delta
from al_experiments.acquisition.batch.typiclust import typicality, typiclust_stacked
from al_experiments.pool import INIT_STRATEGIES
from al_experiments.utils.seeding import round_rng
from conftest import traced_peak
from test_dataset import RandomOnly

# ---------------------------------------------------------------------- hand-made data

RHO = 1.0  # distance from a blob's centre to each of its other points


def star(centre: np.ndarray, size: int, axes: int = 15) -> np.ndarray:
    """A blob of ``size`` points: ``centre`` and ``size - 1`` points at +-RHO along the first
    ``axes`` axes. Those are sqrt(2) RHO (or 2 RHO) from each other but RHO from the centre, so
    the centre is the one point of highest typicality, and every other point ties with the rest."""
    axis = np.eye(len(centre))[:axes]
    offsets = np.concatenate([axis, -axis])[: size - 1] * RHO
    return np.vstack([centre, centre + offsets])


def blobs(sizes=(30, 20, 10), dim: int = 18, far: float = 100.0):
    """Stars of the given sizes, centred far apart on the last three axes (the offsets use the
    first 15), rows shuffled; returns the points, each row's blob and each blob's centre row."""
    centres = far * np.eye(dim)[dim - 3:]
    parts = [star(centres[i], size) for i, size in enumerate(sizes)]
    points = np.vstack(parts)
    blob = np.repeat(np.arange(len(sizes)), sizes)
    centre_rows = np.cumsum([0, *sizes[:-1]])
    order = np.random.default_rng(0).permutation(len(points))
    position = np.argsort(order)  # where each original row lands
    return points[order], blob[order], position[centre_rows]


# The line of the ProbCover hand case; with delta = 1 the (closed) balls are
#   0: {0, .5, .9}  .5: {0, .5, .9}  .9: {0, .5, .9, 1.6}  1.6: {.9, 1.6}
#   5: {5, 5.6}  5.6: {5, 5.6, 6.4}  6.4: {5.6, 6.4}  10: {10}
# so the greedy picks .9 (covers 4), then 5.6 (3 more), then 10 (the last one).
LINE = np.array([0.0, 0.5, 0.9, 1.6, 5.0, 5.6, 6.4, 10.0])[:, None]


# ---------------------------------------------------------------------- TypiClust


def test_typicality_is_the_inverse_mean_distance_to_the_k_nearest_others():
    x = np.array([[0.0], [1.0], [3.0]])
    # k = min(20, 3 - 1) = 2: 0 -> (1, 3), 1 -> (1, 2), 3 -> (2, 3)
    np.testing.assert_allclose(typicality(x), [1 / 2.0, 1 / 1.5, 1 / 2.5])
    np.testing.assert_allclose(typicality(x, neighbours=1), [1.0, 1.0, 1 / 2.0])
    assert typicality(np.array([[4.0, 2.0]])).tolist() == [0.0]  # no neighbour to vouch for it
    assert np.isinf(typicality(np.array([[1.0], [1.0], [5.0]]), neighbours=1)[:2]).all()
    with pytest.raises(ValueError, match=r"^neighbours=3 is invalid: it must be a whole number in \[0, 2\]\.$"):
        typicality(x, neighbours=3)


def test_typiclust_picks_each_blob_centre_largest_blob_first():
    points, _, centres = blobs()
    for seed in range(6):  # k-means numbers the clusters differently per seed; the order stays
        assert typiclust(points, None, 3, rng=seed, normalise=False).tolist() == centres.tolist()


def test_typiclust_skips_the_blob_that_holds_a_labelled_point():
    points, blob, centres = blobs()
    labelled_row = np.flatnonzero((blob == 0) & ~np.isin(np.arange(len(points)), centres))[0]
    candidates = np.delete(np.arange(len(points)), labelled_row)
    for seed in range(6):
        picks = typiclust(points[candidates], points[[labelled_row]], 2, rng=seed, normalise=False)
        assert candidates[picks].tolist() == centres[1:].tolist()


def test_typiclust_falls_back_to_the_largest_clusters_once_each_has_a_pick():
    points, blob, centres = blobs()
    picks = typiclust(points, None, 5, rng=0, max_clusters=3, normalise=False)
    assert picks[:3].tolist() == centres.tolist()
    assert blob[picks[3:]].tolist() == [0, 1] and len(set(picks.tolist())) == 5


def test_typiclust_leaves_clusters_under_the_minimum_size_for_last():
    points, blob, centres = blobs(sizes=(30, 20, 4))
    picks = typiclust(points, None, 3, rng=0, normalise=False)
    assert picks[:2].tolist() == centres[:2].tolist() and blob[picks[2]] == 0  # the 4-point blob waits
    picks = typiclust(points, None, 3, rng=0, min_cluster_size=1, normalise=False)
    assert picks.tolist() == centres.tolist()


def test_typiclust_normalises_rows_so_only_directions_count():
    points, _, centres = blobs()
    scale = np.random.default_rng(1).uniform(1.0, 3.0, size=(len(points), 1))
    assert typiclust(points * scale, None, 3, rng=0).tolist() == centres.tolist()


def test_above_fifty_clusters_the_mini_batch_clustering_still_finds_every_blob():
    """Above 50 clusters k-means runs on mini-batches, as the authors' code does: sixty blobs far
    apart still give one pick at each blob's centre."""
    count, size = 60, 8
    centres = 100.0 * np.eye(15 + count)[15:]  # the star offsets use the first 15 axes
    points = np.vstack([star(centre, size) for centre in centres])
    for seed in range(2):
        picks = typiclust(points, None, count, rng=seed, normalise=False)
        assert sorted(picks.tolist()) == list(range(0, count * size, size))


def test_a_float32_pool_is_clustered_without_a_float64_copy():
    """Embeddings come from the network in float32; a million of them are 1 GiB, and a float64
    copy of the stacked, normalised points would add 2 GiB."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 64)).astype(np.float32)
    typiclust(x[:100], x[100:110], 3, rng=0)  # scikit-learn's first use imports and allocates more
    picks, peak = traced_peak(lambda: typiclust(x[50:], x[:50], 10, rng=0))
    assert len(set(picks.tolist())) == 10 and picks.max() < 19_950
    # A float64 copy is 10 MB: the float64 points, their normalised copy and k-means' work took 41
    # MB; the float32 points are 5 MB, with k-means' work 15 MB.
    assert peak < 2 * x.size * 8, peak


def test_typiclust_on_one_stacked_array_picks_as_on_the_two_sets():
    x = load_digits().data[:400]
    expected = typiclust(x[20:], x[:20], 10, rng=3)
    stacked = np.vstack([x[20:], x[:20]])
    kept = stacked.copy()
    assert typiclust_stacked(stacked, 380, 10, rng=3).tolist() == expected.tolist()
    np.testing.assert_array_equal(stacked, kept)  # normalised in a copy
    assert typiclust_stacked(stacked, 380, 10, rng=3, overwrite=True).tolist() == expected.tolist()
    np.testing.assert_allclose(np.linalg.norm(stacked, axis=1), 1.0)  # normalised in place
    with pytest.raises(ValueError, match=r"n_candidates=401 is invalid: it must be a whole number in \[0, 400\]"):
        typiclust_stacked(stacked, 401, 10)


# ---------------------------------------------------------------------- ProbCover


def test_ball_graph_holds_the_points_within_delta_closed():
    balls = ball_graph(LINE, 1.0).toarray()
    assert balls.sum(axis=1).tolist() == [3, 3, 4, 2, 2, 3, 2, 1]
    assert balls[2].nonzero()[0].tolist() == [0, 1, 2, 3]
    assert ball_graph(np.array([[0.0], [1.0], [2.5]]), 1.0).toarray()[0].tolist() == [True, True, False]


def test_greedy_cover_on_a_line_picks_and_covers_as_worked_by_hand():
    picks, gains = greedy_cover(ball_graph(LINE, 1.0), len(LINE), 3, rng=0)
    assert picks.tolist() == [2, 5, 7]  # .9, 5.6, 10
    assert np.cumsum(gains).tolist() == [4, 7, 8]  # the covered set after each pick
    assert probcover(LINE, None, 3, delta=1.0, normalise=False, rng=0).tolist() == [2, 5, 7]


def test_points_in_a_labelled_ball_start_covered():
    labelled = LINE[[5]]  # 5.6 covers 5, 5.6 and 6.4
    candidates = np.delete(LINE, 5, axis=0)
    picks = probcover(candidates, labelled, 2, delta=1.0, normalise=False, rng=0)
    assert candidates[picks, 0].tolist() == [0.9, 10.0]
    balls = ball_graph(LINE, 1.0)
    _, gains = greedy_cover(balls, len(LINE), 1, covered=balls[5].toarray()[0], rng=0)
    assert gains.tolist() == [4]  # .9's ball; 5.6's three no longer count


def test_once_everything_is_covered_the_rest_is_drawn_uniformly():
    picks, gains = greedy_cover(ball_graph(LINE, 1.0), len(LINE), 8, rng=0)
    assert picks[:3].tolist() == [2, 5, 7] and gains[3:].tolist() == [0] * 5
    assert sorted(picks.tolist()) == list(range(8))
    # A labelled ball that holds every point: all picks are uniform draws, seeded.
    draws = {tuple(probcover(LINE[:-1], LINE[-1:], 4, delta=20.0, normalise=False, rng=seed))
             for seed in range(5)}
    assert len(draws) > 1 and all(len(set(d)) == 4 for d in draws)
    twice = [probcover(LINE[:-1], LINE[-1:], 4, delta=20.0, normalise=False, rng=3).tolist() for _ in range(2)]
    assert twice[0] == twice[1]


def test_purity_delta_is_the_largest_radius_with_enough_pure_balls():
    line = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])[:, None]
    # Nearest point of the other cluster: 10, 9, 8, 8, 9, 10.
    all_pure = purity_delta(line, 2, purity=1.0, rng=0)
    assert 8.0 - 1e-9 < all_pure < 8.0  # at 8 the balls of 2 and 10 would hold both clusters
    # Half may be impure (3 of 6): just below 9, where 1 and 11 would join 2 and 10.
    assert 9.0 - 1e-9 < purity_delta(line, 2, purity=0.5, rng=0) < 9.0
    assert purity_delta(line, 1, rng=0) == np.inf


def test_probcover_default_delta_needs_the_class_count_and_options_are_checked():
    with pytest.raises(ValueError, match="probcover needs delta or num_classes"):
        probcover(LINE, None, 2)
    with pytest.raises(ValueError, match="delta=0 is invalid"):
        probcover(LINE, None, 2, delta=0)
    with pytest.raises(ValueError, match="purity=1.5 is invalid"):
        probcover(LINE, None, 2, num_classes=2, purity=1.5)
    with pytest.raises(ValueError, match="labelled_features have D=2 features but features have D=1"):
        probcover(LINE, np.zeros((1, 2)), 2, delta=1.0)


def test_beyond_subsample_candidates_probcover_covers_a_uniform_sample_of_them():
    x = load_digits().data
    candidates, labelled = x[20:], x[:20]
    got = probcover(candidates, labelled, 10, rng=np.random.default_rng(3), num_classes=10, subsample=500)
    # The sample is drawn first from the generator; the rest runs on it as on a pool of that size.
    gen = np.random.default_rng(3)
    kept = np.sort(gen.choice(len(candidates), 500, replace=False))
    expected = kept[probcover(candidates[kept], labelled, 10, rng=gen, num_classes=10, subsample=None)]
    assert got.tolist() == expected.tolist()
    # A pool within the limit is not sampled (nothing is drawn for it).
    whole = probcover(candidates, labelled, 10, rng=1, num_classes=10, subsample=None)
    assert probcover(candidates, labelled, 10, rng=1, num_classes=10, subsample=len(candidates)).tolist() == \
        whole.tolist()
    with pytest.raises(ValueError, match=r"^subsample=5 keeps fewer candidates than the batch of 10: set "
                                         r"query.options.subsample to at least the batch size, or null"):
        probcover(candidates, labelled, 10, num_classes=10, subsample=5)
    with pytest.raises(ValueError, match="subsample=0 is invalid"):
        AcquisitionFunction("probcover", subsample=0)


def test_probcover_normalises_rows_so_only_directions_count():
    points, _, _ = blobs()
    scale = np.random.default_rng(2).uniform(1.0, 3.0, size=(len(points), 1))
    kept = probcover(points, None, 6, num_classes=3, rng=4)
    assert probcover(points * scale, None, 6, num_classes=3, rng=4).tolist() == kept.tolist()
    assert kept.tolist() == probcover(l2_normalise(points), None, 6, num_classes=3, rng=4,
                                      normalise=False).tolist()


@pytest.mark.parametrize("select", [typiclust, probcover])
def test_a_seed_fixes_the_selection(select):
    x = load_digits().data[:400]
    options = {"num_classes": 10} if select is probcover else {}
    first = select(x[20:], x[:20], 10, rng=np.random.default_rng(7), **options)
    assert len(set(first.tolist())) == 10
    assert select(x[20:], x[:20], 10, rng=np.random.default_rng(7), **options).tolist() == first.tolist()
    others = {tuple(select(x[20:], x[:20], 10, rng=np.random.default_rng(s), **options)) for s in range(4)}
    assert len(others) > 1  # k-means (and ProbCover's ties) do follow the seed


def test_five_thousand_points_give_a_batch_of_distinct_unlabelled_points():
    """A pool of a real task's size works; how long it takes is benchmarks/bench_selectors.py's
    to say (its TypiClust and ProbCover rows), not a test's."""
    rng = np.random.default_rng(0)
    x = np.vstack([load_digits().data] * 3)[:5000] + rng.normal(size=(5000, 64))
    for select, options in ((typiclust, {}), (probcover, {"num_classes": 10})):
        picked = select(x[20:], x[:20], 10, rng=0, **options)
        assert len(set(picked.tolist())) == 10 and all(0 <= i < 4980 for i in picked), select.__name__


# ---------------------------------------------------------------------- as query strategies


class CubedEmbeddings:
    """A stand-in model whose embeddings differ from its inputs (x^3), so a test can tell which
    features a strategy used."""

    def num_outputs(self) -> int:
        return 3

    def embeddings(self, inputs, batch_size=None, return_probs=False):
        h = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1) ** 3
        probs = np.full((len(h), 3), 1 / 3)
        return (h, probs) if return_probs else h


def small_pool() -> Pool:
    x = load_digits().data[:120].reshape(120, 8, 8)  # image-shaped: features=input flattens them
    pool = Pool(x, load_digits().target[:120])
    pool.annotate(np.arange(0, 120, 12))
    return pool


@pytest.mark.parametrize("name", ["typiclust", "probcover"])
@pytest.mark.parametrize("features", ["embedding", "input"])
def test_the_strategy_selects_in_the_feature_space_it_is_told(name, features):
    pool, model = small_pool(), CubedEmbeddings()
    candidates, labelled = pool.get_unlabeled_indices(), pool.get_labeled_indices()
    flat = pool.inputs.reshape(len(pool), -1).astype(np.float64)
    space = flat if features == "input" else flat ** 3
    indices, _ = AcquisitionFunction(name, features=features)(model, pool, step_size=6,
                                                              rng=np.random.default_rng(5))
    select, options = (typiclust, {}) if name == "typiclust" else (probcover, {"num_classes": 3})
    expected = select(space[candidates], space[labelled], 6, rng=np.random.default_rng(5), **options)
    assert indices[::-1].tolist() == candidates[expected].tolist()  # tf_al's order: best last


def test_round_view_stacks_the_features_candidates_first_in_an_array_of_the_callers_own():
    pool, model = small_pool(), CubedEmbeddings()
    view = RoundView(model, pool, pool.get_unlabeled_indices(), np.random.default_rng(0))
    flat = pool.inputs.reshape(len(pool), -1).astype(np.float64)
    order = np.concatenate([pool.get_unlabeled_indices(), pool.get_labeled_indices()])
    np.testing.assert_array_equal(view.stacked_features("input"), flat[order])
    np.testing.assert_array_equal(view.stacked_features("embedding"), flat[order] ** 3)
    some = np.array([3, 50, 7])
    np.testing.assert_array_equal(view.stacked_features("input", some),
                                  flat[np.concatenate([pool.get_unlabeled_indices()[some], pool.get_labeled_indices()])])
    first = view.stacked_features("embedding")
    first[:] = 0.0  # the caller's to scale in place: the next request is unchanged
    assert view.stacked_features("embedding").any()


def test_options_defaults_checks_and_what_the_choice_rests_on():
    from al_experiments.acquisition import get_query

    assert get_query("typiclust").options() == {"features": "embedding", "min_cluster_size": 5}
    assert get_query("probcover").options() == {"features": "embedding", "delta": None, "purity": 0.95,
                                                 "subsample": 20_000}
    assert AcquisitionFunction("typiclust").samples_used() == "deterministic"
    assert AcquisitionFunction("probcover", features="input").samples_used() == "none"
    with pytest.raises(ValueError, match="features='pixels' is invalid: it must be one of 'embedding', 'input'"):
        AcquisitionFunction("typiclust", features="pixels")
    with pytest.raises(ValueError, match="min_cluster_size=0 is invalid"):
        AcquisitionFunction("typiclust", min_cluster_size=0)
    with pytest.raises(ValueError, match="delta=-1.0 is invalid"):
        AcquisitionFunction("probcover", delta=-1.0)
    with pytest.raises(ValueError, match="purity=0 is invalid"):
        AcquisitionFunction("probcover", purity=0)


# ---------------------------------------------------------------------- as initial-set draws


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


@pytest.mark.parametrize("strategy", ["typiclust", "probcover"])
def test_pool_draws_a_cold_start_initial_set(digits, strategy):
    x, y = digits
    chosen = Pool(x, y).choose_initial(20, np.random.default_rng(3), strategy=strategy)
    assert len(chosen) == 20 and len(set(chosen.tolist())) == 20 and chosen.tolist() == sorted(chosen.tolist())
    again = Pool(x, y).choose_initial(20, np.random.default_rng(3), strategy=strategy)
    assert again.tolist() == chosen.tolist()
    assert Pool(x, y).choose_initial(20, np.random.default_rng(4), strategy=strategy).tolist() != chosen.tolist()
    random = Pool(x, y).choose_initial(20, np.random.default_rng(3), strategy="random")
    assert random.tolist() != chosen.tolist()
    # It is the algorithm's pick on the flattened inputs, labels unseen.
    select = typiclust if strategy == "typiclust" else probcover
    options = {"num_classes": 10} if strategy == "probcover" else {}
    picked = select(x.reshape(len(x), -1), None, 20, rng=np.random.default_rng(3), **options)
    assert chosen.tolist() == sorted(picked.tolist())
    pool = Pool(x, y)
    assert pool.init(20, np.random.default_rng(3), strategy=strategy).tolist() == chosen.tolist()
    assert pool.get_labeled_indices().tolist() == chosen.tolist()


def test_a_cold_start_draw_avoids_points_already_labelled(digits):
    x, y = digits
    pool = Pool(x, y)
    pool.annotate(np.arange(100))
    chosen = pool.choose_initial(15, np.random.default_rng(0), strategy="typiclust")
    assert len(chosen) == 15 and chosen.min() >= 100


def test_probcover_needs_class_labels_and_unknown_strategies_are_named(digits):
    x, y = digits
    with pytest.raises(ValueError, match="does not know"):
        Pool(x, np.linspace(0, 1, len(x))).choose_initial(5, np.random.default_rng(0), strategy="probcover")
    with pytest.raises(ValueError, match="strategy='kmeans' is invalid: it must be one of 'balanced', 'random', "
                                         "'typiclust', 'probcover'"):
        Pool(x, y).choose_initial(5, strategy="kmeans")
    assert INIT_STRATEGIES == ("balanced", "random", "typiclust", "probcover")
    with pytest.raises(ValueError, match="init_strategy='kmeans' is invalid: it must be one of 'balanced'"):
        Dataset(x, y, init_size=5, init_strategy="kmeans")


@pytest.mark.parametrize("strategy", ["random", "typiclust", "probcover"])
def test_the_loop_draws_its_initial_set_with_its_init_generator(digits, strategy):
    x, y = digits
    dataset = Dataset(x[:300], y[:300], init_size=12, init_strategy=strategy)
    loop = ActiveLearningLoop(RandomOnly(), dataset, "random", step_size=5, max_rounds=1, seed=9)
    init_rng = round_rng(9, 0, "init")
    if strategy == "random":  # what the loop drew before the cold-start strategies came
        expected = np.sort(init_rng.choice(300, 12, replace=False))
    else:
        expected = Pool(x[:300], y[:300]).choose_initial(12, init_rng, strategy=strategy)
    assert loop.initial_indices.tolist() == expected.tolist()
    again = ActiveLearningLoop(RandomOnly(), dataset, "random", step_size=5, max_rounds=1, seed=9)
    assert again.initial_indices.tolist() == expected.tolist()


# ---------------------------------------------------------------------- in a real loop


@pytest.mark.parametrize("name, features, init_strategy", [
    ("typiclust", "embedding", "probcover"), ("typiclust", "input", "typiclust"),
    ("probcover", "embedding", "typiclust"), ("probcover", "input", "probcover"),
])
def test_the_strategies_run_in_a_loop_from_a_cold_start(digits, name, features, init_strategy):
    """A cold start may miss classes (10 classes, 8 points); the network trains anyway."""
    import keras

    from al_experiments import Config
    from al_experiments.wrapper import McDropout

    x, y = digits
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    model = McDropout(network, Config(fit={"epochs": 3, "batch_size": 16}, query={"sample_size": 4},
                                      eval={"sample_size": 2}))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    dataset = Dataset(x[:200], y[:200], test=(x[1500:1600], y[1500:1600]), init_size=8,
                      init_strategy=init_strategy)
    loop = ActiveLearningLoop(model, dataset, AcquisitionFunction(name, features=features), step_size=6,
                              max_rounds=2, seed=3)
    assert loop.initial_indices.tolist() == Pool(x[:200], y[:200]).choose_initial(
        8, round_rng(3, 0, "init"), strategy=init_strategy).tolist()
    history = loop.run(progress=False)
    picked = [i for step in history for i in step["indices_selected"]]
    assert len(picked) == 12 and len(set(picked)) == 12
    assert set(picked).isdisjoint(loop.initial_indices.tolist())
    assert all(0.0 <= step["eval"]["sparse_categorical_accuracy"] <= 1.0 for step in history)
    if features == "input":  # the raw inputs: round 1 picks what the array function picks
        first = np.sort(loop.initial_indices)
        candidates = np.setdiff1d(np.arange(200), first)
        select, options = (typiclust, {}) if name == "typiclust" else (probcover, {"num_classes": 10})
        expected = select(x[candidates], x[first], 6, rng=round_rng(3, 1, "query"), **options)
        assert sorted(history[0]["indices_selected"]) == sorted(candidates[expected].tolist())


# ---------------------------------------------------------------------- composed config


@pytest.fixture
def hydra_conf():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from al_experiments.app.cli import CONF_DIR
    from al_experiments.app.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(Path(CONF_DIR))):
        yield
    GlobalHydra.instance().clear()


def test_a_config_with_a_cold_start_query_and_initial_set_composes_and_builds(hydra_conf):
    from hydra import compose

    from al_experiments.app.build import build_dataset, build_query
    from al_experiments.app.schema import validate

    cfg = compose("config", overrides=["query=typiclust", "loop.init_strategy=probcover",
                                       "query.options.features=input"])
    validate(cfg)
    query = build_query(cfg)
    assert query.get_name() == "typiclust"
    assert query.settings == {"features": "input", "min_cluster_size": 5}
    assert build_dataset(cfg)[0].init_strategy == "probcover"
    cfg = compose("config", overrides=["query=probcover", "loop.init_strategy=typiclust"])
    validate(cfg)
    assert build_query(cfg).settings == {"features": "embedding", "delta": None, "purity": 0.95, "subsample": 20_000}
    with pytest.raises(Exception, match="features='pixels' is invalid: it must be one of 'embedding', 'input'"):
        validate(compose("config", overrides=["query=probcover", "query.options.features=pixels"]))

"""Query-strategy registry: built-ins, aliases, user registration, errors, dispatch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import al_experiments.acquisition as acq
from al_experiments.acquisition import (
    QueryStrategy,
    UnknownQueryError,
    available_queries,
    canonical_query_name,
    get_query,
    register_query,
    top_k,
    unregister_query,
)

BUILTINS = [
    "bald",
    "least_confidence",
    "margin",
    "max_entropy",
    "max_var_ratio",
    "random",
    "std_mean",
    "variation_ratio",
]

PROBS = np.array(
    [
        [[0.5, 0.5], [0.5, 0.5]],
        [[1.0, 0.0], [0.0, 1.0]],
        [[0.9, 0.1], [0.5, 0.5]],
    ]
)


def test_builtins_registered():
    assert set(BUILTINS) <= set(available_queries())
    assert available_queries() == sorted(available_queries())
    assert "mean_std" not in available_queries()  # aliases are not listed as names


def test_builtins_dispatch_to_score_functions():
    for name in ("max_entropy", "bald", "max_var_ratio", "std_mean", "variation_ratio",
                 "margin", "least_confidence"):
        strategy = get_query(name)
        assert strategy.name == name and strategy.needs_samples
        np.testing.assert_array_equal(strategy.scores(PROBS), getattr(acq, name)(PROBS))
        assert strategy.description  # taken from the docstring


def test_mean_std_alias():
    assert canonical_query_name("mean_std") == "std_mean"
    assert get_query("mean_std") is get_query("std_mean")
    np.testing.assert_allclose(get_query("mean_std").scores(PROBS), [0.0, 0.5, 0.2], atol=1e-12)


def test_names_are_case_insensitive():
    assert canonical_query_name("  BALD ") == "bald"
    assert get_query("Max_Entropy").name == "max_entropy"


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownQueryError) as info:
        get_query("xyz")
    msg = str(info.value)
    assert msg.startswith("Unknown query function 'xyz'.")
    assert "Known names: " + ", ".join(available_queries()) + ";" in msg
    assert "al_experiments.acquisition.register_query" in msg
    assert "Did you mean" not in msg
    # Catchable as either base class, and not quoted like a plain KeyError.
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)
    assert not msg.startswith('"')


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownQueryError, match="Did you mean 'max_entropy'"):
        get_query("max_entrpy")
    with pytest.raises(KeyError, match="Did you mean 'bald'"):
        canonical_query_name("bld")


def test_non_string_name_is_type_error():
    with pytest.raises(TypeError):
        get_query(3)


def test_get_query_passes_strategy_through():
    s = QueryStrategy("adhoc", lambda p: p[:, 0, 0])
    assert get_query(s) is s


def test_register_by_call_then_lookup(cleanup):
    def first_class(probs):
        return probs.mean(axis=1)[:, 0]

    cleanup.append("first_class")
    strategy = register_query("first_class", first_class, description="prob of class 0")
    assert isinstance(strategy, QueryStrategy)
    assert get_query("first_class") is strategy
    assert "first_class" in available_queries()
    np.testing.assert_allclose(get_query("first_class").scores(PROBS), [0.5, 0.5, 0.7])


def test_register_as_decorator_with_aliases(cleanup):
    cleanup.append("neg_entropy")

    @register_query("neg_entropy", aliases=("certainty", "most_certain"))
    def neg_entropy(probs):
        """Negative predictive entropy: pick the points the model is surest about."""
        return -acq.max_entropy(probs)

    assert callable(neg_entropy)  # decorator returns the function unchanged
    assert get_query("certainty") is get_query("neg_entropy")
    assert canonical_query_name("most_certain") == "neg_entropy"
    assert get_query("neg_entropy").description.startswith("Negative predictive entropy")


def test_register_bare_decorator(cleanup):
    cleanup.append("my_bare_query")

    @register_query
    def my_bare_query(probs):
        return np.zeros(len(probs))

    assert get_query("my_bare_query").fn is my_bare_query


def test_reregister_requires_overwrite(cleanup):
    cleanup.append("dup")
    register_query("dup", lambda p: np.zeros(len(p)))
    with pytest.raises(ValueError, match="already registered.*overwrite=True"):
        register_query("dup", lambda p: np.ones(len(p)))
    with pytest.raises(ValueError, match="already registered"):
        register_query("bald", lambda p: np.ones(len(p)))
    with pytest.raises(ValueError, match="already registered"):
        register_query("mean_std", lambda p: np.ones(len(p)))  # an alias counts as taken
    register_query("dup", lambda p: np.ones(len(p)), overwrite=True)
    np.testing.assert_array_equal(get_query("dup").scores(PROBS), [1.0, 1.0, 1.0])


def test_alias_conflicts(cleanup):
    cleanup.extend(["q_one", "q_two"])
    register_query("q_one", lambda p: np.zeros(len(p)), aliases=["shared"])
    with pytest.raises(ValueError, match="already points to query function 'q_one'"):
        register_query("q_two", lambda p: np.zeros(len(p)), aliases=["shared"])
    with pytest.raises(ValueError, match="name of a registered query function"):
        register_query("q_two", lambda p: np.zeros(len(p)), aliases=["bald"], overwrite=True)
    assert "q_two" not in available_queries()  # a failed registration leaves nothing behind
    register_query("q_two", lambda p: np.zeros(len(p)), aliases=["shared"], overwrite=True)
    assert canonical_query_name("shared") == "q_two"


def test_unregister_removes_aliases(cleanup):
    register_query("temp_q", lambda p: np.zeros(len(p)), aliases=["temp_alias"])
    unregister_query("temp_alias")
    for name in ("temp_q", "temp_alias"):
        with pytest.raises(UnknownQueryError):
            get_query(name)


def test_strategy_is_frozen_and_validated():
    s = get_query("bald")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="callable"):
        QueryStrategy("broken", fn=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        QueryStrategy("", fn=len)


def test_scores_validates_probs():
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        get_query("bald").scores(np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="pass probs"):
        get_query("bald").scores()
    with pytest.raises(ValueError, match="does not match"):
        get_query("bald").scores(PROBS, n=5)


def test_scores_checks_custom_output():
    wrong_shape = QueryStrategy("wrong_shape", lambda p: p.mean(axis=1))
    with pytest.raises(ValueError, match=r"'wrong_shape' returned scores of shape \(3, 2\)"):
        wrong_shape.scores(PROBS)
    nan_out = QueryStrategy("nan_out", lambda p: np.full(len(p), np.nan))
    with pytest.raises(ValueError, match="NaN"):
        nan_out.scores(PROBS)
    as_list = QueryStrategy("as_list", lambda p: [1, 2, 3])
    out = as_list.scores(PROBS)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0]


def test_random_strategy_seeded_distinct_and_reproducible():
    random = get_query("random")
    assert not random.needs_samples
    a = random.scores(n=50, rng=np.random.default_rng(7))
    b = random.scores(n=50, rng=np.random.default_rng(7))
    c = random.scores(n=50, rng=np.random.default_rng(8))
    assert a.shape == (50,) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    picked = top_k(a, 10)
    assert len(set(picked.tolist())) == 10
    assert np.all((picked >= 0) & (picked < 50))
    np.testing.assert_array_equal(picked, top_k(b, 10))
    # An int seed is accepted too and means the same as default_rng(seed).
    np.testing.assert_array_equal(random.scores(n=50, rng=7), a)


def test_random_strategy_size_from_probs():
    random = get_query("random")
    assert random.scores(PROBS, rng=0).shape == (3,)
    with pytest.raises(ValueError, match="does not match"):
        random.scores(PROBS, n=4, rng=0)
    with pytest.raises(ValueError, match="pool size"):
        random.scores(rng=0)
    assert random.scores(n=0, rng=0).shape == (0,)


def test_random_selection_is_roughly_uniform():
    # Each of 10 positions should be picked about k/n = 30% of the time.
    random = get_query("random")
    rng = np.random.default_rng(123)
    hits = np.zeros(10)
    for _ in range(2000):
        hits[top_k(random.scores(n=10, rng=rng), 3)] += 1
    np.testing.assert_allclose(hits / 2000, 0.3, atol=0.04)


def test_custom_sample_free_strategy(cleanup):
    cleanup.append("first_come")
    register_query(
        "first_come",
        lambda n, rng: -np.arange(n, dtype=float),
        needs_samples=False,
        description="label in pool order",
    )
    np.testing.assert_array_equal(top_k(get_query("first_come").scores(n=5), 2), [0, 1])

"""The shared keyword check: one TypeError sentence naming the bad keyword, every accepted one
(sorted) and the closest accepted name."""

from __future__ import annotations

import copy
import functools

import pytest

from al_experiments.validation import reject_unknown_kwargs, signature_names


def test_known_keywords_pass():
    reject_unknown_kwargs("Thing", {"b": 1, "a": 2}, ["a", "b", "c"])
    reject_unknown_kwargs("Thing", {}, [])


def test_one_unknown_keyword_with_a_close_match():
    with pytest.raises(TypeError) as err:
        reject_unknown_kwargs("McDropout", {"rest": "warm"}, ["verbose", "reset", "checkpoint", "name"])
    assert str(err.value) == (
        "McDropout got an unexpected keyword argument 'rest'; it accepts: checkpoint, name, reset, "
        "verbose. Did you mean 'reset'?"
    )


def test_no_suggestion_when_nothing_is_close_and_duplicates_listed_once():
    with pytest.raises(TypeError) as err:
        reject_unknown_kwargs("Loop", {"xyz": 1}, ("seed", "oracle", "seed"))
    assert str(err.value) == "Loop got an unexpected keyword argument 'xyz'; it accepts: oracle, seed."


def test_several_unknown_keywords_each_with_its_suggestion():
    with pytest.raises(TypeError) as err:
        reject_unknown_kwargs("Suit", {"sed": 1, "qqq": 2, "max_round": 3}, ["seed", "max_rounds", "runs"])
    assert str(err.value) == (
        "Suit got unexpected keyword arguments 'sed', 'qqq', 'max_round'; it accepts: max_rounds, runs, "
        "seed. Did you mean 'seed' for 'sed', 'max_rounds' for 'max_round'?"
    )


def test_signature_names_are_the_keyword_passable_parameters():
    def f(self, a, b=1, *args, c, **kwargs):
        pass

    def g(d, /, e=2):
        pass

    assert signature_names(f, g) == {"a", "b", "c", "e"}


# ----------------------------------------------------------------------------- the vocabulary
import importlib  # noqa: E402
from numbers import Integral, Real  # noqa: E402

import numpy as np  # noqa: E402

from al_experiments.validation import (  # noqa: E402
    RNG,
    SEED,
    YAML_WORDS,
    AnyOf,
    Boolean,
    InvalidParameterError,
    Interval,
    ListOf,
    Options,
    WholeCount,
    declared_parameters,
    invalid_message,
    optional,
    rng_from,
    validate_params,
)

# Every module that declares parameters (none imports TensorFlow): importing them fills the list
# of declarations the test below walks, so a new declaration is tested without being named here.
for _module in ("al_experiments.acquisition", "al_experiments.loop", "al_experiments.suit",
                "al_experiments.dataset", "al_experiments.pool", "al_experiments.data.scenarios"):
    importlib.import_module(_module)
DECLARED = [pytest.param(function, name, constraint, id=f"{function.__module__}.{function.__qualname__}:{name}")
            for function, name, constraint in declared_parameters()]


def test_every_module_with_checks_declares_some():
    modules = {function.__module__ for function, _, _ in declared_parameters()}
    assert {"al_experiments.acquisition.ranking", "al_experiments.acquisition.builtin_batch",
            "al_experiments.acquisition.batch.batch_bald", "al_experiments.acquisition.batch.coreset",
            "al_experiments.acquisition.batch.epig", "al_experiments.acquisition.batch.stochastic",
            "al_experiments.loop", "al_experiments.suit", "al_experiments.dataset", "al_experiments.pool",
            "al_experiments.data.scenarios",
            "al_experiments.acquisition.acquisition_function"} <= modules


@pytest.mark.parametrize("function, name, constraint", DECLARED)
def test_every_declared_parameter_refuses_an_invalid_value_in_the_one_form(function, name, constraint):
    """Like scikit-learn's common test: the declarations are read back and every parameter gets
    values out of range and of a wrong type, refused before the function does any work (no other
    argument is passed), with the one sentence."""
    bad_values = constraint.invalid_values()
    assert bad_values, f"{name}: the constraint offers no invalid value to try"
    for bad in bad_values:
        with pytest.raises(InvalidParameterError) as err:
            function(**{name: bad})
        assert str(err.value) == invalid_message(name, bad, constraint)
        assert str(err.value).startswith(f"{name}={bad!r} is invalid: it must be ")


@pytest.mark.parametrize("constraint, accepted, refused, words", [
    (Interval(Integral, 1, None, closed="left"), [1, 7, np.int64(3), np.uint8(2)], [0, -1, 3.0, 1.5, True, "2", None],
     "a whole number >= 1"),
    (Interval(Integral, 0, 10, closed="left"), [0, 9], [10, -1], "a whole number in [0, 10)"),
    (Interval(Real, 0, 1, closed="right"), [1, 0.5, np.float32(0.25)], [0, 0.0, 1.01, np.nan, False, "0.5"],
     "a number in (0, 1]"),
    (Interval(Real, 0, None, closed="neither"), [1e-9, 3, 2.5], [0, -1.0, np.inf, np.nan], "a finite number > 0"),
    (Options(("pool", "validation")), ["pool"], ["test", None, 0], "one of 'pool', 'validation'"),
    (Options((0, 1)), [0, 1], [True, False, 2], "one of 0, 1"),
    (Boolean(), [True, False, np.bool_(True)], [0, 1, "true", None], "True or False"),
    (WholeCount(1), [1, 300, 300.0], [0, 2.5, True, np.inf], "a whole count >= 1"),
    (optional(Interval(Integral, 1, None, closed="left")), [None, 4], [0, 1.0], "a whole number >= 1 or None"),
    (AnyOf(Interval(Real, 0, 1, closed="neither"), WholeCount(1)), [0.5, 3, 3.0], [0, 1.5, -0.5],
     "a number in (0, 1) or a whole count >= 1"),
    (ListOf(SEED), [[0, 1], [np.int64(5)]], [[], [-1], (0, 1), 0], "a non-empty list, each item a whole number in "
                                                                  "[0, 4294967295]"),
    (SEED, [0, 2**32 - 1, np.int32(4)], [-1, 2**32, 1.0, True, None], "a whole number in [0, 4294967295]"),
    (RNG, [None, 0, 2**40, np.random.default_rng(0), np.random.SeedSequence(1), np.random.PCG64(2)],
     [-1, 1.5, "1", True, np.random.RandomState(0)],
     "None, a whole number >= 0 or a numpy Generator (or SeedSequence)"),
])
def test_constraints_accept_what_they_describe(constraint, accepted, refused, words):
    for value in accepted:
        assert constraint.accepts(value), value
        constraint.check("x", value)
    for value in refused:
        assert not constraint.accepts(value), value
        with pytest.raises(InvalidParameterError, match=r"^x=.* is invalid: it must be ") as err:
            constraint.check("x", value)
        assert str(err.value) == f"x={value!r} is invalid: it must be {words}."


def test_the_config_spells_none_and_booleans_as_yaml_does():
    assert optional(Boolean()).describe(YAML_WORDS) == "true or false or null"
    with pytest.raises(ValueError, match=r"^n=0 is invalid: it must be a whole number >= 1 or null\.$"):
        optional(Interval(Integral, 1, None, closed="left")).check("n", 0, YAML_WORDS)


def test_a_declaration_is_checked_before_the_call_and_names_only_known_parameters():
    calls = []

    @validate_params({"size": Interval(Integral, 0, None, closed="left")})
    def take(items, size=1, **extra):
        calls.append((items, size, extra))
        return size

    assert take([1], np.int64(2)) == 2 and take([1], size=0) == 0
    with pytest.raises(InvalidParameterError, match=r"^size=-1 is invalid"):
        take([1], -1)
    assert len(calls) == 2  # the refused call never ran
    with pytest.raises(TypeError):  # Python's own message for a call that cannot bind
        take()
    with pytest.raises(TypeError, match="declares constraints for parameters it does not take: width"):
        validate_params({"width": Boolean()})(lambda size: size)


def test_rng_from_is_numpy_default_rng_after_one_check():
    gen = np.random.default_rng(3)
    assert rng_from(gen) is gen
    np.testing.assert_array_equal(rng_from(7).random(3), np.random.default_rng(7).random(3))
    with pytest.raises(InvalidParameterError, match=r"^rng=-1 is invalid: it must be None, a whole number >= 0"):
        rng_from(-1)


# ----------------------------------------------------------------------------- the config's values
@functools.cache
def _shipped_configs() -> tuple:
    """The default config and the one of the CNN preset (which has the keys of a convolutional
    network), composed once."""
    from hydra import compose, initialize_config_module

    from al_experiments.app.schema import register_configs

    register_configs()
    with initialize_config_module("al_experiments.conf", version_base=None):
        return tuple(compose("config", overrides=overrides) for overrides in ([], ["model=mc_dropout_cnn"]))


def _config_with(key: str):
    """A fresh copy of the default config, or of one whose network has ``key`` where the
    default's has not."""
    from omegaconf import OmegaConf

    for cfg in _shipped_configs():
        if OmegaConf.select(cfg, key, default=KeyError) is not KeyError:
            return copy.deepcopy(cfg)
    raise AssertionError(f"no shipped config has {key}")


def _schema_cases():
    from al_experiments.app.schema import VALUE_CONSTRAINTS

    return [pytest.param(key, constraint, id=key) for key, constraint in VALUE_CONSTRAINTS.items()]


@pytest.mark.parametrize("key, constraint", _schema_cases())
def test_every_declared_config_value_is_refused_in_the_one_form(key, constraint):
    """The schema's declarations read back: each key gets every invalid value its node's type can
    hold (a value the type refuses never reaches ``validate``), refused with the one sentence in
    the config's words."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from al_experiments.app.errors import ConfigError
    from al_experiments.app.schema import validate

    tried = 0
    for bad in constraint.invalid_values():
        cfg = _config_with(key)
        try:
            OmegaConf.update(cfg, key, bad)
        except ValidationError:
            continue  # the node's type already refuses it, at compose
        stored = OmegaConf.select(cfg, key)
        if constraint.accepts(stored):
            continue  # converted by the node's type into an accepted value ("1" -> 1)
        with pytest.raises(ConfigError) as err:
            validate(cfg)
        assert str(err.value) == invalid_message(key, stored, constraint, YAML_WORDS)
        tried += 1
    assert tried, f"no invalid value of {key} reached validate"

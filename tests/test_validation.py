"""The shared keyword check: one TypeError sentence naming the bad keyword, every accepted one
(sorted) and the closest accepted name."""

from __future__ import annotations

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

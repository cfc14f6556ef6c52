"""The README's Python example, run as it is written: it must run, and its defaults must train
well enough that every run gains accuracy from its first query (with 50 epochs of 20 points,
one gradient step each, all ten runs lost accuracy after it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    text = README.read_text()
    section = text[text.index("## The Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_python_example_runs_and_gains_from_its_first_query(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_example(), str(README), "exec"), namespace)

    def accuracy(history):
        return [step["eval"]["sparse_categorical_accuracy"] for step in history]

    runs = {"loop": namespace["history"], **namespace["results"]}
    assert len(runs) == 11 and all(len(h) == 10 for h in runs.values())
    for name, history in runs.items():
        first, second = accuracy(history)[:2]
        assert second > first, (name, accuracy(history))
    assert len(list((tmp_path / "metrics").glob("*.csv"))) == 10

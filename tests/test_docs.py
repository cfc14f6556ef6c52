"""The documents point at real things: every test docs/tf_al_differences.md names as the guard
of a tf_al fix (or of a deliberate refusal) exists, so the table cannot silently outlive a renamed or deleted test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_guarding_test_named_for_a_tf_al_fix_exists():
    text = (ROOT / "docs" / "tf_al_differences.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"^\| [BR]\d+ \|", line)]
    assert len(rows) == 16  # 15 fixes (B) and one deliberate refusal (R)
    for row in rows:
        references = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", row)
        assert references, row
        for path, name in references:
            source = (ROOT / path).read_text()
            assert not name or re.search(rf"^def {name}\(", source, re.M), f"{path}::{name}"

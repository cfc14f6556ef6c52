"""Nested mappings read as flat keys: MLflow params (``model.fit.epochs``) and tf_al's CSV
columns (``eval_accuracy``) are the same walk with a different separator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def flat_items(tree: Mapping[Any, Any], separator: str) -> Iterator[tuple[str, str, Any]]:
    """``(joined key, top-level key, leaf)`` for every leaf of ``tree``, in order.

    A leaf is anything that is not a mapping; an empty mapping has no leaves.
    """
    for top_key, value in tree.items():
        yield from _walk(str(top_key), str(top_key), value, separator)


def _walk(key: str, top_key: str, value: Any, separator: str) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            yield from _walk(f"{key}{separator}{sub_key}", top_key, sub_value, separator)
    else:
        yield key, top_key, value

"""``Config``: keyword settings for a wrapped model, grouped in sections (tf_al's API).

The loop reads three sections: ``fit`` (kwargs for ``Model.fit``), ``query`` (kwargs for the
query function, e.g. ``sample_size``) and ``eval`` (kwargs for ``Model.evaluate``).
"""

from __future__ import annotations

import copy
from typing import Any, Iterator


class Config:
    """A bag of keyword arguments with optional ``defaults`` filled in for missing keys.

    Args:
        **kwargs: Settings. The reserved key ``defaults`` (a dict) supplies values for keys that
            are missing or None.
    """

    def __init__(self, **kwargs: Any) -> None:
        defaults = kwargs.get("defaults")
        if defaults is not None and not isinstance(defaults, dict):
            raise ValueError(
                f"Config(defaults=...) must be a dict of default values, got {type(defaults).__name__}."
            )
        for key, value in (defaults or {}).items():
            if kwargs.get(key) is None:
                kwargs[key] = copy.deepcopy(value)
        self.kwargs = kwargs

    def __getitem__(self, key: str) -> Any:
        return self.kwargs[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.kwargs[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.kwargs

    def __iter__(self) -> Iterator[str]:
        return iter(self.kwargs)

    def get(self, key: str, default: Any = None) -> Any:
        return self.kwargs.get(key, default)

    def section(self, name: str) -> dict[str, Any]:
        """A copy of one section (``fit``, ``query``, ``eval``), empty if absent.

        A copy, so that callers never mutate the user's Config.
        """
        value = self.kwargs.get(name)
        return dict(value) if isinstance(value, dict) else {}

    def __repr__(self) -> str:
        return f"Config({self.kwargs!r})"

"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
from _app_helpers import with_store

from al_experiments.acquisition import UnknownQueryError, unregister_query


@pytest.fixture
def cleanup():
    """Names registered by a test are removed afterwards so tests stay independent."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            unregister_query(name)
        except UnknownQueryError:
            pass


@pytest.fixture
def folder(tmp_path, tmp_path_factory):
    """The test's folder, with an empty MLflow store in it."""
    return with_store(tmp_path, tmp_path_factory)

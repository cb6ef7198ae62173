"""Fixtures of the register's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hierarchy.search.names import NAMES


@pytest.fixture
def fresh_database(fresh_database: str) -> Iterator[str]:
    """The top-level fixture, and then: a name index being built from this database in a
    worker thread (PostgreSQL, an app on an engine) ends before the database is dropped,
    and no index of it is left for the next test."""
    yield fresh_database
    NAMES.wait()
    NAMES.clear()

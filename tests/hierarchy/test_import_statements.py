"""An import asks for its batches of codes with one parameter, not one per code: on
PostgreSQL a statement of 1,000 placeholders is parsed and converted again by psycopg each
time it runs (~12 ms of Python per 1,000 codes against ~3 for one array parameter,
``sorregistry.database.one_of``), and a first import asked it twice per batch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hierarchy.sor_import import import_sor_file
from tests.support.exports import generator

ENTITIES = 2500  # more than one batch of the import's look-ups (2,000), as at any real size
MOST_PARAMETERS = 100  # a statement's own values; a list of codes would be hundreds


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("statements-exports")
    first, changed = folder / "first.xml", folder / "changed.xml"
    gen = generator()
    gen.generate(first, ENTITIES, seed=21, municipalities=2, regions=1)
    gen.generate(changed, ENTITIES, seed=21, municipalities=2, regions=1, mutate=0.1,
                 drop=0.05)
    return first, changed


@pytest.fixture
def parameter_counts(session) -> Iterator[list[tuple[int, str]]]:
    """(number of parameters, the statement's start) of every statement run meanwhile."""
    counts: list[tuple[int, str]] = []
    engine = session.get_bind().engine

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
             executemany: bool) -> None:
        rows: Sequence[Any] = parameters if executemany else [parameters]
        for row in rows:
            size = len(row) if isinstance(row, Mapping | Sequence) else 0
            counts.append((size, statement[:120]))

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_no_import_statement_carries_a_list_of_codes(session, backend, exports,
                                                     parameter_counts):
    if backend != "postgresql":
        pytest.skip("SQLite is given IN lists: its statements are not converted by psycopg")
    first, changed = exports
    created = import_sor_file(session, first, actor="test")
    assert created.total == ENTITIES
    again = import_sor_file(session, changed, actor="test")
    assert sum(again.count(level, "changed") for level in ("IE", "SI", "OE")) > 0
    assert sum(again.count(level, "closed") for level in ("IE", "SI", "OE")) > 0
    assert parameter_counts, "no statement was seen"
    largest = max(parameter_counts)
    assert largest[0] <= MOST_PARAMETERS, largest

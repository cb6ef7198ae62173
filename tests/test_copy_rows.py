"""The bulk writers' COPY (sorregistry.database.copy_rows): values a file can carry - a
tab, a newline, a backslash in a name - arrive as they were sent."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from sorregistry.database import copy_rows, copy_text

AWKWARD = "Tab\there, line\nbreak, carriage\rreturn, back\\slash \\N and ø"


def test_copy_text_escapes_what_the_format_reads_specially():
    assert copy_text(None) == "\\N"
    assert copy_text(AWKWARD) == (
        "Tab\\there, line\\nbreak, carriage\\rreturn, back\\\\slash \\\\N and ø")
    assert (copy_text(True), copy_text(False), copy_text(7)) == ("t", "f", "7")
    assert copy_text(date(2026, 12, 5)) == "2026-12-05"
    assert copy_text(datetime(2026, 12, 5, 22, 0, tzinfo=UTC)) == "2026-12-05T22:00:00+00:00"


def test_copied_rows_arrive_as_sent(session, backend):
    if backend != "postgresql":
        pytest.skip("COPY is PostgreSQL's; SQLite's writers insert")
    connection = session.connection()
    connection.execute(text("CREATE TEMP TABLE copied (name text, gone text, yes boolean, "
                            "day date, at timestamptz, n integer)"))
    at = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    copy_rows(connection, "copied", ("name", "gone", "yes", "day", "at", "n"), [
        {"name": AWKWARD, "gone": None, "yes": True, "day": date(2026, 12, 5), "at": at,
         "n": 7, "ignored": "not a column"},
    ])
    row = connection.execute(text("SELECT name, gone, yes, day, at, n FROM copied")).one()
    assert tuple(row) == (AWKWARD, None, True, date(2026, 12, 5), at, 7)

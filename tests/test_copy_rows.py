"""The bulk writers' COPY (sorregistry.database.copy_rows): values a file can carry - a
tab, a newline, a backslash in a name - arrive as they were sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from sorregistry.database import copy_lines, copy_rows, copy_text

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


def test_copy_lines_are_each_value_as_copy_text_makes_it():
    """Lines made whole and checked once equal lines made value by value: texts with and
    without what must be escaped, NULLs, booleans, numbers, dates and times - the same
    instant in two zones kept apart, though they compare equal - one column, none."""
    at = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    elsewhere = at.astimezone(timezone(timedelta(hours=1)))
    assert at == elsewhere
    texts = ["plain", "", "ø and æ", AWKWARD, "\\N", "tab\there", "a\\b", "\n", "\r"]
    others = [None, True, False, 0, 1, 7, 2.5, date(2026, 12, 5), at, elsewhere, at]
    columns = ("a", "b", "c")
    values = texts + others
    rows = [{"a": values[i % len(values)], "b": values[(i * 7) % len(values)],
             "c": values[(i * 3 + 1) % len(values)], "not": "a column"} for i in range(200)]
    expected = "".join("\t".join(copy_text(row[name]) for name in columns) + "\n"
                       for row in rows).encode()
    assert copy_lines(columns, rows) == expected
    assert b"2026-12-05T23:00:00+01:00" in expected and b"2026-12-05T22:00:00+00:00" in expected
    assert copy_lines(("a",), rows[:20]) == "".join(
        copy_text(row["a"]) + "\n" for row in rows[:20]).encode()
    assert copy_lines(columns, []) == b""

"""Reading the feed: a page of entries after a position, as the API shows them.

A page is one statement: the commits from the one holding the position after *after*
on (``register_commits`` by ``first_position``, its unique index), each commit's
entries by number (``feed_entries``' unique index on ``commit_id, commit_seq``),
``first_position + commit_seq - 1 > after``, in that order, *limit* + 1 rows (the
extra one says whether more follow). It reads committed rows only, and what it sees
is a prefix of the positions: a commit takes its positions under the lock the next
committer waits for (``hierarchy.changes``), so none can appear below one already seen.

On PostgreSQL the statements run on the worker thread's own connection
(``sorregistry.reads``), rows as named tuples with JSON decoded by orjson; elsewhere
through the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from flask import Flask
from sqlalchemy import BigInteger, Integer, bindparam, func, select

from hierarchy.feed.entries import ENTRIES, STATE_COLUMNS
from hierarchy.models import FeedState, RegisterCommit, RegisterVersion, table_of
from hierarchy.schemas import organisation_item
from sorregistry.reads import Reads

_COMMITS = table_of(RegisterCommit)
_REGISTER = table_of(RegisterVersion)
_STATE = table_of(FeedState)
_KEY = "sor.feed_cursor_key"


def _page_statement() -> Any:
    commits = _COMMITS.alias("c")
    before = _COMMITS.alias("before")
    after = bindparam("after", type_=BigInteger)
    position = (commits.c.first_position + ENTRIES.c.commit_seq - 1).label("position")
    # The commit holding position after + 1 (0: before the first).
    start = (
        select(func.coalesce(func.max(before.c.first_position), 0))
        .where(before.c.first_position <= after + 1)
        .scalar_subquery()
    )
    return (
        select(
            position,
            ENTRIES.c.sor_code,
            ENTRIES.c.change,
            ENTRIES.c.changed_fields,
            ENTRIES.c.by_inheritance,
            ENTRIES.c.recorded_at,
            ENTRIES.c.source,
            ENTRIES.c.reference,
            ENTRIES.c.took_effect_on,
            *[ENTRIES.c[name] for name in STATE_COLUMNS],
        )
        .select_from(commits.join(ENTRIES, ENTRIES.c.commit_id == commits.c.id))
        .where(commits.c.first_position >= start, position > after)
        .order_by(commits.c.first_position, ENTRIES.c.commit_seq)
        .limit(bindparam("limit", type_=Integer))
    )


PAGE = _page_statement()
LAST_POSITION = select(_REGISTER.c.last_position).where(_REGISTER.c.name == "register")
CURSOR_KEY = select(_STATE.c.cursor_key).where(_STATE.c.name == "feed")


@dataclass(frozen=True, slots=True)
class Page:
    """Entries after a position; *last* is the last entry's position (or the one asked
    after, when none); *more* whether more entries followed these; *register_last* the
    last position handed out, read with the page."""

    items: list[dict[str, Any]]
    last: int
    more: bool
    register_last: int


def cursor_key(app: Flask, reads: Reads) -> bytes:
    """The register's cursor key, read once per app (it never changes)."""
    key: bytes | None = app.extensions.get(_KEY)
    if key is None:
        found = reads.scalar(CURSOR_KEY, {})
        if found is None:
            raise RuntimeError("the feed has no cursor key: run `sorregistry db upgrade`")
        key = app.extensions[_KEY] = bytes.fromhex(found)
    return key


def entry_item(row: Any) -> dict[str, Any]:
    """One entry as the API shows it, from a row of :data:`PAGE`."""
    return {
        "position": row.position,
        "sor_code": row.sor_code,
        "change": row.change,
        "changed_fields": row.changed_fields.rstrip(",").split(",")
        if row.changed_fields else [],
        "inherited": row.by_inheritance,
        "recorded_at": row.recorded_at.astimezone(UTC),
        "source": row.source,
        "reference": row.reference,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "took_effect_on": row.took_effect_on,
        "organisation": organisation_item(row),
    }


def read_page(reads: Reads, after: int, limit: int) -> Page:
    """The entries after position *after*, at most *limit*."""
    rows, last_rows = reads.batch([
        (PAGE, {"after": after, "limit": limit + 1}),
        (LAST_POSITION, {}),
    ])
    register_last = last_rows[0][0] if last_rows else 0
    items = [entry_item(row) for row in rows[:limit]]
    last = items[-1]["position"] if items else after
    return Page(items, last, len(rows) > limit, register_last)

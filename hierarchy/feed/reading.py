"""Reading the feed: a page of entries after a position, as the API shows them.

Each entry was rendered when it was recorded (``feed_entries.item``,
``hierarchy.feed.items``): a page is its entries' stored texts, each given its position,
joined - no entry is rendered, parsed or made an object on the way out (:meth:`Page.array`;
:attr:`Page.entries` one by one, :attr:`Page.items` parsed, for callers in Python).

A page is one statement over a window of positions, (after, after + limit + 1]: the
commits whose first position lies in it or holds its start (``register_commits`` by
``first_position``, its unique index), and of each the entries numbered within the
window - a range of ``feed_entries``' unique index on ``commit_id, commit_seq`` - in
position order. However large a commit (an import's 200,000 entries), a page reads at
most limit + 1 rows: the extra one says that more follow. Positions that hold no entry
(a change rolled back to a savepoint; a register's history from before the feed) make a
window short; the next one is read then, a few at most.

It reads committed rows only, and what it sees is a prefix of the positions: a commit
takes its positions under the lock the next committer waits for (``hierarchy.changes``),
so none can appear below one already seen. The register's last position is read first
(positions up to it are committed, so visible to the page's read that follows).

On PostgreSQL the statements run on the worker thread's own connection
(``sorregistry.reads``), rows as named tuples; elsewhere through the session. There the
items come as their UTF-8 (``convert_to``) in the binary format: bytes put in the page as
they are, neither decoded into Python text nor encoded again (a page of 1,000 at 20k, in
process: 16-18 -> 10-12 ms; as hex, the text format's bytea, 13-14 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask
from sqlalchemy import BigInteger, bindparam, func, literal_column, select, true

from hierarchy.feed.entries import ENTRIES
from hierarchy.feed.items import with_position
from hierarchy.models import FeedState, RegisterCommit, RegisterVersion, table_of
from sorregistry.reads import DirectReads, Reads

_COMMITS = table_of(RegisterCommit)
_REGISTER = table_of(RegisterVersion)
_STATE = table_of(FeedState)
_KEY = "sor.feed_cursor_key"
_MAX_WINDOWS = 50  # windows of positions one page reads, at most


def _page_statement(lateral: bool) -> Any:
    commits = _COMMITS.alias("c")
    before = _COMMITS.alias("before")
    after = bindparam("after", type_=BigInteger)
    through = bindparam("through", type_=BigInteger)
    # The commit holding position after + 1 (0: before the first).
    start = (
        select(func.coalesce(func.max(before.c.first_position), 0))
        .where(before.c.first_position <= after + 1)
        .scalar_subquery()
    )
    # Both bounds on commit_seq, so each commit's entries are a range of its index.
    in_window = (
        ENTRIES.c.commit_id == commits.c.id,
        ENTRIES.c.commit_seq > after - commits.c.first_position + 1,
        ENTRIES.c.commit_seq <= through - commits.c.first_position + 1,
    )
    window = (commits.c.first_position >= start, commits.c.first_position <= through)
    if not lateral:
        position = (commits.c.first_position + ENTRIES.c.commit_seq - 1).label("position")
        return (
            select(position, ENTRIES.c.item)
            .select_from(commits.join(ENTRIES, in_window[0]))
            .where(*window, *in_window[1:])
            .order_by(commits.c.first_position, ENTRIES.c.commit_seq)
        )
    # PostgreSQL: each commit's entries read by a range scan of (commit_id, commit_seq),
    # the commit's bounds as the scan's parameters. Joined plainly, the planner hashes
    # the window's commit against a sequential scan of every entry (its estimate of a
    # range bounded by another table's column is blind): a page then costs the whole
    # feed's size, and a catch-up from zero grows with its square.
    entries = (
        select(ENTRIES.c.commit_seq,
               func.convert_to(ENTRIES.c.item, literal_column("'UTF8'")).label("item"))
        .where(*in_window)
        .order_by(ENTRIES.c.commit_seq)
        .limit(through - after)
        .lateral("e")
    )
    position = (commits.c.first_position + entries.c.commit_seq - 1).label("position")
    return (
        select(position, entries.c.item)
        .select_from(commits.join(entries, true()))
        .where(*window)
        .order_by(commits.c.first_position, entries.c.commit_seq)
    )


PAGE = _page_statement(lateral=False)
PAGE_POSTGRESQL = _page_statement(lateral=True)
LAST_POSITION = select(_REGISTER.c.last_position).where(_REGISTER.c.name == "register")
CURSOR_KEY = select(_STATE.c.cursor_key).where(_STATE.c.name == "feed")


@dataclass(frozen=True, slots=True)
class Page:
    """Entries after a position; *last* is the last entry's position (or the one asked
    after, when none); *more* whether more entries followed these; *register_last* the
    last position handed out, read with the page."""

    rows: list[Any]  # (position, item): the entry's stored text, less its position
    last: int
    more: bool
    register_last: int

    @property
    def entries(self) -> list[bytes]:
        """Each entry as the API shows it, encoded."""
        return [with_position(row.position, row.item) for row in self.rows]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The entries decoded (dates as the API shows them: ISO 8601 text)."""
        return [orjson.loads(entry) for entry in self.entries]

    def array(self) -> bytes:
        """The entries as a JSON array, encoded: the stored texts joined in one copy,
        each with its position put in front (a page of 1,000 is ~1.2 MB; copying each
        entry into one of its own first cost a catch-up more than the join)."""
        parts: list[bytes | memoryview] = []
        for row in self.rows:
            item = row.item
            parts += (b',{"position":%d,' % row.position,
                      memoryview(item if isinstance(item, bytes) else item.encode())[1:])
        if parts:
            parts[0] = parts[0][1:]
        return b"[" + b"".join(parts) + b"]"


def cursor_key(app: Flask, reads: Reads) -> bytes:
    """The register's cursor key, read once per app (it never changes)."""
    key: bytes | None = app.extensions.get(_KEY)
    if key is None:
        found = reads.scalar(CURSOR_KEY, {})
        if found is None:
            raise RuntimeError("the feed has no cursor key: run `sorregistry db upgrade`")
        key = app.extensions[_KEY] = bytes.fromhex(found)
    return key


def _dialect(reads: Reads) -> str:
    if isinstance(reads, DirectReads):
        return str(reads.engine.dialect.name)
    return str(reads.session.get_bind().dialect.name)


def read_page(reads: Reads, after: int, limit: int) -> Page:
    """The entries after position *after*, at most *limit*.

    A page that is not full has read every entry up to the register's last position as
    read first (all committed, so all visible): its cursor moves past positions left
    empty there (a change rolled back to a savepoint), and ``more`` is false - a client
    that reads "while more" stops. An empty page keeps the cursor it was given, unless
    only empty positions lay in all the windows it read (then it moves past them).
    """
    through = after + limit + 1
    page = PAGE_POSTGRESQL if _dialect(reads) == "postgresql" else PAGE
    last_rows, rows = reads.batch([
        (LAST_POSITION, {}),
        (page, {"after": after, "through": through}),
    ], binary=True)
    committed = int(last_rows[0][0]) if last_rows else 0  # positions up to it: committed
    register_last = max(committed, rows[-1].position if rows else 0)
    windows = 1
    # Positions without an entry (a change rolled back to a savepoint, history from before
    # the feed): read the next window, while the page is short and positions remain.
    while len(rows) <= limit and through < register_last and windows < _MAX_WINDOWS:
        start, through = through, through + limit + 1 - len(rows)
        rows = [*rows, *reads.rows(page, {"after": start, "through": through}, binary=True)]
        windows += 1
    entries = rows[:limit]
    full = len(rows) > limit
    if full:
        last = int(rows[limit - 1].position)
    elif entries:  # every entry through min(through, committed) is on this page
        last = max(int(rows[-1].position), min(through, committed))
    elif through < register_last:  # _MAX_WINDOWS of empty positions: past them
        last = min(through, committed)
    else:
        last = after
    return Page(entries, last, full or through < register_last, register_last)

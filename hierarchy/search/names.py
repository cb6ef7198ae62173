"""The worker's in-memory name index: a plain name search answered from memory.

A name type-ahead the answer cache has not seen costs the exact total: every match
visited in PostgreSQL (35,114 for "sen" in a national register, ~15-30 ms). Each worker
therefore keeps the folded names of the organisations active today in memory, sorted
as the SQL path sorts them (name_search, sor_code; collation "C" is code point order,
as Python compares strings), with, for every trigram, the ascending list of the
distinct names holding it and the number of organisations bearing those names. A
three-letter type-ahead is then a dictionary look-up for its exact total and a walk
of the first few names for its page; longer fragments check the names of their rarest
trigram. Only the page's rows are read from the database. The index belongs to one
register version and one day; when either changes it is rebuilt (on PostgreSQL in a
background thread while the searches meanwhile take the SQL path; elsewhere by the
request that finds it stale).

Which searches it answers: :func:`indexable`. Its answers are those of the SQL path,
item for item, total and cursors (tests/hierarchy/test_name_index.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Generator, Hashable, Iterable, Sequence
from datetime import date

from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from hierarchy.models import OrganisationName
from hierarchy.search.cursor import Key
from hierarchy.search.filters import (
    FILTER_NAMES,
    WORD_SEPARATORS,
    Filters,
    NameMatch,
    Sort,
    name_words,
)
from hierarchy.service import _VERSION_QUERY
from sorregistry import replicas
from sorregistry.database import DbSession

logger = logging.getLogger(__name__)

# One organisation as the index reads it: (name_search, sor_code, level, ownership).
NameRow = tuple[str, str, str, str | None]

_LEVEL_CODES = {"IE": 1, "SI": 2, "OE": 4}
# A build in a worker's thread is a second of pure Python: it gives up the GIL this
# often (a few hundred microseconds of work), or a request thread waiting for the GIL
# would wait the whole switch interval (5 ms) at each of its round trips.
_YIELD_EVERY = 200


class NameIndex:
    """The organisations active on *day* in register version *version*, by folded name."""

    def __init__(self, version: Hashable, day: date, rows: Iterable[NameRow]) -> None:
        """*rows*: (name_search, sor_code, level, ownership) in (name_search, sor_code) order;
        read one at a time (a register's rows as tuples would take three times the index)."""
        self.version = version
        self.day = day
        self.ownership_codes: dict[str, int] = {}
        codes: list[str] = []
        levels = bytearray()
        ownerships = bytearray()
        names: list[str] = []  # the distinct names, in order
        starts = array("i")  # the first row of each distinct name; then the number of rows
        previous: tuple[str, str] = ("", "")
        for i, (name, code, level, ownership) in enumerate(rows):
            if not i % _YIELD_EVERY:
                time.sleep(0)  # let the worker's request threads have the GIL (see below)
            if (name, code) <= previous and i:
                raise ValueError(f"rows out of order at {name!r}, {code!r}")
            if name != previous[0] or not i:
                names.append(name)
                starts.append(i)
            previous = (name, code)
            codes.append(code)
            levels.append(_LEVEL_CODES.get(level, 0))
            if ownership is None:
                ownerships.append(0)
            else:
                ownerships.append(self.ownership_codes.setdefault(
                    ownership, len(self.ownership_codes) + 1))
        starts.append(len(codes))
        self.codes = codes
        self.levels = bytes(levels)
        self.ownerships = bytes(ownerships)
        self.names = names
        self.starts = starts
        postings: dict[str, array[int]] = {}
        totals: dict[str, int] = {}
        for j, name in enumerate(names):
            if not j % (_YIELD_EVERY // 4):
                time.sleep(0)
            bearers = starts[j + 1] - starts[j]
            for gram in {name[k:k + 3] for k in range(len(name) - 2)}:
                posting = postings.get(gram)
                if posting is None:
                    postings[gram] = posting = array("i")
                    totals[gram] = 0
                posting.append(j)
                totals[gram] += bearers
        self.postings = postings
        self.totals = totals

    def __len__(self) -> int:
        return len(self.codes)

    def _names_matching(self, folded: str, mode: NameMatch) -> Sequence[int]:
        """The distinct names (ascending numbers) holding *folded*, as LIKE would find them."""
        names = self.names
        if mode == "words":  # the longest word anywhere, then each word at a word's start
            words = name_words(folded)
            starts = [re.compile("(?:^|[" + re.escape("".join(WORD_SEPARATORS)) + "])"
                                 + re.escape(word)) for word in words]
            return [j for j in self._names_matching(words[0], "contains")
                    if all(start.search(names[j]) for start in starts)]
        if mode == "prefix":
            lo = bisect_left(names, folded)
            hi = bisect_right(names, folded, lo, key=lambda s: s[:len(folded)])
            return range(lo, hi)
        if len(folded) < 3:
            return [j for j, name in enumerate(names) if folded in name]
        grams = [folded[k:k + 3] for k in range(len(folded) - 2)]
        postings = [self.postings[gram] for gram in grams if gram in self.postings]
        if len(postings) < len(grams):
            return []
        rarest = min(postings, key=len)
        if len(folded) == 3:
            return rarest
        return [j for j in rarest if folded in names[j]]

    def search(self, folded: str, mode: NameMatch, levels: list[str], ownership: str | None,
               limit: int, after: Key | None) -> tuple[list[tuple[str, str]], int, bool]:
        """(the page's (name_search, sor_code) in order, the exact total, whether more follow)."""
        matching = self._names_matching(folded, mode)
        starts, names, codes = self.starts, self.names, self.codes
        wanted_levels = sum(_LEVEL_CODES.get(level, 0) for level in set(levels))
        wanted_ownership = self.ownership_codes.get(ownership, -1) if ownership else 0
        filtered = bool(levels or ownership)
        row_levels, row_ownerships = self.levels, self.ownerships

        def keep(i: int) -> bool:
            return ((not levels or row_levels[i] & wanted_levels != 0)
                    and (not ownership or row_ownerships[i] == wanted_ownership))

        if filtered:
            total = sum(1 for j in matching for i in range(starts[j], starts[j + 1]) if keep(i))
        elif mode == "contains" and len(folded) == 3:
            total = self.totals.get(folded, 0)
        elif isinstance(matching, range):
            total = starts[matching.stop] - starts[matching.start] if matching else 0
        else:
            total = sum(starts[j + 1] - starts[j] for j in matching)
        first_row = 0
        if after is not None:  # the first row after the cursor's key, in the sorted register
            j = bisect_left(names, after[0])
            if j < len(names) and names[j] == after[0]:
                first_row = bisect_right(codes, after[1], starts[j], starts[j + 1])
            else:
                first_row = starts[j]
        position = bisect_left(matching, bisect_right(starts, first_row) - 1)
        page: list[tuple[str, str]] = []
        for p in range(position, len(matching)):
            j = matching[p]
            for i in range(max(starts[j], first_row), starts[j + 1]):
                if not filtered or keep(i):
                    page.append((names[j], codes[i]))
                    if len(page) > limit:
                        return page[:limit], total, True
        return page, total, False


def read_names(connection: Connection, day: date) -> Generator[NameRow, None, None]:
    """The rows of a name index, in its order, one at a time: the driver holds the
    result (a plain cursor, nothing left open on the server if a build stops), and
    Python makes one row at a time, never a register's rows as tuples at once."""
    n = OrganisationName.__table__.c
    yield from connection.execute(
        select(n.name_search, n.sor_code, n.level, n.ownership)
        .where((n.valid_from.is_(None)) | (n.valid_from <= day),
               (n.valid_to.is_(None)) | (n.valid_to > day))
        .order_by(n.name_search, n.sor_code)
    )


class NameIndexes:
    """The worker's name index, rebuilt when the register version or the day changes."""

    def __init__(self) -> None:
        self.index: NameIndex | None = None
        self.lock = threading.Lock()  # held by the one build at a time
        self.last_build_seconds: float | None = None
        self.enabled = True

    def clear(self) -> None:
        self.index = None

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for a build under way to end (tests, before their database goes)."""
        if self.lock.acquire(timeout=timeout):
            self.lock.release()

    def get(self, session: DbSession, version: Hashable,
            day: date) -> NameIndex | None:
        """The index of *version* and *day*, or None (then search with SQL): being built."""
        index = self.index
        if index is not None and index.version == version and index.day == day:
            return index
        if not self.enabled or day != date.today():
            return None
        bind = session.get_bind()
        if (index is not None and index.day == day and _newer(index.version, version)
                and isinstance(bind, Engine) and replicas.route(bind) is not bind):
            # A request on a lagging standby (sorregistry.replicas): the index (built on
            # the primary) is ahead of it; SQL answers, and nothing is rebuilt.
            return None
        if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
            if self.lock.acquire(blocking=False):
                threading.Thread(target=self._build_from_engine, args=(bind, day),
                                 name="name-index", daemon=True).start()
            return None
        # SQLite, or a session bound to a connection (tests): this request builds it,
        # from what its own transaction sees, filed under the version it read.
        if not self.lock.acquire(blocking=False):
            return None
        try:
            t0 = time.perf_counter()
            rows = read_names(session.connection(), day)
            try:
                index = NameIndex(version, day, rows)
            finally:
                rows.close()
            self.last_build_seconds = time.perf_counter() - t0
            self.index = index
            return index
        finally:
            self.lock.release()

    def _build_from_engine(self, engine: Engine, day: date) -> None:
        """Build from one snapshot of the register, filed under the version of that snapshot."""
        try:
            t0 = time.perf_counter()
            with engine.connect() as connection:
                try:
                    connection = connection.execution_options(
                        isolation_level="REPEATABLE READ")
                    with connection.begin():
                        row = connection.execute(_VERSION_QUERY).first()
                        if row is None:
                            return
                        rows = read_names(connection, day)
                        try:
                            index = NameIndex((row[0], row[1]), day, rows)
                        finally:
                            rows.close()
                finally:
                    # Closed for good, not pooled: a build is rare (once per version), and
                    # a pooled connection would outlive an engine disposed meanwhile.
                    connection.invalidate()
            self.index = index
            self.last_build_seconds = time.perf_counter() - t0
        except Exception:  # the searches keep taking the SQL path; the next one retries
            logger.exception("building the name index failed")
        finally:
            self.lock.release()


def _newer(first: Hashable, second: Hashable) -> bool:
    """Whether register version *first* is newer than *second* ((number, stamp) pairs)."""
    return (isinstance(first, tuple) and isinstance(second, tuple)
            and first[0] > second[0])


NAMES = NameIndexes()
# The filters the index holds besides the name (level and ownership are in it).
_INDEX_FILTERS = frozenset({"level", "ownership", "name", "name_match", "active_on"})


def indexable(filters: Filters, sort: Sort) -> bool:
    """Whether the name index answers this search: a name search, sorted by name, with at
    most level and ownership filters, for today."""
    return (
        sort == "name"
        and bool(filters.name)
        and all(getattr(filters, name) in (None, [], "contains") or name in _INDEX_FILTERS
                for name in FILTER_NAMES)
    )

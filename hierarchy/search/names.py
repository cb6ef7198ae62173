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
register version and one day; at a new version it is patched from the change feed
(``hierarchy.search.patches``), and rebuilt on a new day or past a patch's size (on
PostgreSQL in a background thread while the searches meanwhile take the SQL path;
elsewhere by the request that finds it stale).

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
from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from datetime import date

from prometheus_client import Histogram
from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from hierarchy.feed.reading import LAST_POSITION
from hierarchy.models import OrganisationName
from hierarchy.search.cursor import Key
from hierarchy.search.filters import (
    FILTER_NAMES,
    WORD_SEPARATORS,
    Filters,
    NameMatch,
    Sort,
    every_word_begins,
    name_words,
    typed_words,
)
from hierarchy.search.fuzzy import MadeOnce, NameGrams, Vocabulary, trigrams
from hierarchy.search.patches import PatchedIndex, patch, patched_from_feed
from hierarchy.service import _VERSION_QUERY
from sorregistry import replicas
from sorregistry.database import DbSession, session_bind

logger = logging.getLogger(__name__)

# One organisation as the index reads it: (name_search, sor_code, level, ownership).
NameRow = tuple[str, str, str, str | None]

_LEVEL_CODES = {"IE": 1, "SI": 2, "OE": 4}
_LEVEL_NAMES = {code: name for name, code in _LEVEL_CODES.items()}
_WORD = re.compile(r"[^\W_]+")
# A build in a worker's thread is a second of pure Python: it gives up the GIL this
# often (a few hundred microseconds of work), or a request thread waiting for the GIL
# would wait the whole switch interval (5 ms) at each of its round trips.
_YIELD_EVERY = 200
# For /metrics (hierarchy.metrics): its count is the builds, its sum their time.
BUILDS = Histogram(
    "sor_name_index_build_seconds", "Builds of a worker's name index, and how long they took",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))


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
        self._lazy = threading.Lock()
        self._by_code: dict[str, int] | None = None
        self.position: int | None = None  # the feed position it was read at (patches)
        # The names' trigram postings (fuzzy search) and their words (suggestions), made
        # at their first need (a second or two at 200k names): see fuzzy_ready.
        self.grams = MadeOnce(lambda: NameGrams(names, _YIELD_EVERY // 4), "name-grams")
        self.words = MadeOnce(lambda: Vocabulary(names, starts), "name-words")

    def __len__(self) -> int:
        return len(self.codes)

    def rows_of(self, codes: Iterable[str]) -> list[int]:
        """The numbers of the rows of *codes* (those the index holds)."""
        with self._lazy:
            if self._by_code is None:
                self._by_code = {code: i for i, code in enumerate(self.codes)}
        by_code = self._by_code
        return [by_code[code] for code in codes if code in by_code]

    def row(self, i: int) -> NameRow:
        """Row *i* as it was read."""
        owners = {number: name for name, number in self.ownership_codes.items()}
        return (self.names[bisect_right(self.starts, i) - 1], self.codes[i],
                _LEVEL_NAMES.get(self.levels[i], ""), owners.get(self.ownerships[i]))

    def patched(self, version: Hashable, position: int, codes: Iterable[str],
                rows: Iterable[NameRow]) -> PatchedIndex:
        """This index with *codes* changed since: their rows now are *rows*."""
        return patch(self, version, position, codes, rows)

    def _names_matching(self, folded: str, mode: NameMatch) -> Sequence[int]:
        """The distinct names (ascending numbers) holding *folded*, as LIKE would find them."""
        names = self.names
        if mode == "words":  # the names where each word may begin a word, then each checked
            words = name_words(folded)
            candidates: set[int] | None = None
            for word in words:
                if len(word) < 2:
                    continue
                found = self._word_starts(word)
                candidates = found if candidates is None else candidates & found
                if not candidates:
                    return []
            if candidates is None:
                candidates = set(self._names_matching(words[0], "contains"))
            every = every_word_begins(tuple(words))
            return sorted(j for j in candidates if every(names[j]))
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

    def _word_starts(self, word: str) -> set[int]:
        """The names that may hold *word* (2 letters or more) at a word's start: those
        beginning with it (a range of the sorted names) and those holding a separator and
        its first two letters (their trigram's names); a superset, checked after."""
        names = self.names
        lo = bisect_left(names, word)
        hi = bisect_right(names, word, lo, key=lambda s: s[:len(word)])
        found = set(range(lo, hi))
        for separator in WORD_SEPARATORS:
            posting = self.postings.get(separator + word[:2])
            if posting is not None:
                found.update(posting)
        return found

    def search(self, folded: str, mode: NameMatch, levels: list[str], ownership: str | None,
               limit: int, after: Key | None, sort: Sort = "name",
               ) -> tuple[list[tuple[str, str]], int, bool]:
        """(the page's (name_search, sor_code) in order, the exact total, whether more follow).

        By "name" (*after*: [name, code]) or by "relevance" (*after*: [group, name, code]:
        ``hierarchy.search.filters.relevance``, each group in name order)."""
        matching = self._names_matching(folded, mode)
        starts = self.starts
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
        groups = (self._groups(folded, mode, matching) if sort == "relevance"
                  else [_from(matching)])
        first_group = 0
        if after is not None and sort == "relevance":
            first_group, after = int(after[0]), after[1:]
        page: list[tuple[str, str]] = []
        for g in range(first_group, len(groups)):
            more = self._walk(groups[g], after if g == first_group else None, limit, page,
                              keep if filtered else None)
            if more:
                return page[:limit], total, True
        return page, total, False

    def _walk(self, names_from: Callable[[int], Iterable[int]], after: Key | None, limit: int,
              page: list[tuple[str, str]], keep: Callable[[int], bool] | None) -> bool:
        """Add to *page* the rows of the names *names_from* gives (ascending, from a name
        number on) after *after*; True as soon as it holds more than *limit*."""
        starts, names, codes = self.starts, self.names, self.codes
        first_row = 0
        if after is not None:  # the first row after the cursor's key, in the sorted register
            j = bisect_left(names, after[0])
            if j < len(names) and names[j] == after[0]:
                first_row = bisect_right(codes, after[1], starts[j], starts[j + 1])
            else:
                first_row = starts[j]
        for j in names_from(bisect_right(starts, first_row) - 1):
            for i in range(max(starts[j], first_row), starts[j + 1]):
                if keep is None or keep(i):
                    page.append((names[j], codes[i]))
                    if len(page) > limit:
                        return True
        return False

    def _groups(self, folded: str, mode: NameMatch,
                matching: Sequence[int]) -> list[Callable[[int], Iterable[int]]]:
        """The four groups of relevance (``hierarchy.search.filters.relevance``), each the
        names of *matching* in it, ascending from a name number on, made as they are read:
        a page seldom reads beyond the first few names of a group. 0: the name itself;
        1: names beginning with the first word (a range of the sorted names) where every
        word begins a word; 2: the others where every word begins a word; 3: the rest."""
        names = self.names
        words = typed_words(folded)
        exact = bisect_left(names, folded)
        if not (exact < len(names) and names[exact] == folded):
            exact = -1
        lo = bisect_left(names, words[0])
        hi = bisect_right(names, words[0], lo, key=lambda s: s[:len(words[0])])

        begins = every_word_begins(tuple(name_words(folded)))  # the key _names_matching uses

        def every_word(j: int) -> bool:
            return begins(names[j]) is not None

        def found(j: int) -> bool:
            name = names[j]
            if mode == "contains":
                return folded in name and every_word(j)
            return name.startswith(folded) if mode == "prefix" else every_word(j)

        every = _from(matching)
        if mode == "words":  # *matching* is exactly the names where every word begins one:
            # group 1 its part within the first word's range, group 2 the rest, nothing
            # tested again (each name of a common first word's range was: thousands)
            within = _from(matching[bisect_left(matching, lo):bisect_left(matching, hi)])
            groups = [lambda j0: (j for j in within(j0) if j != exact),
                      lambda j0: (j for j in every(j0) if not lo <= j < hi)]
        else:
            groups = [lambda j0: (j for j in range(max(lo, j0), hi) if j != exact and found(j)),
                      lambda j0: (j for j in every(j0) if not lo <= j < hi and every_word(j))]
        return [
            lambda j0: [exact] if 0 <= exact and exact >= j0 else [],
            *groups,
            lambda j0: ((j for j in every(j0) if not every_word(j)) if mode == "contains"
                        else ()),
        ]

    def fuzzy(self, folded: str, levels: list[str], ownership: str | None,
              limit: int) -> tuple[list[tuple[str, str]], int]:
        """The rows whose name's similarity to *folded* is at least FUZZY_THRESHOLD, most
        similar first (then name, code): (the first *limit*, their exact total)."""
        grams = trigrams(folded)
        if not grams:
            return [], 0
        scored = self.grams.get().similar(grams)
        wanted_levels = sum(_LEVEL_CODES.get(level, 0) for level in set(levels))
        wanted_ownership = self.ownership_codes.get(ownership, -1) if ownership else 0
        rows: list[tuple[str, str]] = []
        total = 0
        for _, j in scored:
            for i in range(self.starts[j], self.starts[j + 1]):
                if ((not levels or self.levels[i] & wanted_levels != 0)
                        and (not ownership or self.ownerships[i] == wanted_ownership)):
                    total += 1
                    if len(rows) < limit:
                        rows.append((self.names[j], self.codes[i]))
        return rows, total

    def fuzzy_ready(self) -> bool:
        """Whether :meth:`fuzzy` answers at once; if not, its trigram postings are made in
        a thread meanwhile (PostgreSQL: pg_trgm answers until then)."""
        return self.grams.ready()

    def suggestions_ready(self) -> bool:
        """Whether :meth:`suggestions` answers at once; if not, as fuzzy_ready."""
        return self.words.ready()

    def suggestions(self, folded: str, count: int = 5) -> list[str]:
        """Texts to search for instead of *folded*, which found nothing, best first: each
        typed word that no name holds replaced by the register's words nearest to it
        (pg_trgm's similarity at least FUZZY_THRESHOLD; the more names bear a word, the
        earlier among equals)."""
        words = typed_words(folded)
        vocabulary = self.words.get()
        choices: list[list[str]] = []
        for word in words:
            if self._names_matching(word, "contains"):
                choices.append([word])
                continue
            near = vocabulary.nearest(word, count)
            if not near:
                return []
            choices.append(near)
        if all(len(choice) == 1 and choice[0] == word for choice, word in zip(choices, words,
                                                                             strict=True)):
            return []
        found = [" ".join(choice[min(k, len(choice) - 1)] for choice in choices)
                 for k in range(max(len(choice) for choice in choices))]
        return list(dict.fromkeys(found))[:count]


def _from(matching: Sequence[int]) -> Callable[[int], Iterable[int]]:
    """*matching* (ascending name numbers) from a name number on."""
    def names_from(j0: int) -> Iterable[int]:
        position = bisect_left(matching, j0)
        return (matching[p] for p in range(position, len(matching)))
    return names_from


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
    """The worker's name index: built once, then patched from the change record at each
    register version (:mod:`~hierarchy.search.patches`), rebuilt when the day changes or
    the changes since the build grow past MAX_PATCHED_ROWS."""

    def __init__(self) -> None:
        self.index: NameIndex | PatchedIndex | None = None
        self.lock = threading.Lock()  # held by the one build at a time
        self.last_build_seconds: float | None = None
        self.last_patch_seconds: float | None = None
        self.builds = self.patches = 0
        self.enabled = True

    def clear(self) -> None:
        self.index = None

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for a build under way to end (tests, before their database goes)."""
        if self.lock.acquire(timeout=timeout):
            self.lock.release()

    def get(self, session: DbSession, version: Hashable,
            day: date) -> NameIndex | PatchedIndex | None:
        """The index of *version* and *day*, or None (then search with SQL): being built."""
        index = self.index
        if index is not None and index.version == version and index.day == day:
            return index
        if not self.enabled or day != date.today():
            return None
        bind = session_bind(session)
        if (index is not None and index.day == day and _newer(index.version, version)
                and isinstance(bind, Engine) and replicas.route(bind) is not bind):
            # A request on a lagging standby (sorregistry.replicas): the index (built on
            # the primary) is ahead of it; SQL answers, and nothing is rebuilt.
            return None
        if self.builds_in_thread(session):
            if self.lock.acquire(blocking=False):
                threading.Thread(target=self._build_from_engine, args=(bind, day),
                                 name="name-index", daemon=True).start()
            return None
        # SQLite, or a session bound to a connection (tests): this request builds it,
        # from what its own transaction sees, filed under the version it read.
        if not self.lock.acquire(blocking=False):
            return None
        try:
            self.index = self._make(session.connection(), version, day)
            return self.index
        finally:
            self.lock.release()

    def builds_in_thread(self, session: DbSession) -> bool:
        """Whether the index (and its parts made later) is built in a thread while SQL
        answers: PostgreSQL, outside a test's connection."""
        bind = session_bind(session)
        return isinstance(bind, Engine) and bind.dialect.name == "postgresql"

    def _make(self, connection: Connection, version: Hashable,
              day: date) -> NameIndex | PatchedIndex:
        """The index of *version* (read in this transaction): the current one patched, or
        a new build."""
        t0 = time.perf_counter()
        position = connection.execute(LAST_POSITION).scalar()
        current = self.index
        if current is not None and current.day == day and position is not None:
            patched = patched_from_feed(connection, current, version, position, day)
            if patched is not None:
                self.last_patch_seconds = time.perf_counter() - t0
                self.patches += 1
                return patched
        rows = read_names(connection, day)
        try:
            index = NameIndex(version, day, rows)
        finally:
            rows.close()
        index.position = position
        self.last_build_seconds = time.perf_counter() - t0
        self.builds += 1
        BUILDS.observe(self.last_build_seconds)
        return index

    def _build_from_engine(self, engine: Engine, day: date) -> None:
        """Build (or patch) from one snapshot of the register, filed under its version."""
        try:
            with engine.connect() as connection:
                try:
                    connection = connection.execution_options(
                        isolation_level="REPEATABLE READ")
                    with connection.begin():
                        row = connection.execute(_VERSION_QUERY).first()
                        if row is None:
                            return
                        index = self._make(connection, (row[0], row[1]), day)
                finally:
                    # Closed for good, not pooled: a build is rare (once per version), and
                    # a pooled connection would outlive an engine disposed meanwhile.
                    connection.invalidate()
            self.index = index
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
        sort in ("name", "relevance")
        and bool(filters.name)
        and all(getattr(filters, name) in (None, [], "contains") or name in _INDEX_FILTERS
                for name in FILTER_NAMES)
    )

"""The name index kept current from the change record instead of rebuilt (issue 17).

Rebuilding a worker's name index costs about 1.4 s and 26 MB at 200,000 organisations
(7 s and 130 MB at a million) and was done at every register change. Instead, a built
index (:class:`~hierarchy.search.names.NameIndex`, the *base*) stays as it is, and each
newer register version is a :class:`PatchedIndex`: the base, the base's rows of the
organisations changed since it (read from the change feed: the codes of its entries
after the base's feed position), which it no longer shows, and those organisations' rows
as they are now (from ``organisation_names``), which it shows besides. A search asks the
base for enough rows to cover the ones it hides, drops them, and merges the new rows in
order; totals are the base's less the hidden matches plus the new ones. Exact, item for
item (tests/hierarchy/test_name_index_patches.py compares with a fresh build), and a
about a millisecond per 500 changed rows; past MAX_PATCHED_ROWS the index is rebuilt.

Every patched version also checks its size against ``organisation_names``' count of the
day: a change that reached the narrow table without a feed entry (never, by
``hierarchy.changes``' rules) would show as a difference, and the index is rebuilt.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date
from itertools import islice
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, func, select

from hierarchy.models import FeedEntry, OrganisationName, RegisterCommit, table_of
from hierarchy.search.cursor import Key
from hierarchy.search.filters import NameMatch, Sort, begins_word, relevance, typed_words
from hierarchy.search.fuzzy import FUZZY_THRESHOLD, ratio, trigrams
from sorregistry.database import is_postgresql, one_of

logger = logging.getLogger(__name__)
# One organisation as the index reads it: (name_search, sor_code, level, ownership).
NameRow = tuple[str, str, str, str | None]
# Beyond this many changed rows since the base, the index is rebuilt: each search checks
# the patch's rows one by one (~1 ms per 500 at 200k, bench/bench_lookups.py).
MAX_PATCHED_ROWS = 500


def matches(name: str, folded: str, mode: NameMatch) -> bool:
    """Whether the folded *name* is found by *folded* in *mode* (as the index finds)."""
    if mode == "prefix":
        return name.startswith(folded)
    if mode == "words":
        return all(begins_word(name, word) for word in typed_words(folded))
    return folded in name


@dataclass(frozen=True)
class PatchedIndex:
    """A base index and the changes since it: one register version, one day."""

    base: Any  # hierarchy.search.names.NameIndex (imported there: no cycle)
    version: Hashable
    position: int | None
    hidden: frozenset[int]  # the base's rows (numbers) of the changed organisations
    hidden_rows: tuple[NameRow, ...]  # the same rows, as NameRow
    added: tuple[NameRow, ...]  # the changed organisations' rows now, in (name, code) order

    @property
    def day(self) -> Any:
        return self.base.day

    def __len__(self) -> int:
        return len(self.base) - len(self.hidden) + len(self.added)

    def patched(self, version: Hashable, position: int, codes: Iterable[str],
                rows: Iterable[NameRow]) -> PatchedIndex:
        """This index with *codes* changed since: their rows now are *rows*."""
        now = set(codes)
        before = {row[1] for row in self.added} | {row[1] for row in self.hidden_rows}
        return patch(self.base, version, position, now | before,
                     [*rows, *(row for row in self.added if row[1] not in now)])

    def search(self, folded: str, mode: NameMatch, levels: list[str], ownership: str | None,
               limit: int, after: Key | None, sort: Sort = "name",
               ) -> tuple[list[tuple[str, str]], int, bool]:
        def key(name: str, code: str) -> tuple[Any, ...]:
            return ((relevance(name, folded), name, code) if sort == "relevance"
                    else (name, code))

        def wanted(row: NameRow) -> bool:
            return (matches(row[0], folded, mode) and (not levels or row[2] in levels)
                    and (not ownership or row[3] == ownership))

        start = tuple(after) if after is not None else None
        hidden = [row for row in self.hidden_rows if wanted(row)]
        added = sorted(key(row[0], row[1]) for row in self.added if wanted(row))
        base_keys, base_total, _ = self.base.search(folded, mode, levels, ownership,
                                                    limit + len(hidden) + 1, after, sort)
        hidden_keys = {(row[0], row[1]) for row in hidden}
        from_base = (key(name, code) for name, code in base_keys
                     if (name, code) not in hidden_keys)
        later = (k for k in added if start is None or k > start)
        merged = list(islice(heapq.merge(from_base, later), limit + 1))
        page = [(k[-2], k[-1]) for k in merged]
        total = base_total - len(hidden) + len(added)
        return page[:limit], total, len(page) > limit

    def fuzzy(self, folded: str, levels: list[str], ownership: str | None,
              limit: int) -> tuple[list[tuple[str, str]], int]:
        grams = trigrams(folded)

        def scored(rows: Iterable[NameRow]) -> list[tuple[float, str, str]]:
            found = []
            for name, code, level, owner in rows:
                if (levels and level not in levels) or (ownership and owner != ownership):
                    continue
                other = trigrams(name)
                score = ratio(len(grams & other), len(grams), len(other))
                if score >= FUZZY_THRESHOLD:
                    found.append((-score, name, code))
            return sorted(found)

        hidden = scored(self.hidden_rows)
        added = scored(self.added)
        base_keys, base_total = self.base.fuzzy(folded, levels, ownership,
                                                limit + len(hidden))
        hidden_keys = {(name, code) for _, name, code in hidden}
        from_base = [(-(similarity_of(grams, name)), name, code) for name, code in base_keys
                     if (name, code) not in hidden_keys]
        merged = list(islice(heapq.merge(from_base, added), limit))
        return ([(name, code) for _, name, code in merged],
                base_total - len(hidden) + len(added))

    def fuzzy_ready(self) -> bool:
        return bool(self.base.fuzzy_ready())

    def suggestions_ready(self) -> bool:
        return bool(self.base.suggestions_ready())

    def suggestions(self, folded: str, count: int = 5) -> list[str]:
        """The base's (a suggestion is a hint: the words of the base's names)."""
        result: list[str] = self.base.suggestions(folded, count)
        return result


def similarity_of(grams: frozenset[str], name: str) -> float:
    other = trigrams(name)
    return ratio(len(grams & other), len(grams), len(other))


def patch(base: Any, version: Hashable, position: int, codes: Iterable[str],
          rows: Iterable[NameRow]) -> PatchedIndex:
    """*base* with the organisations *codes* now as *rows* (those active on its day)."""
    changed = set(codes)
    hidden = base.rows_of(changed)
    hidden_rows = tuple(base.row(i) for i in hidden)
    added = tuple(sorted(row for row in rows if row[1] in changed))
    return PatchedIndex(base, version, position, frozenset(hidden), hidden_rows, added)


def _changed_codes_statement() -> Any:
    """The codes of the feed's entries in (after, through]: hierarchy.feed.reading's
    window of positions, codes only."""
    commits = table_of(RegisterCommit).alias("c")
    before = table_of(RegisterCommit).alias("before")
    entries = table_of(FeedEntry)
    after = bindparam("after", type_=BigInteger)
    through = bindparam("through", type_=BigInteger)
    start = (select(func.coalesce(func.max(before.c.first_position), 0))
             .where(before.c.first_position <= after + 1).scalar_subquery())
    return (
        select(entries.c.sor_code).distinct()
        .select_from(commits.join(entries, entries.c.commit_id == commits.c.id))
        .where(commits.c.first_position >= start, commits.c.first_position <= through,
               entries.c.commit_seq > after - commits.c.first_position + 1,
               entries.c.commit_seq <= through - commits.c.first_position + 1)
    )


_CHANGED_CODES = _changed_codes_statement()


def patched_from_feed(connection: Connection, current: Any, version: Hashable,
                      position: int, day: date) -> PatchedIndex | None:
    """*current* patched with the changes up to feed position *position*; None when a
    rebuild is due (too many changes, positions gone back, or the size disagrees)."""
    if current.position is None or position < current.position:
        return None
    codes = connection.execute(_CHANGED_CODES,
                               {"after": current.position, "through": position}).scalars().all()
    patched_rows = (len(current.added) + len(current.hidden_rows)
                    if isinstance(current, PatchedIndex) else 0)
    if len(codes) + patched_rows > MAX_PATCHED_ROWS:
        return None
    n = OrganisationName.__table__.c
    rows: list[NameRow] = []
    postgresql = is_postgresql(connection)
    for start in range(0, len(codes), 500):
        rows += [(r[0], r[1], r[2], r[3]) for r in connection.execute(
            select(n.name_search, n.sor_code, n.level, n.ownership)
            .where(one_of(n.sor_code, codes[start:start + 500], postgresql=postgresql),
                   *_valid(n, day)))]
    patched: PatchedIndex = current.patched(version, position, codes, rows)
    size = connection.execute(select(func.count()).select_from(OrganisationName)
                              .where(*_valid(n, day))).scalar_one()
    if size != len(patched):
        logger.warning("the patched name index holds %s rows, the register %s: rebuilding",
                       len(patched), size)
        return None
    return patched


def _valid(n: Any, day: date) -> list[Any]:
    return [(n.valid_from.is_(None)) | (n.valid_from <= day),
            (n.valid_to.is_(None)) | (n.valid_to > day)]

"""Searching the register: the column filters and lists the reporting forms use.

One query builder serves the general search, "Mit CVR – SI", "Mit CVR – Alle"
and the ownership lists (their rules: :mod:`hierarchy.search.lists`), so they filter,
sort and page alike. Pages are keyset-paginated (a cursor names the last row seen,
:mod:`~hierarchy.search.cursor`), so walking a list returns every row exactly once
however deep it goes, and each page carries the true total of the filtered list.

A search takes one of three paths, each giving the same answers:

* a plain name search (a name, sorted by name, at most level and ownership filters,
  for today) from each worker's in-memory name index (:mod:`~hierarchy.search.names`)
  when it is built for the current register version: the exact total and the page's
  keys from memory, the page's rows from ``organisations`` by key;
* any other name search with at most level, ownership and CVR filters, on PostgreSQL,
  from the narrow table ``organisation_names`` (see ``hierarchy.models.OrganisationName``):
  the page's keys and the exact total from it, the page's items from ``organisations``
  by primary key; its totals cached per worker under the register's version
  (:mod:`~hierarchy.search.totals`);
* everything else: one count and one page over ``organisations``; the count kept per
  worker under the register version too (per shape and parameters), so a computed page of
  Mit CVR reads its page alone.

A caller that keeps the items (the lookups, ``hierarchy.items``) asks :func:`search_keys`:
each path then reads its page by key and stamp only (``hierarchy.search.keyrows``).

The statements are built once per shape (:mod:`~hierarchy.search.statements`) and run
through ``sorregistry.reads``: on PostgreSQL, during a request that allows it, on the
worker thread's own connection; otherwise through the session. Both run the same
statements.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Select

from hierarchy.search.cursor import Key, Keyed, decode_cursor, encode_cursor, key_of
from hierarchy.search.digests import KeptPage, KeptPages, digested, rows_digest
from hierarchy.search.filters import (
    ALTERNATIVE_KINDS,
    FILTER_NAMES,
    MAX_ALTERNATIVES,
    MAX_LIMIT,
    AlternativeKind,
    Alternatives,
    Filters,
    InvalidSearch,
    Sort,
    Validity,
    name_words,
    normalise,
    relevance,
    typed_words,
)
from hierarchy.search.fuzzy import FUZZY_THRESHOLD, fuzzy_rows, fuzzy_statements
from hierarchy.search.keyrows import KEYS_BY_CODE, KeyRow, code_of, keyed, named_key
from hierarchy.search.matching import Parameters, name_pattern, rank_parameters, word_parameters
from hierarchy.search.names import NAMES, indexable
from hierarchy.search.statements import (
    ITEM_COLUMNS,
    ITEMS_BY_CODE,
    PAGE_COLUMNS,
    ItemRow,
    NarrowShape,
    Order,
    StampedRow,
    cursor_parameters,
    narrow_statements,
    search_parameters,
    search_statements,
)
from hierarchy.search.totals import TOTALS
from hierarchy.search.versions import REGISTER
from hierarchy.service import register_changed_in, register_version
from sorregistry.database import DbSession, made_session, session_bind
from sorregistry.reads import DirectReads, Reads
from sorregistry.reads import reads as reads_for

__all__ = [
    "ALTERNATIVE_KINDS",
    "ITEMS_BY_CODE",
    "ITEM_COLUMNS",
    "PAGE_COLUMNS",
    "MAX_ALTERNATIVES",
    "MAX_LIMIT",
    "AlternativeKind",
    "Alternatives",
    "Filters",
    "InvalidSearch",
    "ItemRow",
    "StampedRow",
    "Page",
    "Sort",
    "Validity",
    "decode_cursor",
    "encode_cursor",
    "items_by_code",
    "normalise",
    "page_of",
    "search",
    "search_keys",
]

RowT = TypeVar("RowT")  # Keyed, or KeyRow (a page read by key)


@dataclass
class Page(Generic[RowT]):
    """One page of a list: its rows, the whole list's total, the next page's cursor; for
    a name search that found nothing, texts to search for instead (best first)."""

    items: list[RowT]
    total: int
    next: str | None
    suggestions: list[str] | None = None
    # A page read by key that its caller may keep (hierarchy.search.digests): the query it
    # is kept under and the digest of the rows read (one beyond the page); or the kept
    # page itself, whose rows' digest PostgreSQL found unchanged (then *items* is empty).
    query: Hashable | None = None
    digest: bytes | None = None
    kept: KeptPage | None = None


def search(
    session: DbSession,
    filters: Filters,
    *,
    sort: Sort | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[StampedRow]:
    """One page of the organisations matching *filters*, with the list's total.

    *sort* by default: by relevance when a name is given, else by name. A fuzzy name
    search (``name_match="fuzzy"``) is one page of the most similar, never continued
    (``next`` is null), with the exact total. Raises InvalidSearch (422) for a filter,
    cursor or page size it cannot use.
    """
    return cast("Page[StampedRow]", _search(session, filters, sort, limit, cursor, False))


def search_keys(
    session: DbSession,
    filters: Filters,
    *,
    sort: Sort | None = None,
    limit: int = 50,
    cursor: str | None = None,
    kept: KeptPages | None = None,
) -> Page[KeyRow | StampedRow]:
    """As :func:`search`, its rows read by key only (``hierarchy.search.keyrows``: which
    organisations, in order, with their stamps) for a caller that keeps the items
    (``hierarchy.items``); a fuzzy search's rows carry every column all the same.

    *kept*: the caller's kept pages by query. A list's page of :data:`DIGESTED_FROM` rows
    or more read directly on PostgreSQL is then marked with its query and digest to be
    kept, and a page kept for the same query is checked by its digest alone
    (``hierarchy.search.digests``): unchanged, ``Page.kept`` is it."""
    return cast("Page[KeyRow | StampedRow]",
                _search(session, filters, sort, limit, cursor, True, kept))


def items_by_code(session: DbSession, sor_codes: list[str]) -> list[StampedRow]:
    """The rows (ITEM_COLUMNS) of *sor_codes* that are in the register, in no order."""
    session = made_session(session) or session  # see _search
    reads = reads_for(session)
    return reads.rows(ITEMS_BY_CODE[_is_postgresql(session, reads)], {"codes": sor_codes})


def _search(session: DbSession, filters: Filters, sort: Sort | None, limit: int,
            cursor: str | None, keys_only: bool, kept: KeptPages | None = None) -> Page[Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidSearch({"limit": f"between 1 and {MAX_LIMIT}"})
    # The request's own session, once (each call through the proxy looks it up); while
    # the request has made none, the proxy: a lookup that reads directly makes none.
    session = made_session(session) or session
    filters = normalise(filters)
    if sort is None or (sort == "relevance" and not filters.name):
        sort = "relevance" if filters.name else "name"
    if filters.name_match == "fuzzy" and filters.name:
        return _search_fuzzy(session, filters, limit, cursor)
    if cursor:
        decode_cursor(cursor, sort)  # a bad cursor is refused before any query
    reads = reads_for(session)
    postgresql = _is_postgresql(session, reads)
    page = None
    if indexable(filters, sort):
        page = _search_index(session, reads, filters, sort, limit, cursor, keys_only)
    if page is None and postgresql and _narrow(filters, sort):
        page = _search_names(session, reads, filters, sort, limit, cursor, keys_only)
    if page is None:
        version = _totals_version(session)  # first: see _search_names
        shape, params = search_parameters(reads, filters, postgresql, sort, limit, cursor)
        count, page_statement = search_statements(shape)
        if keys_only:
            page_statement = keyed(page_statement, sort)
        frozen = _frozen(params)
        key = (shape, frozen) if version is not None and frozen is not None else None
        total = TOTALS.get(version, key) if key is not None else None
        counted = total is None
        # A page its caller may keep is kept under its query: everything its array and
        # cursor are made of besides its rows (hierarchy.search.digests) - the statement
        # object itself (held: never another's by a reused id), the limit, the order, the
        # name and every parameter.
        query = ((page_statement, limit, sort, filters.name, frozen)
                 if kept is not None and frozen is not None and limit >= DIGESTED_FROM
                 and isinstance(reads, DirectReads) else None)
        found = kept(query) if kept is not None and query is not None else None
        if found is not None:
            counted_total, found = _checked(reads, count, page_statement, params, total, found)
            total = counted_total
            if found is not None:
                page = Page(items=[], total=counted_total, next=found.next, query=query,
                            kept=found)
        if page is None:
            if total is None:
                total, rows = reads.scalar_and_rows(count, page_statement, params,
                                                    plain=keys_only, binary=keys_only)
            else:  # the list's total kept (Mit CVR's 2,759 units counted again per page)
                rows = reads.rows(page_statement, params, plain=keys_only, binary=keys_only)
            page = page_of(rows, total, limit, sort, filters.name, keyed=keys_only)
            if query is not None:
                page.query, page.digest = query, rows_digest(rows)
        if counted and key is not None:
            TOTALS.put(version, key, page.total)
    if page.total == 0 and filters.name and not cursor:
        page.suggestions = _suggestions(session, filters.name)
    return page


# A list's page of this many rows or more (Mit CVR's 500) is checked by its digest when
# kept: below it, its key rows cost little more than the digest's (one row), and a page
# not unchanged would cost a second round trip.
DIGESTED_FROM = 100


def _checked(reads: Reads, count: Select[Any], statement: Select[Any], params: Parameters,
             total: int | None, found: KeptPage) -> tuple[int, KeptPage | None]:
    """The list's total (*total* when kept, else counted in the same round trip) and the
    page *found* kept for *statement*'s query if PostgreSQL finds its rows' digest
    unchanged, else None."""
    if total is None:
        total, digests = reads.scalar_and_rows(count, digested(statement), params,
                                               plain=True, binary=True)
    else:
        digests = reads.rows(digested(statement), params, plain=True, binary=True)
    return total, (found if digests and digests[0][0] == found.digest else None)


def page_of(rows: list[RowT], total: int, limit: int, sort: Sort,
            folded: str | None = None, *, keyed: bool = False) -> Page[RowT]:
    """The page of *rows*, read one beyond *limit* (whether more follow), in *sort*'s order
    (by relevance to the folded name *folded*); *keyed*: rows read by key
    (``hierarchy.search.keyrows``: plain tuples)."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = (named_key(cast("KeyRow", rows[-1]), sort) if keyed
                else cast(Keyed, rows[-1]))
        next_cursor = encode_cursor(key_of(last, sort, folded), sort)
    return Page(items=rows, total=total, next=next_cursor)


def _is_postgresql(session: DbSession, reads: Reads | None = None) -> bool:
    """Whether *session* reads PostgreSQL (always, when *reads* are direct)."""
    if isinstance(reads, DirectReads):
        return True
    return session_bind(session).dialect.name == "postgresql"


# Filters the narrow table holds; a name search with no others reads it alone.
_NARROW_FILTERS = frozenset({"level", "ownership", "cvr", "name", "name_match", "active_on"})
# Below this many matches a page is the matches sorted (cost grows with the matches);
# above it, a walk of the name index in order, filtering (cost shrinks as they grow).
SORT_MATCHES_BELOW = 20000


def _narrow(filters: Filters, sort: Sort) -> bool:
    return bool(filters.name) and sort != "updated" and all(
        getattr(filters, name) in (None, [], "contains") or name in _NARROW_FILTERS
        for name in FILTER_NAMES
    )


def _totals_version(session: DbSession) -> Hashable | None:
    """The register version a list's total may be kept under (``hierarchy.search.totals``),
    read before anything the total is counted from; None when none may be: unknown, this
    transaction's own changes, or older than one this worker has seen (a lagging replica)."""
    version = register_version(session)
    if version is None or register_changed_in(session) or REGISTER.outdated(version):
        return None
    return version


def _frozen(params: Parameters) -> Hashable | None:
    """Every parameter of a general search, sorted, to key what is kept of it (its total
    with its shape, its page with its query); None if a value is unhashable."""
    frozen = tuple(sorted(params.items()))
    try:
        hash(frozen)
    except TypeError:
        return None
    return frozen


def _search_index(session: DbSession, reads: Reads, filters: Filters, sort: Sort, limit: int,
                  cursor: str | None, keys_only: bool) -> Page[Any] | None:
    """A name search from the worker's name index; None when the index cannot answer it."""
    day = filters.active_on or date.today()
    if register_changed_in(session):
        return None  # this transaction's own changes are not in any index
    version = register_version(session)
    if version is None or REGISTER.outdated(version):
        return None  # unknown, or older than the index may be (a lagging replica)
    index = NAMES.get(session, version, day)
    if index is None:
        return None
    assert filters.name is not None and filters.name_match is not None
    after = decode_cursor(cursor, sort) if cursor else None
    keys, total, more = index.search(filters.name, filters.name_match, filters.level,
                                     filters.ownership, limit, after, sort)
    if not keys:
        return Page(items=[], total=total, next=None)
    statement = (KEYS_BY_CODE if keys_only else ITEMS_BY_CODE)[_is_postgresql(session, reads)]
    rows = reads.rows(statement, {"codes": [code for _, code in keys]}, plain=keys_only,
                      binary=keys_only)
    found = {code_of(row) if keys_only else row.sor_code: row for row in rows}
    items = [found[code] for _, code in keys if code in found]
    if len(items) != len(keys):
        return None  # changed under us (a commit since the version was read): ask SQL
    last: Key = list(keys[-1])
    if sort == "relevance":
        last = [relevance(keys[-1][0], filters.name), *last]
    next_cursor = encode_cursor(last, sort) if more else None
    return Page(items=items, total=total, next=next_cursor)


def _search_names(session: DbSession, reads: Reads, filters: Filters, sort: Sort, limit: int,
                  cursor: str | None, keys_only: bool) -> Page[Any]:
    """A name search from the narrow table (PostgreSQL): keys, exact total, then items."""
    day = filters.active_on or date.today()
    assert filters.name is not None and filters.name_match is not None
    levels = list(dict.fromkeys(filters.level or []))
    params: Parameters = {
        "name_pattern": name_pattern(filters.name, filters.name_match),
        "day": day, "page_limit": limit + 1, "ownership": filters.ownership,
        "cvr": filters.cvr,
    }
    words = 0
    if filters.name_match == "words":
        params.update(word_parameters(filters.name))
        words = len(name_words(filters.name))
    rank_words = 0
    if sort == "relevance":
        params.update(rank_parameters(filters.name))
        rank_words = len(typed_words(filters.name))
    for i, level in enumerate(levels):
        params[f"level_{i}"] = level
    if cursor:
        cursor_parameters(params, cursor, sort)

    def shape(order: Order) -> NarrowShape:
        return NarrowShape(len(levels), bool(filters.ownership), bool(filters.cvr), sort,
                           order, bool(cursor), words, rank_words)

    # Read the version before anything else: a total counted after a concurrent
    # commit is then filed under the older version, never a stale one under the newer.
    version = _totals_version(session)
    key = (day, tuple(sorted(filters.level)), filters.ownership, filters.cvr, filters.name,
           filters.name_match)
    total = TOTALS.get(version, key) if version is not None else None
    if total is None:
        total = reads.scalar(narrow_statements(shape("index"))[0], params)
        if version is not None:
            TOTALS.put(version, key, total)
    if total == 0:
        return Page(items=[], total=0, next=None)
    order: Order = ("code" if sort == "code" else "sorted" if total < SORT_MATCHES_BELOW
                    else "index")
    page_statement = narrow_statements(shape(order))[1]
    rows = reads.rows(keyed(page_statement, sort) if keys_only else page_statement, params,
                      plain=keys_only, binary=keys_only)
    return page_of(rows, total, limit, sort, filters.name, keyed=keys_only)


# Filters a fuzzy search takes besides the name: those of the narrow table.
_FUZZY_FILTERS = frozenset({"level", "ownership", "cvr", "name", "name_match", "active_on"})


def _search_fuzzy(session: DbSession, filters: Filters, limit: int,
                  cursor: str | None) -> Page[Any]:
    """Fuzzy name search (hierarchy.search.fuzzy): pg_trgm's measure over the worker's
    name index; where it cannot answer (a CVR filter, another day, this transaction's
    changes, being built), pg_trgm itself on PostgreSQL, the narrow table's rows
    elsewhere."""
    assert filters.name is not None
    if cursor:
        raise InvalidSearch({"cursor": "a fuzzy search is one page: no cursor"})
    others = [name for name in FILTER_NAMES if name not in _FUZZY_FILTERS
              and getattr(filters, name) not in (None, [], "", False)]
    if others:
        raise InvalidSearch({"name_match": "fuzzy takes only level, ownership, cvr and "
                                           f"active_on besides the name, not {', '.join(others)}"})
    reads = reads_for(session)
    day = filters.active_on or date.today()
    levels = list(dict.fromkeys(filters.level or []))
    index = None
    if not filters.cvr and not register_changed_in(session):
        version = register_version(session)
        index = NAMES.get(session, version, day) if version is not None else None
    if index is not None and (index.fuzzy_ready() or not NAMES.builds_in_thread(session)):
        # The worker's name index, as for the type-ahead: pg_trgm's measure in memory
        # (p95 154 ms at 200k with pg_trgm's GIN index, a few ms here; bench_lookups).
        keys, total = index.fuzzy(filters.name, levels, filters.ownership, limit)
    elif _is_postgresql(session):
        params: Parameters = {"fuzzy": filters.name, "threshold": FUZZY_THRESHOLD, "day": day,
                              "page_limit": limit, "ownership": filters.ownership,
                              "cvr": filters.cvr}
        for i, level in enumerate(levels):
            params[f"level_{i}"] = level
        _, page_statement = fuzzy_statements(
            NarrowShape(len(levels), bool(filters.ownership), bool(filters.cvr), "relevance",
                        "sorted", False))
        rows = reads.rows(page_statement, params)
        return Page(items=rows, total=rows[0].total if rows else 0, next=None)
    else:
        keys, total = fuzzy_rows(reads, filters, day, levels, limit)
    if not keys:
        return Page(items=[], total=total, next=None)
    # ITEMS_BY_CODE[True]: PostgreSQL's = ANY(array), which its fast reads take (an
    # expanding IN they refuse).
    statement = ITEMS_BY_CODE[_is_postgresql(session)]
    found = {row.sor_code: row
             for row in reads.rows(statement, {"codes": [c for _, c in keys]})}
    return Page(items=[found[code] for _, code in keys if code in found], total=total,
                next=None)


def _suggestions(session: DbSession, folded: str) -> list[str]:
    """What to search for instead of *folded* (found nothing), from the worker's name
    index; none while it is being built or cannot answer."""
    if register_changed_in(session):
        return []
    version = register_version(session)
    index = NAMES.get(session, version, date.today()) if version is not None else None
    if index is None or not (index.suggestions_ready() or not NAMES.builds_in_thread(session)):
        return []
    return index.suggestions(folded)

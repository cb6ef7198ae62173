"""Searching the register: the column filters and lists the reporting forms use.

One query builder serves the general search, "Mit CVR – SI", "Mit CVR – Alle"
and the ownership lists, so they filter, sort and page alike. Pages are
keyset-paginated (a cursor names the last row seen), so walking a list returns
every row exactly once however deep it goes, and each page carries the true
total of the filtered list.

Name searches on PostgreSQL read the narrow table ``organisation_names`` (see
``hierarchy.models.OrganisationName``): the page's keys and the exact total come
from it, the page's items from ``organisations`` by primary key. Totals of name
searches are cached per worker under the register's version
(``hierarchy.service.register_version``), which every committed change of the
register changes, so a cached total is never one of another state of the register.

A plain name search (a name, sorted by name, at most level and ownership filters, for
today) is answered from each worker's in-memory name index (``NameIndex``) when it is
built for the current register version: the exact total and the page's keys from
memory, the page's rows from ``organisations`` by key. Answers are those of the SQL
path, item for item, total and cursors (tests/hierarchy/test_name_index.py).

The statements are built once per shape (which filters a search has, its sort, whether
it continues from a cursor) with named parameters, and run through
``sorregistry.reads``: on PostgreSQL, during a request that allows it, on the worker
thread's own connection; otherwise through the session. Both run the same statements.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import orjson
from sqlalchemy import (
    ARRAY,
    Date,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hierarchy import identifiers as ids
from hierarchy.models import Organisation, OrganisationName
from hierarchy.service import (
    _VERSION_QUERY,
    register_changed_in,
    register_version,
)
from hierarchy.text import fold
from sorregistry.reads import Reads
from sorregistry.reads import reads as reads_for

logger = logging.getLogger(__name__)

MAX_LIMIT = 500
# What a list item shows (hierarchy.schemas.organisation_item), read as plain
# rows: no ORM identity map for hundreds of rows a page.
ITEM_COLUMNS = [
    Organisation.sor_code,
    Organisation.name,
    Organisation.name_search,
    Organisation.level,
    Organisation.entity_type,
    Organisation.ownership,
    Organisation.owner_cvr,
    Organisation.ydernummer,
    Organisation.shak,
    Organisation.p_number,
    Organisation.parent_sor_code,
    Organisation.institution_sor_code,
    Organisation.owner_sor_code,
    Organisation.effective,
    Organisation.inherited,
    Organisation.clinical_specialities,
    Organisation.replaces,
    Organisation.replaced_by,
    Organisation.first_valid_from,
    Organisation.valid_from,
    Organisation.valid_to,
    Organisation.version,
]
Sort = Literal["name", "code"]


class LookupError_(ValueError):
    """A filter or cursor the lookup cannot use; ``errors`` maps parameters to reasons."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass
class Filters:
    """The column filters; every one given must hold."""

    level: list[str] = field(default_factory=list)
    ownership: str | None = None
    cvr: str | None = None
    name: str | None = None
    name_match: Literal["contains", "prefix"] = "contains"
    entity_type: str | None = None
    ydernummer: str | None = None
    shak: str | None = None
    sor_code: str | None = None
    municipality_code: str | None = None
    postal_code: str | None = None
    under: str | None = None
    active_on: date | None = None


@dataclass
class Page:
    items: list[Any]  # rows with ITEM_COLUMNS
    total: int
    next: str | None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def normalise(filters: Filters) -> Filters:
    """Validate and normalise the filters, collecting every problem at once."""
    errors: dict[str, str] = {}
    if filters.cvr is not None:
        try:
            filters.cvr = ids.validate_cvr(filters.cvr)
        except ids.IdentifierError as exc:
            errors["cvr"] = str(exc)
    if filters.ydernummer is not None:
        try:
            filters.ydernummer = ids.normalise_ydernummer(filters.ydernummer)
        except ids.IdentifierError as exc:
            errors["ydernummer"] = str(exc)
    if filters.shak is not None:
        shak = filters.shak.strip().upper()
        if not shak or not shak.isascii() or not shak.isalnum() or len(shak) > 7:
            errors["shak"] = f"{filters.shak!r} is not (the start of) a SHAK code"
        filters.shak = shak
    if filters.sor_code is not None:
        code = filters.sor_code.strip()
        if not code.isdigit() or len(code) > 18 or not code.isascii():
            errors["sor_code"] = "a SOR code (or its start) is digits only, at most 18"
        filters.sor_code = code
    if filters.municipality_code is not None:
        try:
            filters.municipality_code = ids.validate_municipality_code(filters.municipality_code)
        except ids.IdentifierError as exc:
            errors["municipality_code"] = str(exc)
    if filters.postal_code is not None:
        postal = filters.postal_code.strip()
        if not postal.isdigit() or not 3 <= len(postal) <= 4 or not postal.isascii():
            errors["postal_code"] = "a Danish postal code is 4 digits"
        filters.postal_code = postal
    if filters.entity_type is not None:
        if not filters.entity_type.isdigit() or not filters.entity_type.isascii():
            errors["entity_type"] = "an entity type is a SNOMED CT code (digits)"
    if filters.under is not None:
        try:
            filters.under = ids.validate_sor_code(filters.under)
        except ids.IdentifierError as exc:
            errors["under"] = str(exc)
    if filters.name is not None:
        filters.name = fold(filters.name)
        if not filters.name:
            filters.name = None
        elif len(filters.name) > 100:
            errors["name"] = "at most 100 characters"
    if errors:
        raise LookupError_(errors)
    return filters


# --- statements, built once per shape --------------------------------------------------------
#
# A lookup's statements depend on which filters it has (and the back end, the sort,
# whether it continues from a cursor), not on their values: each shape's statements are
# built once, with named parameters, and the values passed per request. SQLAlchemy
# then needs no statement construction or cache key per request, and on PostgreSQL
# ``sorregistry.reads`` runs them on the thread's own connection, compiled once.


@dataclass(frozen=True)
class _Shape:
    postgresql: bool
    present: tuple[str, ...]  # the filters given (names of Filters' fields)
    levels: int  # how many levels the level filter names
    fts: bool  # SQLite: the name through the FTS5 trigram table too
    sort: Sort
    cursor: bool


_SIMPLE_FILTERS = {  # filter -> column compared for equality, the value as given
    "ownership": Organisation.ownership,
    "cvr": Organisation.owner_cvr,
    "entity_type": Organisation.entity_type,
    "ydernummer": Organisation.ydernummer,
    "municipality_code": Organisation.eff_municipality_code,
    "postal_code": Organisation.eff_postal_code,
}
_ROOT_PATH = select(Organisation.path).where(
    Organisation.sor_code == bindparam("under", type_=String))
_SEARCH_STATEMENTS: dict[_Shape, tuple[Any, Any]] = {}


# Shapes a client can ask for run into thousands (every subset of the filters); the forms
# use a handful. The caches are bounded: full, they start again.
_MAX_SHAPES = 1000


def _remember(cache: dict[Any, Any], shape: Any, statements: Any) -> Any:
    if len(cache) >= _MAX_SHAPES:
        cache.clear()
    return cache.setdefault(shape, statements)


def _valid_on(table: Any) -> list[Any]:
    """*table*'s rows valid on the parameter ``day`` (closing date exclusive)."""
    day = bindparam("day", type_=Date)
    return [
        (table.c.valid_from.is_(None)) | (table.c.valid_from <= day),
        (table.c.valid_to.is_(None)) | (table.c.valid_to > day),
    ]


def _name_like(column: Any) -> Any:
    return column.like(bindparam("name_pattern", type_=String), escape="\\")


def _name_pattern(folded: str, mode: str) -> str:
    pattern = _escape_like(folded)
    return pattern + "%" if mode == "prefix" else "%" + pattern + "%"


def _name_condition(shape: _Shape) -> Any:
    """Name matching on the folded search column, with each back end's text index.

    PostgreSQL answers ``LIKE '%x%'`` from the trigram index of the narrow table
    ``organisation_names``; SQLite from an FTS5 trigram table on ``organisations``.
    The LIKE is kept on SQLite too, so both give the same rows.
    """
    if shape.postgresql:
        names = OrganisationName
        matching = select(names.sor_code).where(_name_like(names.name_search))
        return Organisation.sor_code.in_(matching)
    condition = _name_like(Organisation.name_search)
    if shape.fts:
        matching = text(
            "SELECT rowid FROM organisations_search WHERE organisations_search MATCH :phrase"
        ).bindparams(bindparam("phrase", type_=String))
        condition = and_(literal_column("organisations.rowid").in_(matching), condition)
    return condition


def _after(order: list[Any], sort: Sort) -> Any:
    """Rows after the cursor's key (parameters ``after_first``, ``after_second``)."""
    first = bindparam("after_first", type_=Integer if sort == "code" else String)
    second = bindparam("after_second", type_=String)
    return or_(order[0] > first, and_(order[0] == first, order[1] > second))


def _search_statements(shape: _Shape) -> tuple[Any, Any]:
    """The count and the page of the general search for *shape*."""
    statements = _SEARCH_STATEMENTS.get(shape)
    if statements is not None:
        return statements
    o = Organisation
    conditions: list[Any] = []
    if shape.levels:
        conditions.append(o.level.in_(
            [bindparam(f"level_{i}", type_=String) for i in range(shape.levels)]))
    for name, column in _SIMPLE_FILTERS.items():
        if name in shape.present:
            conditions.append(column == bindparam(name, type_=String))
    if "shak" in shape.present:
        conditions.append(o.shak.like(bindparam("shak_prefix", type_=String), escape="\\"))
    if "sor_code" in shape.present:
        conditions.append(o.sor_code.like(bindparam("sor_prefix", type_=String)))
    if "under" in shape.present:
        conditions.append(o.path.like(bindparam("under_prefix", type_=String), escape="\\"))
    if "name" in shape.present:
        conditions.append(_name_condition(shape))
    conditions.extend(_valid_on(o.__table__))
    count = select(func.count()).select_from(o).where(*conditions)
    order = ([func.length(o.sor_code), o.sor_code] if shape.sort == "code"
             else [o.name_search, o.sor_code])
    page = select(*ITEM_COLUMNS).where(*conditions)
    if shape.cursor:
        page = page.where(_after(order, shape.sort))
    page = page.order_by(*order).limit(bindparam("page_limit", type_=Integer))
    return _remember(_SEARCH_STATEMENTS, shape, (count, page))


def _parameters(reads: Reads, filters: Filters, postgresql: bool, sort: Sort, limit: int,
                cursor: str | None) -> tuple[_Shape, dict[str, Any]]:
    """The shape of a (normalised) search, and its parameters."""
    params: dict[str, Any] = {"day": filters.active_on or date.today(), "page_limit": limit + 1}
    present = tuple(name for name in _FILTER_NAMES
                    if name not in ("level", "name_match", "active_on")
                    and getattr(filters, name) not in (None, ""))
    levels = list(dict.fromkeys(filters.level or []))
    for i, level in enumerate(levels):
        params[f"level_{i}"] = level
    for name in _SIMPLE_FILTERS:
        if name in present:
            params[name] = getattr(filters, name)
    if filters.shak:
        params["shak_prefix"] = _escape_like(filters.shak) + "%"
    if filters.sor_code:
        params["sor_prefix"] = filters.sor_code + "%"
    if filters.under:
        path = reads.scalar(_ROOT_PATH, {"under": filters.under})
        if path is None:
            raise LookupError_({"under": f"no organisation has SOR code {filters.under}"})
        params["under_prefix"] = _escape_like(path) + "%"
    fts = False
    if filters.name:
        params["name_pattern"] = _name_pattern(filters.name, filters.name_match)
        if not postgresql and filters.name_match != "prefix" and len(filters.name) >= 3:
            fts = True
            params["phrase"] = '"' + filters.name.replace('"', '""') + '"'
    if cursor:
        params["after_first"], params["after_second"] = decode_cursor(cursor, sort)
    shape = _Shape(postgresql, present, len(levels), fts, sort, bool(cursor))
    return shape, params


def _key(organisation: Any, sort: Sort) -> list[Any]:
    if sort == "code":
        return [len(organisation.sor_code), organisation.sor_code]
    return [organisation.name_search, organisation.sor_code]


def encode_cursor(key: list[Any], sort: Sort) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"s": sort, "k": key})).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        key = data["k"]
        valid = (
            data["s"] == sort
            and isinstance(key, list)
            and len(key) == 2
            and (isinstance(key[0], str) if sort == "name" else isinstance(key[0], int))
            and isinstance(key[1], str)
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        valid = False
    if not valid:
        raise LookupError_({"cursor": "not a cursor of this list (it belongs to another sort "
                                      "or was altered)"})
    return key


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Filters the narrow table holds; a name search with no others reads it alone.
_NARROW_FILTERS = frozenset({"level", "ownership", "cvr", "name", "name_match", "active_on"})
_FILTER_NAMES = tuple(Filters.__dataclass_fields__)
# Below this many matches a page is the matches sorted (cost grows with the matches);
# above it, a walk of the name index in order, filtering (cost shrinks as they grow).
SORT_MATCHES_BELOW = 20000


def _narrow(filters: Filters) -> bool:
    return bool(filters.name) and all(
        getattr(filters, name) in (None, [], "contains") or name in _NARROW_FILTERS
        for name in _FILTER_NAMES
    )


class _TotalCache:
    """Exact totals of name searches, per worker, for the register version they were
    counted in. The version changes at every committed change of the register, so an
    entry is never read for another state of it; entries of old versions are dropped."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.version: Any = None
        self.totals: dict[Any, int] = {}
        self.lock = threading.Lock()

    def get(self, version: Any, key: Any) -> int | None:
        with self.lock:
            return self.totals.get(key) if version == self.version else None

    def put(self, version: Any, key: Any, total: int) -> None:
        with self.lock:
            if version != self.version:
                self.version, self.totals = version, {}
            elif len(self.totals) >= self.size:
                self.totals.clear()
            self.totals[key] = total

    def clear(self) -> None:
        with self.lock:
            self.version, self.totals = None, {}


TOTALS = _TotalCache()


@dataclass(frozen=True)
class _NarrowShape:
    levels: int
    ownership: bool
    cvr: bool
    sort: Sort
    order: str  # "code", "sorted" (the matches sorted) or "index" (the index walked)
    cursor: bool


_NARROW_STATEMENTS: dict[Any, Any] = {}


def _narrow_statements(shape: _NarrowShape) -> tuple[Any, Any]:
    """The count and the page (keys from the narrow table, rows by key) of *shape*."""
    statements = _NARROW_STATEMENTS.get(shape)
    if statements is not None:
        return statements
    n = OrganisationName
    conditions: list[Any] = [_name_like(n.name_search)]
    if shape.levels:
        conditions.append(n.level.in_(
            [bindparam(f"level_{i}", type_=String) for i in range(shape.levels)]))
    if shape.ownership:
        conditions.append(n.ownership == bindparam("ownership", type_=String))
    if shape.cvr:
        conditions.append(n.owner_cvr == bindparam("cvr", type_=String))
    conditions += _valid_on(n.__table__)
    count = select(func.count()).select_from(n).where(*conditions)
    if shape.order == "code":
        order = [func.length(n.sor_code), n.sor_code]
    elif shape.order == "sorted":
        # "|| ''" keeps the order but hides the index's: the planner then sorts
        # the matches instead of walking the whole index when they cluster late.
        order = [n.name_search.op("||")(literal_column("''")), n.sor_code]
    else:
        order = [n.name_search, n.sor_code]
    if shape.cursor:
        keyed = ([func.length(n.sor_code), n.sor_code] if shape.sort == "code"
                 else [n.name_search, n.sor_code])
        conditions.append(_after(keyed, shape.sort))
    keys = (
        select(n.sor_code, n.name_search).where(*conditions).order_by(*order)
        .limit(bindparam("page_limit", type_=Integer))
    ).subquery("page")
    outer = (
        [func.length(keys.c.sor_code), keys.c.sor_code] if shape.sort == "code"
        else [keys.c.name_search, keys.c.sor_code]
    )
    page = (
        select(*ITEM_COLUMNS)
        .join_from(keys, Organisation, Organisation.sor_code == keys.c.sor_code)
        .order_by(*outer)
    )
    return _remember(_NARROW_STATEMENTS, shape, (count, page))


def _search_names(session: Session, reads: Reads, filters: Filters, sort: Sort, limit: int,
                  cursor: str | None) -> Page:
    """A name search from the narrow table (PostgreSQL): keys, exact total, then items."""
    day = filters.active_on or date.today()
    assert filters.name is not None
    levels = list(dict.fromkeys(filters.level or []))
    params: dict[str, Any] = {
        "name_pattern": _name_pattern(filters.name, filters.name_match),
        "day": day, "page_limit": limit + 1, "ownership": filters.ownership,
        "cvr": filters.cvr,
    }
    for i, level in enumerate(levels):
        params[f"level_{i}"] = level
    if cursor:
        params["after_first"], params["after_second"] = decode_cursor(cursor, sort)

    def shape(order: str) -> _NarrowShape:
        return _NarrowShape(len(levels), bool(filters.ownership), bool(filters.cvr), sort,
                            order, bool(cursor))

    # Read the version before anything else: a total counted after a concurrent
    # commit is then filed under the older version, never a stale one under the newer.
    version = register_version(session)
    cacheable = version is not None and not register_changed_in(session)
    key = (day, tuple(sorted(filters.level)), filters.ownership, filters.cvr, filters.name,
           filters.name_match)
    total = TOTALS.get(version, key) if cacheable else None
    if total is None:
        total = reads.scalar(_narrow_statements(shape("index"))[0], params)
        if cacheable:
            TOTALS.put(version, key, total)
    if total == 0:
        return Page(items=[], total=0, next=None)
    order = "code" if sort == "code" else "sorted" if total < SORT_MATCHES_BELOW else "index"
    rows = reads.rows(_narrow_statements(shape(order))[1], params)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(_key(rows[-1], sort), sort) if more and rows else None
    return Page(items=rows, total=total, next=next_cursor)



# --- the in-memory name index ---------------------------------------------------------------
#
# A name type-ahead the answer cache has not seen costs the exact total: every match
# visited in PostgreSQL (35,114 for "sen" in a national register, ~15-30 ms). Each worker
# therefore keeps the folded names of the organisations active today in memory, sorted
# as the SQL path sorts them (name_search, sor_code; collation "C" is code point order,
# as Python compares strings), with, for every trigram, the ascending list of the
# distinct names holding it and the number of organisations bearing those names. A
# three-letter type-ahead is then a dictionary look-up for its exact total and a walk
# of the first few names for its page; longer fragments check the names of their rarest
# trigram. Only the page's rows are read from the database. The index belongs to one
# register version and one day; when either changes it is rebuilt (on PostgreSQL in a
# background thread while the searches meanwhile take the SQL path; elsewhere by the
# request that finds it stale).

_LEVEL_CODES = {"IE": 1, "SI": 2, "OE": 4}
# A build in a worker's thread is a second of pure Python: it gives up the GIL this
# often (a few hundred microseconds of work), or a request thread waiting for the GIL
# would wait the whole switch interval (5 ms) at each of its round trips.
_YIELD_EVERY = 200


class NameIndex:
    """The organisations active on *day* in register version *version*, by folded name."""

    def __init__(self, version: Any, day: date, rows: Iterable[Any]) -> None:
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
        postings: dict[str, array] = {}
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

    def _names_matching(self, folded: str, mode: str) -> Sequence[int]:
        """The distinct names (ascending numbers) holding *folded*, as LIKE would find them."""
        names = self.names
        if mode == "prefix":
            lo = bisect_left(names, folded)
            hi = bisect_right(names, folded, lo, key=lambda s: s[:len(folded)])
            return range(lo, hi)
        if len(folded) < 3:
            return [j for j, name in enumerate(names) if folded in name]
        postings = [self.postings.get(folded[k:k + 3]) for k in range(len(folded) - 2)]
        if any(p is None for p in postings):
            return []
        rarest = min(postings, key=len)  # type: ignore[arg-type]
        if len(folded) == 3:
            return rarest  # type: ignore[return-value]
        return [j for j in rarest if folded in names[j]]  # type: ignore[union-attr]

    def search(self, folded: str, mode: str, levels: list[str], ownership: str | None,
               limit: int, after: list[Any] | None) -> tuple[list[tuple[str, str]], int, bool]:
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
        elif mode != "prefix" and len(folded) == 3:
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


def _read_names(connection: Any, day: date) -> Iterator[Any]:
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


class _NameIndexes:
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

    def get(self, session: Session, version: Any, day: date) -> NameIndex | None:
        """The index of *version* and *day*, or None (then search with SQL): being built."""
        index = self.index
        if index is not None and index.version == version and index.day == day:
            return index
        if not self.enabled or day != date.today():
            return None
        bind = session.get_bind()
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
            rows = _read_names(session.connection(), day)
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
                        rows = _read_names(connection, day)
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


NAMES = _NameIndexes()


def _indexable(filters: Filters, sort: Sort) -> bool:
    """Whether the name index answers this search: a name search, sorted by name, with at
    most level and ownership filters, for today."""
    return (
        sort == "name"
        and bool(filters.name)
        and all(getattr(filters, name) in (None, [], "contains") or name in _INDEX_FILTERS
                for name in _FILTER_NAMES)
    )


_INDEX_FILTERS = frozenset({"level", "ownership", "name", "name_match", "active_on"})


_ITEMS_BY_CODE = {
    # PostgreSQL: one array parameter, so the statement is the same for any page size
    True: select(*ITEM_COLUMNS).where(
        Organisation.sor_code == any_(bindparam("codes", type_=ARRAY(String)))),
    False: select(*ITEM_COLUMNS).where(
        Organisation.sor_code.in_(bindparam("codes", expanding=True))),
}


def _search_index(session: Session, reads: Reads, filters: Filters, limit: int,
                  cursor: str | None) -> Page | None:
    """A name search from the worker's name index; None when the index cannot answer it."""
    day = filters.active_on or date.today()
    if register_changed_in(session):
        return None  # this transaction's own changes are not in any index
    version = register_version(session)
    if version is None:
        return None
    index = NAMES.get(session, version, day)
    if index is None:
        return None
    assert filters.name is not None
    after = decode_cursor(cursor, "name") if cursor else None
    keys, total, more = index.search(filters.name, filters.name_match, filters.level,
                                     filters.ownership, limit, after)
    if not keys:
        return Page(items=[], total=total, next=None)
    statement = _ITEMS_BY_CODE[_is_postgresql(session)]
    found = {row.sor_code: row
             for row in reads.rows(statement, {"codes": [code for _, code in keys]})}
    items = [found[code] for _, code in keys if code in found]
    if len(items) != len(keys):
        return None  # changed under us (a commit since the version was read): ask SQL
    next_cursor = encode_cursor(list(keys[-1]), "name") if more else None
    return Page(items=items, total=total, next=next_cursor)


def search(
    session: Session,
    filters: Filters,
    *,
    sort: Sort = "name",
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """One page of the organisations matching *filters*, with the list's total."""
    if not 1 <= limit <= MAX_LIMIT:
        raise LookupError_({"limit": f"between 1 and {MAX_LIMIT}"})
    filters = normalise(filters)
    if cursor:
        decode_cursor(cursor, sort)  # a bad cursor is refused before any query
    reads = reads_for(session)
    postgresql = _is_postgresql(session)
    if _indexable(filters, sort):
        page = _search_index(session, reads, filters, limit, cursor)
        if page is not None:
            return page
    if _narrow(filters) and postgresql:
        return _search_names(session, reads, filters, sort, limit, cursor)
    shape, params = _parameters(reads, filters, postgresql, sort, limit, cursor)
    count, page_statement = _search_statements(shape)
    total, rows = reads.scalar_and_rows(count, page_statement, params)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(_key(rows[-1], sort), sort) if more and rows else None
    return Page(items=rows, total=total, next=next_cursor)

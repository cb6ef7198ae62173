"""The search's SQL: statements built once per shape, parameters per request.

A search's statements depend on which filters it has (and the back end, the sort,
whether it continues from a cursor), not on their values: each shape's statements are
built once, with named parameters, and the values passed per request. SQLAlchemy then
needs no statement construction or cache key per request, and on PostgreSQL
``sorregistry.reads`` runs them on the thread's own connection, compiled once.

Two families: the general search over ``organisations`` (:func:`search_statements`),
and on PostgreSQL the name search over the narrow table ``organisation_names``
(:func:`narrow_statements`: the page's keys and the exact total from it, the items
from ``organisations`` by primary key).

The conditions of the filters only the FHIR directory sets are made in
:mod:`~hierarchy.search.directory`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import date, datetime
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import BindParameter, Label, SQLCoreOperations
from sqlalchemy.sql.selectable import FromClause

from hierarchy.models import Organisation, OrganisationName, organisation_stamp
from hierarchy.search import directory
from hierarchy.search.cursor import Keyed, decode_cursor
from hierarchy.search.filters import (
    FILTER_NAMES,
    WORD_SEPARATORS,
    AlternativeKind,
    Filters,
    InvalidSearch,
    Sort,
    Validity,
    escape_like,
    name_words,
    typed_words,
)
from hierarchy.search.matching import (
    Condition,
    Parameters,
    name_pattern,
    rank_parameters,
    relevance_rank,
    word_parameters,
)
from sorregistry.database import one_of_named
from sorregistry.models import UTCDateTime
from sorregistry.reads import Reads

# What a list item shows (hierarchy.schemas.organisation_item), read as plain
# rows: no ORM identity map for hundreds of rows a page.
ITEM_VALUES: list[InstrumentedAttribute[Any]] = [
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
    Organisation.updated_at,
]
# ... and the organisation's stamp, what the worker's kept items are checked against
# (hierarchy.items; a table's or subquery's rows: ITEM_VALUES and organisation_stamp).
ITEM_COLUMNS: list[InstrumentedAttribute[Any] | Label[Any]] = [
    *ITEM_VALUES, organisation_stamp(Organisation)]
# What a search's page reads: the item's columns and whether the unit's address is its own
# (FHIR's resources read updated_at and own_address besides what the API shows).
PAGE_COLUMNS: list[InstrumentedAttribute[Any] | ColumnElement[Any]] = [
    *ITEM_COLUMNS, directory.OWN_ADDRESS]


class ItemRow(Protocol):
    """A row with ITEM_COLUMNS (SQLAlchemy's Row, psycopg's named tuple) or an Organisation."""

    @property
    def sor_code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def name_search(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def entity_type(self) -> str | None: ...
    @property
    def ownership(self) -> str | None: ...
    @property
    def owner_cvr(self) -> str | None: ...
    @property
    def ydernummer(self) -> str | None: ...
    @property
    def shak(self) -> str | None: ...
    @property
    def p_number(self) -> str | None: ...
    @property
    def parent_sor_code(self) -> str | None: ...
    @property
    def institution_sor_code(self) -> str | None: ...
    @property
    def owner_sor_code(self) -> str: ...
    @property
    def effective(self) -> dict[str, Any]: ...
    @property
    def inherited(self) -> list[str]: ...
    @property
    def clinical_specialities(self) -> list[dict[str, str]] | None: ...
    @property
    def replaces(self) -> list[str] | None: ...
    @property
    def replaced_by(self) -> list[str] | None: ...
    @property
    def first_valid_from(self) -> date | None: ...
    @property
    def valid_from(self) -> date | None: ...
    @property
    def valid_to(self) -> date | None: ...
    @property
    def version(self) -> int: ...
    @property
    def updated_at(self) -> datetime: ...


class StampedRow(ItemRow, Keyed, Protocol):
    """A row read with ITEM_COLUMNS from ``organisations``: the item's columns and the
    organisation's stamp (hierarchy.items; an int on PostgreSQL, a string elsewhere)."""

    @property
    def stamp(self) -> Hashable: ...


# A list's count and its page (rows with ITEM_COLUMNS).
Statements = tuple[Select[Any], Select[Any]]
# A column or an expression of columns (an ORM attribute, a subquery's column, length()).
Column = SQLCoreOperations[Any]
# How the narrow table's page is ordered: by code; by name, the matches sorted; by name,
# the name index walked in order (see SORT_MATCHES_BELOW in hierarchy.search).
Order = Literal["code", "sorted", "index"]


class Shape(NamedTuple):
    """What the general search's statements depend on. A named tuple, not a frozen
    dataclass: it is hashed and compared three times a search (its statements, the
    total's key and the total kept), in C rather than by generated Python (~8 us)."""

    postgresql: bool
    present: tuple[str, ...]  # the filters given (names of Filters' fields)
    levels: int  # how many levels the level filter names
    fts: bool  # SQLite: the name through the FTS5 trigram table too
    sort: Sort
    cursor: bool
    validity: Validity | None = None
    any_of: tuple[tuple[AlternativeKind, ...], ...] = ()  # each group's kinds
    words: int = 0  # "words" mode: how many words the name has
    rank_words: int = 0  # by relevance: how many words were typed


class NarrowShape(NamedTuple):
    """What the narrow table's statements depend on (a named tuple, as Shape)."""

    levels: int
    ownership: bool
    cvr: bool
    sort: Sort
    order: Order
    cursor: bool
    words: int = 0  # "words" mode: how many words the name has
    rank_words: int = 0  # by relevance: how many words were typed


_SIMPLE_FILTERS: dict[str, InstrumentedAttribute[Any]] = {
    # filter -> column compared for equality, the value as given
    "ownership": Organisation.ownership,
    "cvr": Organisation.owner_cvr,
    "entity_type": Organisation.entity_type,
    "ydernummer": Organisation.ydernummer,
    "municipality_code": Organisation.eff_municipality_code,
    "postal_code": Organisation.eff_postal_code,
}
# Filters that are not a column's condition of their own.
_NOT_CONDITIONS = ("level", "name_match", "active_on", "validity")
_ROOT_PATH = select(Organisation.path).where(
    Organisation.sor_code == bindparam("under", type_=String))

# Shapes a client can ask for run into thousands (every subset of the filters); the forms
# use a handful. The caches are bounded: full, they start again.
_MAX_SHAPES = 1000
K = TypeVar("K", "Shape", "NarrowShape")
_SEARCH_STATEMENTS: dict[Shape, Statements] = {}
_NARROW_STATEMENTS: dict[NarrowShape, Statements] = {}


def remember(cache: dict[K, Statements], shape: K, statements: Statements) -> Statements:
    if len(cache) >= _MAX_SHAPES:
        cache.clear()
    return cache.setdefault(shape, statements)


def valid_on(table: FromClause, validity: Validity | None = None) -> list[Condition]:
    """*table*'s rows valid on the parameter ``day`` (closing date exclusive); with
    *validity* "inactive" those not valid then, with "any" every row."""
    if validity == "any":
        return []
    day = bindparam("day", type_=Date)
    conditions: list[Condition] = [
        (table.c.valid_from.is_(None)) | (table.c.valid_from <= day),
        (table.c.valid_to.is_(None)) | (table.c.valid_to > day),
    ]
    return [not_(and_(*conditions))] if validity == "inactive" else conditions


def _name_like(column: InstrumentedAttribute[str], words: int = 0) -> Condition:
    """The name matched: the pattern (the text index's), and in "words" mode each word at
    the start of a word of the name (parameters of :func:`word_parameters`)."""
    condition = column.like(bindparam("name_pattern", type_=String), escape="\\")
    if not words:
        return condition
    starts = range(len(WORD_SEPARATORS) + 1)
    return and_(condition, *[
        or_(*[column.like(bindparam(f"word_{k}_{i}", type_=String), escape="\\")
              for i in starts])
        for k in range(words)])


def _name_condition(shape: Shape) -> Condition:
    """Name matching on the folded search column, with each back end's text index.

    PostgreSQL answers ``LIKE '%x%'`` from the trigram index of the narrow table
    ``organisation_names``; SQLite from an FTS5 trigram table on ``organisations``.
    The LIKE is kept on SQLite too, so both give the same rows.
    """
    if shape.postgresql:
        names = OrganisationName
        matching = select(names.sor_code).where(_name_like(names.name_search, shape.words))
        return Organisation.sor_code.in_(matching)
    condition = _name_like(Organisation.name_search, shape.words)
    if shape.fts:
        fts = text(
            "SELECT rowid FROM organisations_search WHERE organisations_search MATCH :phrase"
        ).bindparams(bindparam("phrase", type_=String))
        condition = and_(literal_column("organisations.rowid").in_(fts), condition)
    return condition


def after_key(order: Sequence[Column], sort: Sort) -> Condition:
    """Rows after the cursor's key in *order* (parameters ``after_first``, ``after_second``:
    the key ``hierarchy.search.cursor.decode_cursor`` gives; by relevance ``after_rank``
    before them)."""
    if sort == "relevance":
        rank = bindparam("after_rank", type_=Integer)
        return or_(order[0] > rank, and_(order[0] == rank, after_key(order[1:], "name")))
    first: BindParameter[Any]
    if sort == "code":
        first = bindparam("after_first", type_=Integer)
    elif sort == "updated":
        first = bindparam("after_first", type_=UTCDateTime)
    else:
        first = bindparam("after_first", type_=String)
    second = bindparam("after_second", type_=String)
    return or_(order[0] > first, and_(order[0] == first, order[1] > second))


def _sort_key(sor_code: SQLCoreOperations[str], name_search: SQLCoreOperations[str],
              sort: Sort, rank_words: int = 0) -> list[Column]:
    """The order of a list by *sort* (what cursor.key_of reads back from a row)."""
    if sort == "relevance":
        return [relevance_rank(name_search, rank_words), name_search, sor_code]
    if sort == "code":
        return [func.length(sor_code), sor_code]
    if sort == "updated":
        return [Organisation.updated_at, sor_code]
    return [name_search, sor_code]


def search_statements(shape: Shape) -> Statements:
    """The count and the page of the general search for *shape*."""
    statements = _SEARCH_STATEMENTS.get(shape)
    if statements is not None:
        return statements
    o = Organisation
    conditions: list[Condition] = []
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
    conditions.extend(directory.conditions(shape.present, shape.any_of, shape.postgresql))
    conditions.extend(valid_on(o.__table__, shape.validity))
    count = select(func.count()).select_from(o).where(*conditions)
    order = _sort_key(o.sor_code, o.name_search, shape.sort, shape.rank_words)
    page = select(*PAGE_COLUMNS).where(*conditions)
    if shape.cursor:
        page = page.where(after_key(order, shape.sort))
    page = page.order_by(*order).limit(bindparam("page_limit", type_=Integer))
    return remember(_SEARCH_STATEMENTS, shape, (count, page))


def search_parameters(reads: Reads, filters: Filters, postgresql: bool, sort: Sort, limit: int,
                      cursor: str | None) -> tuple[Shape, Parameters]:
    """The shape of a (normalised) general search, and its parameters.

    ``under`` is read here (its root's path: the subtree is ``path LIKE 'root%'``, the
    materialized path of ``Organisation.path``); an unknown root is InvalidSearch.
    """
    params: Parameters = {"day": filters.active_on or date.today(), "page_limit": limit + 1}
    present = tuple(name for name in FILTER_NAMES
                    if name not in _NOT_CONDITIONS
                    and getattr(filters, name) not in (None, "", [], False))
    levels = list(dict.fromkeys(filters.level or []))
    for i, level in enumerate(levels):
        params[f"level_{i}"] = level
    for name in _SIMPLE_FILTERS:
        if name in present:
            params[name] = getattr(filters, name)
    if filters.shak:
        params["shak_prefix"] = escape_like(filters.shak) + "%"
    if filters.sor_code:
        params["sor_prefix"] = filters.sor_code + "%"
    if filters.under:
        path = reads.scalar(_ROOT_PATH, {"under": filters.under})
        if path is None:
            raise InvalidSearch({"under": f"no organisation has SOR code {filters.under}"})
        params["under_prefix"] = escape_like(path) + "%"
    directory.parameters(reads, filters, params)
    fts = False
    words = rank_words = 0
    if filters.name:
        params["name_pattern"] = name_pattern(filters.name, filters.name_match or "contains")
        phrase = filters.name
        if filters.name_match == "words":
            params.update(word_parameters(filters.name))
            words = len(name_words(filters.name))
            phrase = name_words(filters.name)[0]
        if sort == "relevance":
            params.update(rank_parameters(filters.name))
            rank_words = len(typed_words(filters.name))
        if not postgresql and filters.name_match != "prefix" and len(phrase) >= 3:
            fts = True
            params["phrase"] = '"' + phrase.replace('"', '""') + '"'
    if cursor:
        cursor_parameters(params, cursor, sort)
    any_of = tuple(tuple(kind for kind, _ in group) for group in filters.any_of)
    shape = Shape(postgresql, present, len(levels), fts, sort, bool(cursor), filters.validity,
                  any_of, words, rank_words)
    return shape, params


def cursor_parameters(params: Parameters, cursor: str, sort: Sort) -> None:
    """The parameters of :func:`after_key` for *cursor*, into *params*."""
    if sort == "relevance":
        params["after_rank"], params["after_first"], params["after_second"] = (
            decode_cursor(cursor, sort))
    else:
        params["after_first"], params["after_second"] = _cursor_key(cursor, sort)


def _cursor_key(cursor: str, sort: Sort) -> tuple[Any, str]:
    """The cursor's key as the statement's parameters take it (a moment, by the last change)."""
    first, second = decode_cursor(cursor, sort)
    if sort != "updated":
        return first, str(second)
    try:
        moment = datetime.fromisoformat(str(first))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidSearch({"cursor": "not a cursor of this list (it was altered)"})
    return moment, str(second)


def narrow_filters(shape: NarrowShape) -> list[Condition]:
    """The narrow table's conditions of *shape* besides the name: levels, ownership, CVR,
    in force on the day (the parameters ``level_i``, ``ownership``, ``cvr``, the day's)."""
    n = OrganisationName
    conditions: list[Condition] = []
    if shape.levels:
        conditions.append(n.level.in_(
            [bindparam(f"level_{i}", type_=String) for i in range(shape.levels)]))
    if shape.ownership:
        conditions.append(n.ownership == bindparam("ownership", type_=String))
    if shape.cvr:
        conditions.append(n.owner_cvr == bindparam("cvr", type_=String))
    return conditions + list(valid_on(n.__table__))


def narrow_statements(shape: NarrowShape) -> Statements:
    """The count and the page (keys from the narrow table, rows by key) of *shape*."""
    statements = _NARROW_STATEMENTS.get(shape)
    if statements is not None:
        return statements
    n = OrganisationName
    conditions = [_name_like(n.name_search, shape.words), *narrow_filters(shape)]
    count = select(func.count()).select_from(n).where(*conditions)
    order: list[Column]
    if shape.order == "code":
        order = _sort_key(n.sor_code, n.name_search, "code")
    elif shape.sort == "relevance":
        order = _sort_key(n.sor_code, n.name_search, "relevance", shape.rank_words)
    elif shape.order == "sorted":
        # "|| ''" keeps the order but hides the index's: the planner then sorts
        # the matches instead of walking the whole index when they cluster late.
        order = [n.name_search.op("||")(literal_column("''")), n.sor_code]
    else:
        order = _sort_key(n.sor_code, n.name_search, "name")
    if shape.cursor:
        conditions.append(after_key(
            _sort_key(n.sor_code, n.name_search, shape.sort, shape.rank_words), shape.sort))
    keys = (
        select(n.sor_code, n.name_search).where(*conditions).order_by(*order)
        .limit(bindparam("page_limit", type_=Integer))
    ).subquery("page")
    page = (
        select(*PAGE_COLUMNS)
        .join_from(keys, Organisation, Organisation.sor_code == keys.c.sor_code)
        .order_by(*_sort_key(keys.c.sor_code, keys.c.name_search, shape.sort,
                             shape.rank_words))
    )
    return remember(_NARROW_STATEMENTS, shape, (count, page))


# A page's items by their keys (the name index's pages). PostgreSQL: one array parameter,
# so the statement is the same for any page size.
ITEMS_BY_CODE: dict[bool, Select[Any]] = {
    postgresql: select(*PAGE_COLUMNS).where(
        one_of_named(Organisation.sor_code, "codes", postgresql=postgresql))
    for postgresql in (True, False)
}

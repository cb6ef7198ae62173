"""A page's rows by key only, for a caller that keeps each organisation's item.

The lookups keep every organisation's item rendered (``hierarchy.items``) under its stamp
(one value made of ``version``, ``content_hash``, ``derived_hash``:
``hierarchy.models.organisation_stamp``); a page of 500 then needs from SQL only
which organisations, in what order, and their stamps - not the wide rows, whose JSON
columns alone cost more to fetch and decode than PostgreSQL takes to find them (5 of the
~12 ms of a computed 500-row "Mit CVR – Alle"). :func:`keyed` makes a page statement's twin
that reads :func:`key_columns` (what its order's cursor key is made of, and the stamp); the items
not kept are then read by code (``ITEMS_BY_CODE``) and rendered.

Key rows are plain tuples (``sorregistry.reads``' *plain* rows), read by position: the
code first, the stamp last (:data:`KeyRow`). Making each of a page's 500 rows a named
tuple cost ~0.5 us a row - a Mit CVR page's 501 rows 0.76-0.81 ms of the client's CPU
against 0.51-0.53 ms as plain tuples, side by side. :func:`named_key` names the one row
a page's cursor is made of.
"""

from __future__ import annotations

import functools
import operator
from collections import namedtuple
from collections.abc import Callable, Hashable, Sequence
from typing import Any, cast

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import Label

from hierarchy.models import Organisation, organisation_stamp
from hierarchy.search.cursor import Keyed
from hierarchy.search.filters import Sort
from sorregistry.database import one_of_named

__all__ = ["KEYS_BY_CODE", "KEY_COLUMNS", "KeyRow", "code_of", "key_columns", "keyed",
           "named_key", "stamp_of_key"]

_STAMP = organisation_stamp(Organisation)
# Every column a page by key may read: the code, each order's cursor key, the stamp.
KEY_COLUMNS: list[InstrumentedAttribute[Any] | Label[Any]] = [
    Organisation.sor_code, Organisation.name_search, Organisation.updated_at, _STAMP]
# What each order's cursor key is made of besides the code (hierarchy.search.cursor.key_of).
# A page reads only its own order's: ``updated_at`` of 500 rows cost more to decode (a
# time zone's datetime each, ~1 us) than the rest of the page's columns together - a
# Mit CVR page's 501 rows 0.73 ms of the client's CPU with it, 0.22-0.32 ms without.
_SORT_KEYS: dict[Sort, list[InstrumentedAttribute[Any]]] = {
    "name": [Organisation.name_search],
    "relevance": [Organisation.name_search],
    "updated": [Organisation.updated_at],
    "code": [],
}


def key_columns(sort: Sort) -> list[InstrumentedAttribute[Any] | Label[Any]]:
    """The columns of a page sorted by *sort* read by key: the code, what the cursor's key
    is made of, the stamp (a subset of KEY_COLUMNS)."""
    return [Organisation.sor_code, *_SORT_KEYS[sort], _STAMP]


# A row read by key, a plain tuple: the organisation's code, what its order's cursor key
# is made of (``key_columns``), its stamp last.
KeyRow = Sequence[Any]
# A key row's code, and its stamp (made in C).
code_of = cast(Callable[[KeyRow], str], operator.itemgetter(0))
stamp_of_key = cast(Callable[[KeyRow], Hashable], operator.itemgetter(-1))


@functools.cache
def _named(sort: Sort) -> Any:
    return namedtuple("KeyRow", [column.key for column in key_columns(sort)])


def named_key(row: KeyRow, sort: Sort) -> Keyed:
    """*row* of a page by *sort* read by key, with its columns' names (to make its cursor)."""
    return cast(Keyed, _named(sort)._make(row))


# The stamps of a name index's page, by code (its keys and their order come from memory).
_CODE_AND_STAMP: list[InstrumentedAttribute[Any] | Label[Any]] = [Organisation.sor_code, _STAMP]
KEYS_BY_CODE: dict[bool, Select[Any]] = {
    postgresql: select(*_CODE_AND_STAMP).where(
        one_of_named(Organisation.sor_code, "codes", postgresql=postgresql))
    for postgresql in (True, False)
}


@functools.lru_cache(maxsize=2000)  # statements are built once per shape, kept as objects
def keyed(statement: Select[Any], sort: Sort) -> Select[Any]:
    """*statement* (a page of rows with the item's columns: its conditions, order and limit)
    reading *sort*'s key columns instead; made once per statement (a Select hashes by
    identity)."""
    return statement.with_only_columns(*key_columns(sort), maintain_column_froms=False)

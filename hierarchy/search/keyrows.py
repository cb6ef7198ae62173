"""A page's rows by key only, for a caller that keeps each organisation's item.

The lookups keep every organisation's item rendered (``hierarchy.items``) under its stamp
(``version``, ``content_hash``, ``derived_hash``); a page of 500 then needs from SQL only
which organisations, in what order, and their stamps - not the wide rows, whose JSON
columns alone cost more to fetch and decode than PostgreSQL takes to find them (5 of the
~12 ms of a computed 500-row "Mit CVR – Alle"). :func:`keyed` makes a page statement's twin
that reads :data:`KEY_COLUMNS` (what a cursor's key is made of, and the stamp); the items
not kept are then read by code (``ITEMS_BY_CODE``) and rendered.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

from sqlalchemy import ARRAY, Select, String, any_, bindparam, select
from sqlalchemy.orm import InstrumentedAttribute

from hierarchy.models import Organisation
from hierarchy.search.cursor import Keyed

__all__ = ["KEYS_BY_CODE", "KEY_COLUMNS", "KeyRow", "keyed"]

KEY_COLUMNS: list[InstrumentedAttribute[Any]] = [
    Organisation.sor_code,
    Organisation.name_search,
    Organisation.updated_at,
    Organisation.version,
    Organisation.content_hash,
    Organisation.derived_hash,
]


class KeyRow(Keyed, Protocol):
    """A row with KEY_COLUMNS: a page's place of an organisation (what a cursor's key is
    made of) and its stamp."""

    @property
    def version(self) -> int: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def derived_hash(self) -> str: ...


# The stamps of a name index's page, by code (its keys come from memory).
KEYS_BY_CODE: dict[bool, Select[Any]] = {
    True: select(*KEY_COLUMNS).where(
        Organisation.sor_code == any_(bindparam("codes", type_=ARRAY(String)))),
    False: select(*KEY_COLUMNS).where(
        Organisation.sor_code.in_(bindparam("codes", expanding=True))),
}


@functools.lru_cache(maxsize=2000)  # statements are built once per shape, kept as objects
def keyed(statement: Select[Any]) -> Select[Any]:
    """*statement* (a page of rows with the item's columns: its conditions, order and limit)
    reading KEY_COLUMNS instead; made once per statement (a Select hashes by identity)."""
    return statement.with_only_columns(*KEY_COLUMNS, maintain_column_froms=False)

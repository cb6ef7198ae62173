"""Keyset cursors: the key of the last row a page showed, and the sort it belongs to.

A cursor is the key (``[name_search, sor_code]`` by name, ``[len(sor_code), sor_code]``
by code, ``[updated_at in ISO 8601, sor_code]`` by the last change, ``[group, name_search,
sor_code]`` by relevance: ``hierarchy.search.filters.relevance``) and its sort, as
URL-safe base64 JSON. A cursor of another sort, or one altered, is refused rather than
misread: walking a list with it would skip or repeat rows.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Protocol

import orjson

from hierarchy.search.filters import InvalidSearch, Sort, relevance

# [first, second]: the sort's two columns (str, str by name and by the last change; int, str
# by code), as the JSON of a cursor carries them.
Key = list[str | int]


class Keyed(Protocol):
    """A row a page shows: what its key is made of."""

    @property
    def name_search(self) -> str: ...

    @property
    def sor_code(self) -> str: ...

    @property
    def updated_at(self) -> datetime: ...


def key_of(row: Keyed, sort: Sort, folded: str | None = None) -> Key:
    """*row*'s place in the list sorted by *sort* (by relevance to the folded text *folded*)."""
    if sort == "relevance":
        return [relevance(row.name_search, folded or ""), row.name_search, row.sor_code]
    if sort == "code":
        return [len(row.sor_code), row.sor_code]
    if sort == "updated":
        return [row.updated_at.isoformat(), row.sor_code]
    return [row.name_search, row.sor_code]


def encode_cursor(key: Key, sort: Sort) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"s": sort, "k": key})).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> Key:
    """The key *cursor* carries; InvalidSearch when it is not a cursor of a list by *sort*."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        key: Key = data["k"]
        if sort == "relevance":
            return _relevance_key(data["s"], key)
        valid = (
            data["s"] == sort
            and isinstance(key, list)
            and len(key) == 2
            and (isinstance(key[0], int) if sort == "code" else isinstance(key[0], str))
            and isinstance(key[1], str)
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        valid = False
    if not valid:
        raise _altered()
    return key


def _altered() -> InvalidSearch:
    return InvalidSearch({"cursor": "not a cursor of this list (it belongs to another sort "
                                    "or was altered)"})


def _relevance_key(sort: object, key: object) -> Key:
    if (sort != "relevance" or not isinstance(key, list) or len(key) != 3
            or type(key[0]) is not int or not 0 <= key[0] <= 3
            or not all(isinstance(part, str) for part in key[1:])):
        raise _altered()
    return key

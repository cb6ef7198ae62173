"""A list's page kept whole, checked against the rows by a digest PostgreSQL makes of them.

A computed "Mit CVR – Alle" page reads its 501 key rows (code, name, stamp) by key
(``hierarchy.search.keyrows``) and finds its items' array kept under their hash
(``hierarchy.items``): sending, decoding and making tuples of the 501 rows and hashing
them was most of what the worker still did for it - ~0.45 ms of its CPU of ~0.55 ms of
reading, against ~0.09 ms for a statement of one row. Yet the same page is asked all day
and changes seldom.

So a worker that keeps the page of a query - the same statement (its conditions, order
and limit), the same parameters (the client's CVR, the day, a cursor), the same name -
asks PostgreSQL for the **digest** of that page's key rows instead of the rows:
SHA-256 of every row's code and stamp in the page's order (:func:`digested`; the rows
the statement reads, one beyond the page: whether more follow is in it too). The kept
page holds the digest of the rows it was made of (:func:`rows_digest`, the same text
hashed the same way in Python); equal, the rows read now are those rows - the same
organisations in the same states in the same order - and the page's array and its next
cursor are the kept ones. Different (an organisation changed, added, gone; another
order), the rows are read as before and the page made and kept again.

The rows themselves are still read in the request: PostgreSQL hashes them where they
are, at the statement's snapshot. A digest is never taken for an answer of its own -
only compared with one made in Python from rows read and rendered, so whatever order
PostgreSQL aggregated them in, a page is served only for rows equal to its own.
Each row is written "code,stamp" with ``||`` (``concat()`` with each code's length, to
be safe from any separator in a code, cost PostgreSQL 0.2 ms more per page of 501 rows
than the rows sent): a code is digits, checked where any enters the register
(``hierarchy.identifiers.validate_sor_code``), and the stamp a number on PostgreSQL
(``hierarchy.models.organisation_stamp``) - no two lists of rows are one text.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Select, func, literal_column, select

__all__ = ["KeptPage", "KeptPages", "digested", "rows_digest"]


class KeptPage(NamedTuple):
    """A page as a worker keeps it: the digest of the key rows it was made of, its items'
    JSON array (an ``orjson.Fragment``) and how many, its next page's cursor."""

    digest: bytes
    array: orjson.Fragment
    next: str | None
    size: int  # items


# The caller's kept pages by query (``hierarchy.items.ItemCache.kept_page``).
KeptPages = Callable[[Hashable], KeptPage | None]


@functools.lru_cache(maxsize=2000)  # statements are built once per shape, kept as objects
def digested(statement: Select[Any]) -> Select[Any]:
    """The digest of the key rows *statement* reads (a page by key: the code first, the
    stamp last): SHA-256 of "code,stamp" of each row joined by ";", in the rows' order;
    NULL for no rows. PostgreSQL's."""
    page = statement.subquery()
    columns = list(page.c)
    element = columns[0].op("||")(literal_column("','")).op("||")(columns[-1])
    joined = func.string_agg(element, literal_column("';'"))
    return select(func.sha256(func.convert_to(joined, literal_column("'UTF8'"))))


def rows_digest(rows: Sequence[Sequence[Any]]) -> bytes:
    """:func:`digested`'s digest of key *rows*, made in Python."""
    text = ";".join([f"{row[0]},{row[-1]}" for row in rows])
    return hashlib.sha256(text.encode()).digest()

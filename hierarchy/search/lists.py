"""The reporting forms' lists (seed 002, section 5.2.1), one rule each.

"Mit CVR – SI", "Mit CVR – Alle" and the ownership lists (Statslig, Regional,
Kommunal, Privat) are searches with some filters fixed by the list; the caller's
column filters add to them. The API (``hierarchy.lookup_routes``) and the picker's
page (``hierarchy.views``) both build their lists here, so a list is the same list
whichever way it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, cast

from hierarchy.search.filters import Filters, Sort
from sorregistry.errors import DomainError

# A form's lists show where treatment takes place: institutions and units, never owners.
UNIT_LEVELS = ("SI", "OE")


class NoCvr(DomainError, PermissionError):
    """Mit CVR asked for by a caller whose identity carries no CVR number (403)."""

    status = 403

    def __init__(self) -> None:
        super().__init__("Mit CVR needs the CVR number of your login, and it has none")


class CvrGiven(DomainError):
    """A CVR number sent to Mit CVR, which takes the caller's own (422)."""

    status = 422

    def __init__(self) -> None:
        super().__init__("Mit CVR uses the CVR of your client, never a parameter",
                         field_errors={"cvr": ["not allowed here: the CVR comes from your login"]})


class PageOptions(TypedDict, total=False):
    """How a list is paged: what ``hierarchy.search.search`` takes besides the filters."""

    sort: Sort
    limit: int
    cursor: str


_PAGE_KEYS = frozenset(PageOptions.__optional_keys__)


def split_options(query: Mapping[str, Any]) -> tuple[dict[str, Any], PageOptions]:
    """A list's query (checked by its schema) as (the column filters, the page options)."""
    columns = {name: value for name, value in query.items() if name not in _PAGE_KEYS}
    options = {name: value for name, value in query.items() if name in _PAGE_KEYS}
    return columns, cast(PageOptions, options)


def unit_levels(asked: Iterable[str] | None) -> list[str]:
    """The levels a form's list shows: SI and OE, or those of them asked for; never IE."""
    levels = [level for level in asked or () if level != "IE"]
    return levels or list(UNIT_LEVELS)


def my_cvr_filters(cvr: str | None, columns: Mapping[str, Any], *,
                   institutions_only: bool) -> Filters:
    """Mit CVR – SI (*institutions_only*) or – Alle: the list of the caller's own CVR.

    *cvr* is the caller's, from who they are (their login or token), never from what
    they type; *columns* are the column filters (``level`` narrows Mit CVR – Alle to SI
    or OE; SI has only one level to show). Raises NoCvr when the caller has no CVR.
    """
    if not cvr:
        raise NoCvr()
    given = {name: value for name, value in columns.items() if name != "level"}
    levels = ["SI"] if institutions_only else unit_levels(columns.get("level"))
    return Filters(**{**given, "cvr": cvr, "level": levels})


def ownership_filters(ownership: str, columns: Mapping[str, Any]) -> Filters:
    """Statslig / Regional / Kommunal / Privat: the institutions and units of *ownership*."""
    given = {name: value for name, value in columns.items() if name != "level"}
    return Filters(**{**given, "ownership": ownership, "level": unit_levels(columns.get("level"))})

"""Running a FHIR search on the register's search, and reading units by their SOR code.

A page is one call of ``hierarchy.search.search`` (its count and its page); what a Bundle
includes besides (``_include=Organization:partof``: the parents; ``_revinclude=Location:
organization`` and ``_include=Location:organization``: made from the same rows) costs at
most one more statement, by primary key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import cast

import orjson
from sqlalchemy.orm import Session

from hierarchy import search
from hierarchy.fhir import bundles
from hierarchy.fhir.cities import resolve_city
from hierarchy.fhir.outcome import FhirError, outcome
from hierarchy.fhir.parameters import Query
from hierarchy.fhir.resources import Resource, UnitRow, has_location, location, organization
from sorregistry.reads import reads

NDJSON_PAGE = search.MAX_LIMIT


def units_by_code(session: Session, codes: list[str]) -> dict[str, UnitRow]:
    """The units with *codes* that exist, as search rows, by code."""
    if not codes:
        return {}
    postgresql = session.get_bind().dialect.name == "postgresql"
    rows = reads(session).rows(search.ITEMS_BY_CODE[postgresql], {"codes": codes})
    return {row.sor_code: cast(UnitRow, row) for row in rows}


def _page(session: Session, query: Query, limit: int,
          cursor: str | None) -> search.Page[search.StampedRow]:
    try:
        return search.search(session, query.filters, sort=query.sort, limit=limit,
                             cursor=cursor)
    except search.InvalidSearch as exc:  # a filter the search refuses: the client's (400)
        raise FhirError(str(exc), field_errors=exc.errors) from exc


def _matches(query: Query, rows: list[UnitRow], day: date) -> Iterator[Resource]:
    """The page's resources, one at a time (each is serialised before the next is made,
    ``hierarchy.fhir.bundles``)."""
    make = location if query.resource == "Location" else organization
    return (make(row, day) for row in rows)


def _included(session: Session, query: Query, rows: list[UnitRow],
              day: date) -> Iterator[Resource]:
    """What ``_include`` and ``_revinclude`` add to a page, each resource once."""
    if query.resource == "Location":
        if "Location:organization" in query.includes:
            yield from (organization(row, day) for row in rows)
        return
    if "Organization:partof" in query.includes:
        shown = {row.sor_code for row in rows}
        parents = sorted({row.parent_sor_code for row in rows
                          if row.parent_sor_code and row.parent_sor_code not in shown})
        yield from (organization(row, day) for row in
                    units_by_code(session, parents).values())
    if "Location:organization" in query.revincludes:
        yield from (location(row, day) for row in rows if has_location(row))


def _ignored(query: Query) -> list[bytes]:
    """An entry telling which parameters were ignored (FHIR's lenient handling)."""
    if not query.ignored:
        return []
    message = ("unknown search parameters ignored (Prefer: handling=lenient): "
               + ", ".join(query.ignored))
    result = outcome(200, message)
    result["issue"][0].update(severity="warning", code="not-supported")
    return [orjson.dumps({"resource": result, "search": {"mode": "outcome"}})]


def search_bundle(session: Session, query: Query, base: str, day: date) -> bytes:
    """The searchset Bundle of one page of *query*, as JSON."""
    resolve_city(session, query)
    digest = bundles.search_digest(query.resource, query.used)
    cursor = None
    if query.page:
        cursor = bundles.read_page_token(query.page, digest)
        if not isinstance(cursor, str):
            raise bundles.BadPageToken()
    if query.summary_count:
        page = _page(session, query, 1, None)
        return bundles.bundle_bytes("searchset", [("self", bundles.link(
            base, query.resource, query.used))], _ignored(query), page.total)
    page = _page(session, query, max(query.count, 1), cursor)
    rows = cast("list[UnitRow]", page.items)
    links = [("self", bundles.link(base, query.resource, query.used))]
    if page.next is not None:
        following = [(k, v) for k, v in query.used if k != bundles.TOKEN_PARAMETER]
        following.append((bundles.TOKEN_PARAMETER, bundles.page_token(digest, page.next)))
        links.append(("next", bundles.link(base, query.resource, following)))
    entries = [bundles.entry(base, resource, "match")
               for resource in _matches(query, rows, day)]
    entries += [bundles.entry(base, resource, "include")
                for resource in _included(session, query, rows, day)]
    return bundles.bundle_bytes("searchset", links, entries + _ignored(query),
                          page.total if query.total else None)


def search_ndjson(session: Session, query: Query, day: date) -> Iterator[bytes]:
    """Every match of *query*, one resource a line (FHIR Bulk Data's NDJSON), a page a
    chunk."""
    resolve_city(session, query)
    cursor: str | None = None
    while True:
        page = _page(session, query, NDJSON_PAGE, cursor)
        rows = cast("list[UnitRow]", page.items)
        yield b"".join([orjson.dumps(resource) + b"\n"
                        for resource in _matches(query, rows, day)])
        if page.next is None:
            return
        cursor = page.next

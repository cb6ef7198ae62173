"""Walking the register as a tree: the staff register browser's reads.

The tree is opened one level at a time (a register of 10⁵ entities is never
sent whole): the owners of one ownership, then an owner's institutions, then an
institution's units. Each level is a keyset-paged list by name, like the
lookups, and says for each entity whether it has children to open.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, func, select

from hierarchy.models import OWNERSHIPS, Organisation
from hierarchy.search import (
    ITEM_COLUMNS,
    InvalidSearch,
    Page,
    StampedRow,
    decode_cursor,
    page_of,
)
from hierarchy.search.statements import after_key
from hierarchy.service import active_on_clause
from sorregistry.database import DbSession


def owners_by_ownership(session: DbSession,
                        day: date | None = None) -> dict[str, int]:
    """How many active owners (IE) each ownership has: the tree's first level."""
    day = day or date.today()
    counts = dict(
        session.execute(
            select(Organisation.ownership, func.count())
            .where(Organisation.level == "IE", *active_on_clause(day))
            .group_by(Organisation.ownership)
        ).all()
    )
    return {ownership: counts.get(ownership, 0) for ownership in OWNERSHIPS}


def children(
    session: DbSession,
    *,
    parent_sor_code: str | None = None,
    ownership: str | None = None,
    day: date | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[StampedRow]:
    """One page of an entity's active children (or of one ownership's owners), by name."""
    if (parent_sor_code is None) == (ownership is None):
        raise InvalidSearch({"parent": "give either a parent SOR code or an ownership"})
    if ownership is not None and ownership not in OWNERSHIPS:
        raise InvalidSearch({"ownership": f"one of {', '.join(OWNERSHIPS)}"})
    conditions: list[ColumnElement[bool]] = list(active_on_clause(day or date.today()))
    if parent_sor_code is not None:
        conditions.append(Organisation.parent_sor_code == parent_sor_code)
    else:
        conditions += [Organisation.level == "IE", Organisation.ownership == ownership]
    total = session.execute(
        select(func.count()).select_from(Organisation).where(*conditions)
    ).scalar_one()
    order = [Organisation.name_search, Organisation.sor_code]
    query = select(*ITEM_COLUMNS).where(*conditions)
    params: dict[str, Any] = {}
    if cursor:
        query = query.where(after_key(order, "name"))
        params["after_first"], params["after_second"] = decode_cursor(cursor, "name")
    rows = cast("list[StampedRow]", list(session.execute(query.order_by(*order).limit(limit + 1),
                                                     params)))
    return page_of(rows, total, limit, "name")


def child_counts(session: DbSession, sor_codes: list[str],
                 day: date | None = None) -> dict[str, int]:
    """How many active children each of *sor_codes* has (0 for a leaf)."""
    counts = {code: 0 for code in sor_codes}
    if not sor_codes:
        return counts
    for parent, count in session.execute(
        select(Organisation.parent_sor_code, func.count())
        .where(Organisation.parent_sor_code.in_(sor_codes), *active_on_clause(day or date.today()))
        .group_by(Organisation.parent_sor_code)
    ):
        if parent is not None:  # always: only children of sor_codes are counted
            counts[parent] = count
    return counts


def ancestors(session: DbSession,
              organisation: Organisation) -> list[Row[str, str, str]]:
    """The entity's owner, institution ... down to its parent, from the top."""
    codes = [code for code in organisation.path.strip("/").split("/") if code][:-1]
    if not codes:
        return []
    rows = {
        row.sor_code: row
        for row in session.execute(
            select(Organisation.sor_code, Organisation.name, Organisation.level)
            .where(Organisation.sor_code.in_(codes))
        )
    }
    return [rows[code] for code in codes if code in rows]

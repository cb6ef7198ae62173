"""Walking the register as a tree: the staff register browser's reads.

The tree is opened one level at a time (a register of 10⁵ entities is never
sent whole): the owners of one ownership, then an owner's institutions, then an
institution's units. Each level is a keyset-paged list by name, like the
lookups, and says for each entity whether it has children to open.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from hierarchy.lookups import ITEM_COLUMNS, LookupError_, Page, decode_cursor, encode_cursor
from hierarchy.models import OWNERSHIPS, Organisation
from hierarchy.service import active_on_clause


def owners_by_ownership(session: Session, day: date | None = None) -> dict[str, int]:
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
    session: Session,
    *,
    parent_sor_code: str | None = None,
    ownership: str | None = None,
    day: date | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """One page of an entity's active children (or of one ownership's owners), by name."""
    if (parent_sor_code is None) == (ownership is None):
        raise LookupError_({"parent": "give either a parent SOR code or an ownership"})
    if ownership is not None and ownership not in OWNERSHIPS:
        raise LookupError_({"ownership": f"one of {', '.join(OWNERSHIPS)}"})
    conditions: list[Any] = list(active_on_clause(day or date.today()))
    if parent_sor_code is not None:
        conditions.append(Organisation.parent_sor_code == parent_sor_code)
    else:
        conditions += [Organisation.level == "IE", Organisation.ownership == ownership]
    total = session.execute(
        select(func.count()).select_from(Organisation).where(*conditions)
    ).scalar_one()
    query = select(*ITEM_COLUMNS).where(*conditions)
    if cursor:
        name, code = decode_cursor(cursor, "name")
        query = query.where(or_(Organisation.name_search > name,
                                and_(Organisation.name_search == name,
                                     Organisation.sor_code > code)))
    rows = list(session.execute(
        query.order_by(Organisation.name_search, Organisation.sor_code).limit(limit + 1)
    ))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor([rows[-1].name_search, rows[-1].sor_code], "name") if more else None
    )
    return Page(items=rows, total=total, next=next_cursor)


def child_counts(session: Session, sor_codes: list[str], day: date | None = None) -> dict[str, int]:
    """How many active children each of *sor_codes* has (0 for a leaf)."""
    counts = {code: 0 for code in sor_codes}
    if not sor_codes:
        return counts
    for parent, count in session.execute(
        select(Organisation.parent_sor_code, func.count())
        .where(Organisation.parent_sor_code.in_(sor_codes), *active_on_clause(day or date.today()))
        .group_by(Organisation.parent_sor_code)
    ):
        counts[parent] = count
    return counts


def ancestors(session: Session, organisation: Organisation) -> list[Any]:
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

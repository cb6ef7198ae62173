"""The register's size by ownership over time, for the staff's overview.

At a day *D* (a month's end) an organisation counts when the register had recorded it
by the end of *D* (its first version, ``organisation_versions.version = 1``, was
recorded before the midnight after *D*, Danish time) and it was valid on *D* (its valid period
covers *D*, closing date exclusive, as everywhere in the register). Its ownership and
its valid period are the ones it has now: a unit whose ownership changed is counted
under its present one, and a closing recorded later still counts from its closing
date. That is what the change record answers with one indexed join and one pass over
the organisations (12 sums in one ``SELECT``, on SQLite and PostgreSQL alike), rather
than one reconstruction of the tree per day. Institution owners (IE) are not units of
the register's lists; the count is of SIs and OEs, as the picker's ownership lists are.

**Cached per register version.** That pass reads every organisation and its first
version: at 200,000 it takes about as long as three counts of the register by level
(``bench/bench_stats.py``), too long for each view of the staff's start page. The
answer changes only when the register does, so :func:`register_size` files it per
app under the register's version (``hierarchy.changes.register_version``: read once per
transaction, before the data, so an answer is never staler than the version it is filed
under) and the days asked for; an unknown version is not cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, case, func, or_, select

from hierarchy.changes import register_version
from hierarchy.models import Organisation, OrganisationVersion
from sorregistry.database import DbSession

__all__ = [
    "DANISH_TIME",
    "OWNERSHIPS",
    "SizePoint",
    "month_ends",
    "register_size",
    "size_by_ownership",
]

# The register's days are Danish days (the staff's figures count in them too).
DANISH_TIME = ZoneInfo("Europe/Copenhagen")
OWNERSHIPS = ("statslig", "regional", "kommunal", "privat")
UNIT_LEVELS = ("SI", "OE")
_CACHE = "sor.register_size"
_CACHE_ENTRIES = 8


@dataclass(frozen=True, slots=True)
class SizePoint:
    """How many SIs and OEs the register held on *day*, per ownership."""

    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def month_ends(today: date, months: int = 12) -> list[date]:
    """The last days of the *months* - 1 months before *today*'s, then *today*, oldest first."""
    days = [today]
    day = today.replace(day=1) - timedelta(days=1)
    while len(days) < months:
        days.append(day)
        day = day.replace(day=1) - timedelta(days=1)
    return days[::-1]


def size_by_ownership(session: DbSession, days: Sequence[date]) -> list[SizePoint]:
    """The register's size by ownership on each of *days* (see the module's docstring)."""
    first = OrganisationVersion
    columns = []
    for day in days:
        recorded_by = datetime.combine(
            day + timedelta(days=1), time(), tzinfo=DANISH_TIME).astimezone(UTC)
        columns.append(func.sum(case((and_(
            first.recorded_at < recorded_by,
            or_(Organisation.valid_from.is_(None), Organisation.valid_from <= day),
            or_(Organisation.valid_to.is_(None), Organisation.valid_to > day),
        ), 1), else_=0)))
    query = (
        select(Organisation.ownership, *columns)
        .join(first, and_(first.sor_code == Organisation.sor_code, first.version == 1))
        .where(Organisation.level.in_(UNIT_LEVELS), Organisation.ownership.in_(OWNERSHIPS))
        .group_by(Organisation.ownership)
    )
    counts: dict[str, list[int]] = {name: [0] * len(days) for name in OWNERSHIPS}
    for ownership, *sums in session.execute(query):
        counts[ownership] = [int(value or 0) for value in sums]
    return [SizePoint(day, {name: counts[name][i] for name in OWNERSHIPS})
            for i, day in enumerate(days)]


def register_size(session: DbSession, days: Sequence[date]) -> list[SizePoint]:
    """:func:`size_by_ownership`, filed per app under the register's version and *days*."""
    version = register_version(session)
    if version is None:
        return size_by_ownership(session, days)
    cache: dict[tuple[object, ...], list[SizePoint]] = current_app.extensions.setdefault(
        _CACHE, {})
    key = (*version, *days)
    if key not in cache:
        if len(cache) >= _CACHE_ENTRIES:
            cache.clear()
        cache[key] = size_by_ownership(session, days)
    return cache[key]

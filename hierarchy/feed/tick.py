"""The tick: organisations whose dates take effect appear in the feed again, that day.

An organisation recorded today with ``valid_from`` or ``valid_to`` in the future is in
the feed today, with those dates; on the day a date arrives nothing is written to the
register, yet a mirror that keeps only active units must learn of it (the lesson of
England's ODS, whose consumers missed closures that "happened" on a quiet night). The
tick records a ``took_effect`` entry, showing the organisation as it stands, for each
organisation whose ``valid_from`` or ``valid_to`` falls in (last day ticked, *on*].

Idempotent and safe to run from several hosts at once: the last day ticked is kept in
the database (``feed_state.ticked_through``) and the tick runs under that row's lock
(PostgreSQL ``FOR UPDATE``; SQLite's one writer), so each day's entries are written
once; a tick for a day ticked already writes nothing. Tests move the clock (*on*),
not the wall.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from hierarchy import changes
from hierarchy.models import FeedState
from sorregistry.database import DbSession
from sorregistry.models import utcnow


@dataclass(frozen=True, slots=True)
class TickResult:
    """What a tick did: the days it covered (after *since*, through *on*) and how many
    organisations took effect; *entries* 0 and *since* >= *on* when ticked already."""

    since: date
    on: date
    entries: int

    @property
    def ticked_already(self) -> bool:
        return self.on <= self.since

    def summary(self) -> str:
        if self.ticked_already:
            return f"Ticked through {self.since.isoformat()} already; nothing to do."
        return (f"Ticked {self.since.isoformat()} .. {self.on.isoformat()}: "
                f"{self.entries} organisations took effect.")


def tick(session: DbSession, on: date) -> TickResult:
    """Record the dates that took effect after the last day ticked, through *on*."""
    state = session.execute(
        select(FeedState).where(FeedState.name == "feed").with_for_update()
    ).scalar_one()
    since = state.ticked_through
    if on <= since:
        return TickResult(since, on, 0)
    entries = changes.record_took_effect(session, since, on, utcnow())
    state.ticked_through = on
    session.flush()
    return TickResult(since, on, entries)

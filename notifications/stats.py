"""The outbox's health in figures: how many mails wait, failed or were sent, and the oldest
that waits (a mail that is ``queued`` or ``sending``) - what the staff's overview shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from notifications.models import STATUSES, OutboxMessage
from sorregistry.database import DbSession

__all__ = ["WAITING", "OutboxHealth", "outbox_health"]

WAITING = ("queued", "sending")


@dataclass(frozen=True, slots=True)
class OutboxHealth:
    by_status: dict[str, int]
    oldest_waiting_at: datetime | None
    oldest_waiting_seconds: int | None

    @property
    def waiting(self) -> int:
        return sum(self.by_status[status] for status in WAITING)

    @property
    def failed(self) -> int:
        return self.by_status["failed"]


def outbox_health(session: DbSession, now: datetime) -> OutboxHealth:
    """The outbox's mails by status and the age (at *now*) of the oldest waiting one."""
    counts = dict.fromkeys(STATUSES, 0)
    query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    for status, count in session.execute(query):
        counts[status] = count
    oldest = session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status.in_(WAITING)))
    seconds = max(0, int((now - oldest).total_seconds())) if oldest is not None else None
    return OutboxHealth(counts, oldest, seconds)

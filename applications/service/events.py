"""The application's history: every step is an event; nothing is deleted."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from applications.models import Application, ApplicationEvent
from applications.service.actor import Actor
from sorregistry.models import utcnow


def record_event(
    session: Session,
    application: Application,
    actor: Actor,
    action: str,
    to_status: str,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ApplicationEvent:
    """Record the step and move the application to *to_status*."""
    event = ApplicationEvent(
        application=application,
        at=utcnow(),
        actor=actor.name,
        action=action,
        from_status=application.status if application.id is not None else None,
        to_status=to_status,
        version=application.version,
        reason=reason,
        details=details,
    )
    session.add(event)
    application.status = to_status
    application.updated_at = event.at
    return event


def plain(value: object) -> object:
    """A value as an event's details (JSON) hold it: dates as ISO text."""
    return value.isoformat() if isinstance(value, date) else value

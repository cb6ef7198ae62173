"""The application's history: every step is an event; nothing is deleted.

The steps that decide or move an application (submitted, information requested,
rejected, withdrawn, approved) go to the audit log as well (:mod:`sorregistry.audit`), in
the same transaction: staff read who did what there beside logins and client changes.
Drafts and their edits stay in the application's own history only."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from applications.models import Application, ApplicationEvent
from applications.service.actor import Actor
from sorregistry import audit
from sorregistry.models import utcnow

# The application's actions that are audit events, by their audit name.
AUDITED = {
    "submitted": "application_submitted",
    "info_requested": "information_requested",
    "rejected": "application_rejected",
    "withdrawn": "application_withdrawn",
    "approved": "application_approved",
}


def audit_actor(actor: Actor) -> audit.Actor:
    """The audit log's actor: an API client (positive id), a person (a negative id is the
    person's user id, see ``applications.views.actor_for``) or the system (the mail
    intake)."""
    if actor.client_id is None:
        return audit.Actor("system", None, actor.name)
    if actor.client_id < 0:
        return audit.Actor("user", str(-actor.client_id), actor.name)
    return audit.Actor("client", str(actor.client_id), actor.name)


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
    if action in AUDITED:
        session.flush()  # the audit event names the application by its reference (its id)
        audit.record(session, AUDITED[action], audit_actor(actor),
                     target=f"application {application.reference}",
                     municipality_code=application.municipality_code,
                     details={"from": event.from_status, "to": to_status,
                              **({"reason": reason[:500]} if reason else {})})
    application.status = to_status
    application.updated_at = event.at
    return event


def plain(value: object) -> object:
    """A value as an event's details (JSON) hold it: dates as ISO text."""
    return value.isoformat() if isinstance(value, date) else value

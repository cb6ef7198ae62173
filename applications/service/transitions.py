"""The workflow's steps short of approval: submit, withdraw, request information, reject.

Each checks who acts and whether the status allows the step, records the event,
queues the mail the step causes (in the same transaction), and flushes.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from applications.models import DECIDED_STATUSES, Application
from applications.service.access import check_owner, check_reviewer, get_application
from applications.service.actor import Actor
from applications.service.cleaning import clean_reason
from applications.service.errors import InvalidTransition, NotValid
from applications.service.events import record_event
from applications.service.notify import notify_decision, notify_received
from applications.service.validation import validate_application
from sorregistry.models import utcnow


def submit_application(session: Session, actor: Actor, application_id: int) -> Application:
    """Draft (or info_requested) → submitted, when it validates; version counts submissions."""
    application = get_application(session, actor, application_id, for_update=True)
    check_owner(actor, application, "submit")
    if application.status not in ("draft", "info_requested"):
        raise InvalidTransition(f"an application that is {application.status} "
                                "cannot be submitted")
    validation = validate_application(session, application)
    if not validation.ok:
        raise NotValid(validation)
    application.version += 1
    application.submitted_at = utcnow()
    record_event(session, application, actor, "submitted", "submitted",
                 details={"warnings": [w.code for w in validation.warnings]}
                 if validation.warnings else None)
    notify_received(session, application)
    session.flush()
    return application


def withdraw_application(
    session: Session, actor: Actor, application_id: int, reason: str | None = None
) -> Application:
    """The municipality withdraws its application, before a decision."""
    application = get_application(session, actor, application_id, for_update=True)
    check_owner(actor, application, "withdraw")
    if application.status in DECIDED_STATUSES:
        raise InvalidTransition(f"an application that is {application.status} "
                                "cannot be withdrawn")
    record_event(session, application, actor, "withdrawn", "withdrawn",
                 reason=clean_reason(reason, required=False))
    application.decided_at = utcnow()
    session.flush()
    return application


def request_information(
    session: Session, actor: Actor, application_id: int, reason: str
) -> Application:
    """Submitted → info_requested: send it back to the municipality with a question."""
    application = get_application(session, actor, application_id, for_update=True)
    check_reviewer(actor, application, "request information on")
    if application.status != "submitted":
        raise InvalidTransition(f"information can be requested on a submitted application, "
                                f"not one that is {application.status}")
    text = clean_reason(reason, required=True)
    record_event(session, application, actor, "info_requested", "info_requested", reason=text)
    notify_decision(session, application, "information_requested", text)
    session.flush()
    return application


def reject_application(
    session: Session, actor: Actor, application_id: int, reason: str
) -> Application:
    """Submitted (or info_requested) → rejected, with the reason sent to the municipality."""
    application = get_application(session, actor, application_id, for_update=True)
    check_reviewer(actor, application, "reject")
    if application.status not in ("submitted", "info_requested"):
        raise InvalidTransition(f"an application that is {application.status} "
                                "cannot be rejected")
    text = clean_reason(reason, required=True)
    record_event(session, application, actor, "rejected", "rejected", reason=text)
    application.decided_at = utcnow()
    notify_decision(session, application, "application_rejected", text)
    session.flush()
    return application

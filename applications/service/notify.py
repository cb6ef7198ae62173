"""The mails the workflow causes, composed here and queued in the causing transaction.

The outbox (:func:`notifications.service.enqueue`) renders and sends them; it is
told what to send and knows nothing of applications.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from applications.models import Application
from hierarchy.codes import municipalities
from hierarchy.models import Organisation
from notifications import service as notifications


def municipality_name(code: str) -> str:
    """How a mail names the municipality: "Aarhus Kommune" (or "kommune 0751")."""
    name = municipalities().get(code)
    return f"{name} Kommune" if name else f"kommune {code}"


def _display_name(session: Session, application: Application) -> str:
    """The name a person recognises: the one applied for, or the changed unit's."""
    if application.institution_name:
        return application.institution_name
    if application.target_sor_code:
        target = session.get(Organisation, application.target_sor_code)
        if target is not None:
            return target.name
    return "(uden navn)"


def notify_received(session: Session, application: Application) -> None:
    """Receipt to the municipality contact, in the submission's transaction."""
    if not application.contact_email:
        return
    notifications.enqueue(
        session,
        kind="application_received",
        to=application.contact_email,
        context={
            "reference": application.reference,
            "institution_name": _display_name(session, application),
            "application_kind": application.kind,
            "municipality_name": municipality_name(application.municipality_code),
            "submitted_at": application.submitted_at,
        },
        application_id=application.id,
    )


def notify_decision(session: Session, application: Application, kind: str,
                    reason: str | None) -> None:
    """Rejection or request for information, with the reason, to the municipality contact."""
    if not application.contact_email:
        return
    notifications.enqueue(
        session,
        kind=kind,
        to=application.contact_email,
        context={
            "reference": application.reference,
            "institution_name": _display_name(session, application),
            "reason": reason,
            "municipality_name": municipality_name(application.municipality_code),
        },
        application_id=application.id,
    )


def notify_approved(session: Session, application: Application,
                    details: dict[str, Any]) -> None:
    """The SOR code to the institution and to the municipality: one mail each."""
    recipients: list[tuple[str, str]] = []
    if application.kind == "new":
        institution_email = application.email
    else:
        target = session.get(Organisation, application.sor_code)
        institution_email = application.email or (
            (target.effective or {}).get("email") if target is not None else None
        )
    if institution_email:
        recipients.append(("institution", institution_email))
    if application.contact_email and application.contact_email != institution_email:
        recipients.append(("municipality", application.contact_email))
    name = _display_name(session, application)
    for role, address in recipients:
        if application.kind == "new":
            kind = "sor_code_issued"
            context: dict[str, Any] = {
                "address": application.address,
                "municipality_name": municipality_name(application.municipality_code),
            }
        else:
            kind = "change_approved"
            context = {"changes": details.get("changes", [])}
        notifications.enqueue(
            session,
            kind=kind,
            to=address,
            context={
                "reference": application.reference,
                "sor_code": application.sor_code,
                "institution_name": name,
                "recipient_role": role,
                **context,
            },
            application_id=application.id,
        )

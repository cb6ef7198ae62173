"""The mail entry: an emailed application from a registered municipality contact.

The mail intake (:mod:`applications.mail_service`) decides who sent what and
calls :func:`create_from_mail` once per mail; everything else is the workflow's.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from applications.models import Application
from applications.service.actor import Actor
from applications.service.cleaning import clean_input
from applications.service.drafts import add_attachment, new_application
from applications.service.errors import InvalidInput
from applications.service.events import record_event
from applications.service.notify import notify_received
from applications.service.validation import validate_application
from hierarchy import identifiers as ids
from sorregistry.models import utcnow


def create_from_mail(
    session: Session,
    *,
    municipality_code: str,
    sender: str,
    fields: Mapping[str, object],
    attachments: list[tuple[str, str, bytes]],
    mail_reference: str,
) -> Application:
    """An emailed application from a registered municipality contact.

    It is submitted when it validates; otherwise it stays a draft for the
    municipality to complete, and the receipt is not sent until it is
    submitted. Input that can never be right raises :class:`InvalidInput`,
    which the mail intake turns into a triage item.
    """
    data = dict(fields)
    data.setdefault("contact_email", sender)
    actor = Actor(name=f"mail:{sender}", roles=("mail",))
    remarks = data.get("remarks")
    note = f"Modtaget pr. mail ({mail_reference})"
    data["remarks"] = f"{remarks}\n\n{note}" if remarks else note
    values = clean_input({k: v for k, v in data.items() if k != "municipality_code"})
    try:
        municipality_code = ids.validate_municipality_code(municipality_code)
    except ids.IdentifierError as exc:
        raise InvalidInput({"municipality_code": str(exc)}) from None
    application = new_application(session, actor, values, municipality_code, "mail")
    for filename, content_type, payload in attachments:
        add_attachment(session, application, filename, content_type, payload)
    session.flush()
    if validate_application(session, application).ok:
        application.version += 1
        application.submitted_at = utcnow()
        record_event(session, application, actor, "submitted", "submitted")
        notify_received(session, application)
        session.flush()
    return application

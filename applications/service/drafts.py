"""Making and editing a draft, and keeping the files that came with it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from sqlalchemy.orm import Session

from applications.mail_headers import clean_text, safe_filename
from applications.models import SOURCES, Application, ApplicationAttachment
from applications.service.access import check_owner, get_application
from applications.service.actor import Actor
from applications.service.cleaning import clean_input, municipality_for
from applications.service.errors import Forbidden, InvalidInput, InvalidTransition
from applications.service.events import plain, record_event
from hierarchy.text import fold
from sorregistry.models import utcnow

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


def create_application(
    session: Session,
    actor: Actor,
    data: Mapping[str, object],
    *,
    source: str = "api",
) -> Application:
    """A new draft for the actor's municipality (staff name the municipality)."""
    if not (actor.is_municipality or actor.is_staff):
        raise Forbidden("only a municipality (or SDS staff) applies for SOR codes")
    values = clean_input({k: v for k, v in data.items() if k != "municipality_code"})
    return new_application(session, actor, values, municipality_for(actor, data), source)


def new_application(
    session: Session, actor: Actor, values: dict[str, object], municipality_code: str,
    source: str,
) -> Application:
    """A draft from cleaned *values*, with its "created" event; flushed, so it has its id."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    values["kind"] = values.get("kind") or "new"
    now = utcnow()
    name = values.get("institution_name")
    application = Application(
        **values,
        status="draft",
        version=0,
        source=source,
        municipality_code=municipality_code,
        municipality_cvr=actor.cvr if actor.is_municipality else None,
        name_search=fold(name if isinstance(name, str) else None),
        created_by=actor.name,
        created_by_client=actor.client_id,
        created_at=now,
        updated_at=now,
    )
    session.add(application)
    session.flush()
    event = record_event(session, application, actor, "created", "draft")
    event.from_status = None
    session.flush()
    return application


def update_application(
    session: Session, actor: Actor, application_id: int, data: Mapping[str, object]
) -> Application:
    """Edit a draft (or an application sent back for more information)."""
    application = get_application(session, actor, application_id, for_update=True)
    check_owner(actor, application, "edit")
    if application.status not in ("draft", "info_requested"):
        raise InvalidTransition(
            f"an application that is {application.status} cannot be edited"
        )
    if "municipality_code" in data and data["municipality_code"] != application.municipality_code:
        raise InvalidInput({"municipality_code": "cannot be changed"})
    values = clean_input({k: v for k, v in data.items() if k != "municipality_code"},
                         partial=True)
    changed = {
        name: [plain(getattr(application, name)), plain(value)]
        for name, value in values.items()
        if getattr(application, name) != value
    }
    if not changed:
        return application
    for name, value in values.items():
        setattr(application, name, value)
    application.name_search = fold(application.institution_name)
    record_event(session, application, actor, "edited", application.status, details=changed)
    session.flush()
    return application


def add_attachment(
    session: Session, application: Application, filename: str, content_type: str, data: bytes
) -> ApplicationAttachment:
    """Keep a file that came with the application (an emailed one's attachments)."""
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput({"attachments": f"{filename} is larger than "
                            f"{MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB"})
    attachment = ApplicationAttachment(
        application=application,
        filename=safe_filename(filename),
        content_type=clean_text(content_type or "application/octet-stream")[:255],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
    session.add(attachment)
    return attachment

"""Reading applications, and who may see one and who may act on it.

A municipality sees its own applications, SDS staff all; another municipality's
application is "not found" (no hint that it exists). Only the applying
municipality edits, submits and withdraws; only staff decide, and never on what
they sent in themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, func, select

from applications.models import REFERENCE_PREFIX, STATUSES, Application
from applications.service.actor import Actor
from applications.service.errors import ApplicationNotFound, Forbidden, InvalidInput
from sorregistry.database import DbSession


def parse_reference(value: str) -> int | None:
    """The id in ``ANS-000042`` (or a bare ``42``); None when it is neither."""
    value = value.strip().upper()
    if value.startswith(REFERENCE_PREFIX):
        value = value[len(REFERENCE_PREFIX):]
    return int(value) if value.isdigit() and len(value) <= 18 else None


def _may_see(actor: Actor, application: Application) -> bool:
    if actor.is_staff:
        return True
    return actor.is_municipality and actor.municipality_code == application.municipality_code


def get_application(
    session: DbSession, actor: Actor, application_id: int, *, for_update: bool = False
) -> Application:
    """The application, if the actor may see it; another municipality's is "not found"."""
    query = select(Application).where(Application.id == application_id)
    if for_update:
        query = query.with_for_update()
    application = session.execute(query).scalar_one_or_none()
    if application is None or not _may_see(actor, application):
        raise ApplicationNotFound(f"no application {REFERENCE_PREFIX}{application_id:06d}")
    return application


def list_applications(
    session: DbSession,
    actor: Actor,
    *,
    status: Iterable[str] = (),
    municipality_code: str | None = None,
    limit: int = 50,
    after_id: int | None = None,
    submitted_before: datetime | None = None,
) -> tuple[list[Application], int]:
    """Applications the actor may see, newest first, and how many there are in all.

    *submitted_before* keeps those last submitted before that moment (the review
    queue's "older than N days").
    """
    statuses = list(status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise InvalidInput({"status": f"unknown status {', '.join(unknown)}; "
                            f"one of {', '.join(STATUSES)}"})
    conditions: list[ColumnElement[bool]] = []
    if not actor.is_staff:
        if not actor.is_municipality:
            raise Forbidden("only municipalities and SDS staff see applications")
        conditions.append(Application.municipality_code == actor.municipality_code)
    elif municipality_code:
        conditions.append(Application.municipality_code == municipality_code)
    if statuses:
        conditions.append(Application.status.in_(statuses))
    if submitted_before is not None:
        conditions.append(Application.submitted_at < submitted_before)
    total = session.execute(
        select(func.count()).select_from(Application).where(*conditions)
    ).scalar_one()
    query = select(Application).where(*conditions)
    if after_id is not None:
        query = query.where(Application.id < after_id)
    items = session.execute(query.order_by(Application.id.desc()).limit(limit)).scalars().all()
    return list(items), total


def check_owner(actor: Actor, application: Application, what: str) -> None:
    """Only the applying municipality edits, submits and withdraws its application."""
    if not (actor.is_municipality and actor.municipality_code == application.municipality_code):
        raise Forbidden(f"only the applying municipality may {what} an application")


def check_reviewer(actor: Actor, application: Application, what: str) -> None:
    """Only SDS staff decide, and not on their own municipality's or their own application."""
    if not actor.is_staff:
        raise Forbidden(f"only SDS staff may {what} an application")
    if actor.municipality_code and actor.municipality_code == application.municipality_code:
        raise Forbidden(f"a municipality may not {what} its own application")
    if actor.client_id is not None and actor.client_id == application.created_by_client:
        raise Forbidden(f"whoever sent an application may not {what} it")

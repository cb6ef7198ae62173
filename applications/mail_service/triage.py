"""Triage: the mails a person must look at, and closing them with a note."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from applications.mail_message import Attachment, parse_mail
from applications.mail_models import IncomingMail
from sorregistry.database import DbSession
from sorregistry.errors import DomainError
from sorregistry.models import utcnow


class MailNotFound(DomainError, LookupError):
    """No mail with that id in the ledger."""

    status = 404


class TriageError(DomainError, ValueError):
    """A triage item cannot be changed as asked (not one, resolved already); the message
    says why."""

    status = 409


def get_mail(session: DbSession, mail_id: int) -> IncomingMail:
    """The mail with this ledger id; :class:`MailNotFound` if there is none."""
    mail = session.get(IncomingMail, mail_id) if 1 <= mail_id <= 2**53 else None
    if mail is None:
        raise MailNotFound(f"no mail {mail_id} in the ledger")
    return mail


def open_triage(
    session: DbSession, *, reason: str | None = None, limit: int | None = None
) -> list[IncomingMail]:
    """Open triage items, oldest first (optionally of one reason)."""
    query = select(IncomingMail).where(IncomingMail.triage_status == "open")
    if reason is not None:
        query = query.where(IncomingMail.triage_reason == reason)
    query = query.order_by(IncomingMail.processed_at, IncomingMail.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def list_triage(
    session: DbSession,
    *,
    status: str | None = "open",
    reason: str | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> tuple[list[IncomingMail], int]:
    """Triage items for staff, oldest first, and how many there are in all."""
    conditions = [IncomingMail.outcome == "triage"]
    if status is not None:
        conditions.append(IncomingMail.triage_status == status)
    if reason is not None:
        conditions.append(IncomingMail.triage_reason == reason)
    total = session.execute(
        select(func.count()).select_from(IncomingMail).where(*conditions)
    ).scalar_one()
    query = select(IncomingMail).where(*conditions)
    if after_id is not None:
        query = query.where(IncomingMail.id > after_id)
    items = session.execute(query.order_by(IncomingMail.id).limit(limit)).scalars()
    return list(items), total


def resolve_triage(
    session: Session,
    mail_id: int,
    *,
    resolved_by: str,
    note: str,
    application_id: int | None = None,
) -> IncomingMail:
    """Close an open triage item, saying who did and what was done.

    *application_id* links an application staff made by hand from the mail.
    """
    mail = session.get(IncomingMail, mail_id)
    if mail is None or mail.outcome != "triage":
        raise TriageError(f"there is no triage item {mail_id}")
    if mail.triage_status != "open":
        resolved_at = f"{mail.resolved_at:%Y-%m-%d %H:%M}" if mail.resolved_at else "?"
        raise TriageError(
            f"triage item {mail_id} was resolved by {mail.resolved_by} at {resolved_at} UTC"
        )
    if not resolved_by.strip():
        raise TriageError("say who resolves the item")
    if not note.strip():
        raise TriageError("a resolved item needs a note saying what was done")
    mail.triage_status = "resolved"
    mail.resolved_by = resolved_by.strip()
    mail.resolved_at = utcnow()
    mail.resolution_note = note.strip()
    if application_id is not None:
        mail.application_id = application_id
    session.flush()
    return mail


def mail_attachments(mail: IncomingMail) -> list[Attachment]:
    """The attachments of a recorded mail, read from its raw bytes (none when the mail
    cannot be parsed)."""
    return parse_mail(mail.raw).attachments

"""The mail intake's services: contacts, recording a mail, triage.

Each function takes the session and flushes; the caller commits. One mail is
one unit of work: :func:`record_mail` writes its ledger row and makes it an
application or a triage item, and the caller commits the two together.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from applications.mail_models import IncomingMail, MunicipalityContact
from applications.mail_template import (
    Attachment,
    ParsedMail,
    message_key,
    parse_mail,
    read_headers,
    sender_address,
)
from applications.models import Application
from applications.service import create_from_mail
from hierarchy import identifiers as ids
from notifications.service import enqueue
from sorregistry.database import DbSession
from sorregistry.errors import DomainError
from sorregistry.models import utcnow

__all__ = [
    "ContactError",
    "MailNotFound",
    "TriageError",
    "add_contact",
    "contact_for_sender",
    "get_mail",
    "is_processed",
    "last_uid",
    "list_triage",
    "mail_attachments",
    "open_triage",
    "record_mail",
    "resolve_triage",
]


class ContactError(DomainError, ValueError):
    """A contact cannot be added as asked; the message says why."""

    status = 422


class MailNotFound(DomainError, LookupError):
    """No mail with that id in the ledger."""

    status = 404


class TriageError(DomainError, ValueError):
    """A triage item cannot be changed as asked (not one, resolved already); the message
    says why."""

    status = 409


# -- contacts ----------------------------------------------------------------------------


def _normalise_email(email: str) -> str:
    text = email.strip().lower()
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError):
        raise ContactError(f"{email!r} is not an email address") from None
    domain = address.domain
    if not address.username or "." not in domain or domain.startswith(".") or " " in text:
        raise ContactError(f"{email!r} is not an email address")
    return address.addr_spec


def add_contact(
    session: DbSession, municipality_code: str, email: str, *, name: str | None = None
) -> MunicipalityContact:
    """Register *email* as an address *municipality_code* may send applications from."""

    try:
        code = ids.validate_kommunekode(municipality_code)
    except ids.IdentifierError as exc:
        raise ContactError(str(exc)) from None
    address = _normalise_email(email)
    existing = session.execute(
        select(MunicipalityContact).where(MunicipalityContact.email == address)
    ).scalar_one_or_none()
    if existing is not None:
        raise ContactError(
            f"{address} is already a contact of municipality {existing.municipality_code}"
        )
    contact = MunicipalityContact(
        municipality_code=code, email=address, name=(name or "").strip() or None
    )
    session.add(contact)
    session.flush()
    return contact


def contact_for_sender(session: DbSession, sender: str | None) -> MunicipalityContact | None:
    """The registered contact with this From address (compared lower-cased), if any."""
    if not sender:
        return None
    return session.execute(
        select(MunicipalityContact).where(MunicipalityContact.email == sender.strip().lower())
    ).scalar_one_or_none()


# -- the ledger --------------------------------------------------------------------------


def is_processed(session: DbSession, message_id: str) -> bool:
    """True when the ledger holds the message with this key (Message-ID or digest)."""
    found = session.execute(
        select(IncomingMail.id).where(IncomingMail.message_id == message_id)
    ).first()
    return found is not None


def last_uid(session: DbSession, mailbox: str, uidvalidity: int) -> int | None:
    """The highest UID processed in *mailbox* under *uidvalidity*; None if none was."""
    return session.execute(
        select(func.max(IncomingMail.uid)).where(
            IncomingMail.mailbox == mailbox, IncomingMail.uidvalidity == uidvalidity
        )
    ).scalar_one()


def _create_application(
    session: Session,
    *,
    municipality_code: str,
    sender: str,
    fields: dict[str, Any],
    attachments: list[tuple[str, str, bytes]],
    mail_reference: str,
) -> Application:
    """The one call from the mail intake into the applications service.

    Everything the intake decides is in the arguments; the service validates,
    creates the application (source 'mail'), keeps the attachments, submits it
    if valid, flushes, and returns it (``.id``, ``.reference``). The tests spy
    on this function to see exactly what was passed.
    """

    return create_from_mail(
        session,
        municipality_code=municipality_code,
        sender=sender,
        fields=fields,
        attachments=attachments,
        mail_reference=mail_reference,
    )


def _attachment_list(attachments: list[Attachment]) -> list[dict[str, Any]]:
    return [
        {"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
        for a in attachments
    ]


def record_mail(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    received_at: datetime | None,
    max_size: int,
) -> IncomingMail:
    """Record one raw message in the ledger and make it an application or a triage item.

    - larger than *max_size*: not parsed, triage ``oversized``;
    - From not a registered contact: triage ``unknown_sender`` (fields kept for staff);
    - not following the template: triage ``unreadable`` (``problems`` says why);
    - else an application, through :func:`_create_application`; should that fail,
      its changes are undone and the mail is triage ``application_error``.

    The raw bytes are kept in every case. Flushes; the caller commits.
    """
    if len(raw) > max_size:
        return _record_oversized(
            session, raw, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid,
            received_at=received_at, max_size=max_size,
        )
    parsed = parse_mail(raw)
    contact = contact_for_sender(session, parsed.sender)
    fields = dict(parsed.fields)
    if contact is not None:
        # Replies go to the sender unless the template names someone else.
        fields.setdefault("contact_email", parsed.sender)
    mail = IncomingMail(
        message_id=parsed.message_id,
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        sender=parsed.sender,
        subject=parsed.subject[:2000],
        received_at=received_at,
        size=len(raw),
        raw=raw,
        municipality_code=contact.municipality_code if contact else None,
        fields=fields,
        problems=parsed.problems or None,
        attachments=_attachment_list(parsed.attachments),
        outcome="triage",
        triage_status="open",
    )
    session.add(mail)
    if contact is None:
        mail.triage_reason = "unknown_sender"
        mail.problems = [
            f"the sender {parsed.sender or '(none)'} is not a registered municipality contact",
            *parsed.problems,
        ]
    elif not parsed.readable:
        mail.triage_reason = "unreadable"
        _notify_sender(session, mail, "Mailen følger ikke skabelonen for ansøgninger om "
                       "SOR-koder: mindst »Ansøgning:« og »Institutionens navn:« skal "
                       "stå i den. En medarbejder hos SDS ser på den.")
    else:
        session.flush()
        _make_application(session, mail, parsed, contact.municipality_code, fields)
        if mail.triage_reason == "application_error":
            _notify_sender(session, mail, "Nogle af oplysningerne kunne ikke bruges: "
                           f"{mail.problems[0] if mail.problems else ''}. "
                           "En medarbejder hos SDS ser på ansøgningen.")
    session.flush()
    return mail


def _notify_sender(session: Session, mail: IncomingMail, reason: str) -> None:
    """Tell a registered contact that their mail could not be read, in this transaction.

    Only registered contacts are told: answering unknown senders would send mail
    to forged addresses (backscatter).
    """

    if not mail.sender or mail.municipality_code is None:
        return
    session.flush()
    enqueue(
        session,
        kind="mail_unreadable",
        to=mail.sender,
        context={
            "original_subject": mail.subject or "(intet emne)",
            "received_at": mail.received_at or mail.processed_at or utcnow(),
            "reason": reason,
        },
        reference=f"MAIL-{mail.id}",
    )


def _make_application(
    session: Session,
    mail: IncomingMail,
    parsed: ParsedMail,
    municipality_code: str,
    fields: dict[str, Any],
) -> None:
    assert parsed.sender is not None  # a contact was found for it
    try:
        # A savepoint: a failing service leaves nothing half-made behind, and the
        # mail is still recorded (as triage) in the same transaction.
        with session.begin_nested():
            application = _create_application(
                session,
                municipality_code=municipality_code,
                sender=parsed.sender,
                fields=fields,
                attachments=[(a.filename, a.content_type, a.data) for a in parsed.attachments],
                mail_reference=mail.message_id,
            )
    except (OperationalError, InterfaceError, ImportError):
        # The database is failing, or the applications service is not installed:
        # the same for every mail, so stop and record nothing (the mail stays unseen).
        raise
    except Exception as exc:  # noqa: BLE001 - one bad mail must not block the mailbox
        mail.triage_reason = "application_error"
        mail.problems = [f"the applications service failed: {type(exc).__name__}: {exc}"]
        return
    mail.outcome = "application"
    mail.triage_status = None
    mail.application_id = application.id
    mail.application_reference = application.reference


def _record_oversized(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    received_at: datetime | None,
    max_size: int,
) -> IncomingMail:
    headers = read_headers(raw)
    sender = sender_address(headers)
    contact = contact_for_sender(session, sender)
    mail = IncomingMail(
        message_id=message_key(headers.get("Message-ID"), raw),
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        sender=sender,
        subject=str(headers.get("Subject", "") or "")[:2000],
        received_at=received_at,
        size=len(raw),
        raw=raw,
        municipality_code=contact.municipality_code if contact else None,
        outcome="triage",
        triage_reason="oversized",
        triage_status="open",
        problems=[
            f"the message is {len(raw):,} bytes; messages over {max_size:,} bytes "
            "are not read automatically"
        ],
    )
    session.add(mail)
    _notify_sender(session, mail, f"Mailen er for stor ({len(raw) // 1024:,} kB) til at blive "
                   "læst automatisk. En medarbejder hos SDS ser på den.")
    session.flush()
    return mail


# -- triage ------------------------------------------------------------------------------


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
        raise TriageError(
            f"triage item {mail_id} was resolved by {mail.resolved_by} at "
            f"{mail.resolved_at:%Y-%m-%d %H:%M} UTC"
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
    """The attachments of a recorded mail, read from its raw bytes."""
    return parse_mail(mail.raw).attachments

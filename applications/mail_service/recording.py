"""Recording one mail: its ledger row, and what became of it.

Whatever a mail contains, it ends in the ledger with its raw bytes: as an application,
or as a triage item with the reason (``mail_models.TRIAGE_REASONS``). The decisions,
in order:

1. the same Message-ID as another mail with other content: ``message_id_reused``
   (kept under the digest of its bytes; the first mail stays as it was);
2. the From address is no registered contact: ``unknown_sender``;
3. the sender is not authenticated (:mod:`applications.mail_trust`): ``unauthenticated``;
4. more than the limit of mails from this sender in the hour before: ``rate_limited``;
5. larger than the size limit: ``oversized`` (not parsed);
6. a body the MIME parser gives up on: ``unparseable``;
7. not following the template: ``unreadable``;
8. else an application; should the service refuse it, ``application_error``.

Only from 5 on is the contact told (a notice to the registered address): a mail that may
be forged, or one of a flood, is answered by no one. If anything else fails while a mail
is recorded, the intake rolls it back and records it with :func:`record_failure`
(``failed``).

Every header value is cleaned before it is stored (:func:`mail_headers.clean_text`).
Each function takes the session and flushes; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from applications.mail_headers import (
    clean_text,
    digest_key,
    header_text,
    header_values,
    message_key,
    read_headers,
    sender_address,
)
from applications.mail_message import ParsedMail, parse_mail
from applications.mail_models import IncomingMail, MunicipalityContact
from applications.mail_service.contacts import contact_for_sender, reply_address
from applications.mail_service.ledger import (
    AlreadyRecorded,
    find_recorded,
    ledger_key,
    mails_in_the_hour_before,
)
from applications.mail_trust import SenderCheck, SenderPolicy
from applications.models import Application
from applications.service import create_from_mail
from notifications.service import enqueue
from sorregistry.models import utcnow

MAX_SUBJECT = 2000
MAX_PROBLEM = 1000

_TOLD = {
    "oversized": "Mailen er for stor ({size:,} kB) til at blive læst automatisk. "
                 "En medarbejder hos SDS ser på den.",
    "unparseable": "Mailen er bygget op på en måde, som ikke kan læses automatisk. "
                   "En medarbejder hos SDS ser på den.",
    "unreadable": "Mailen følger ikke skabelonen for ansøgninger om SOR-koder: mindst "
                  "»Ansøgning:« og »Institutionens navn:« skal stå i den. En medarbejder "
                  "hos SDS ser på den.",
    "application_error": "Nogle af oplysningerne kunne ikke bruges: {problem}. "
                         "En medarbejder hos SDS ser på ansøgningen.",
}


@dataclass(frozen=True, slots=True)
class _Place:
    mailbox: str
    uidvalidity: int
    uid: int
    received_at: datetime | None


def _problem(text: str) -> str:
    return clean_text(text)[:MAX_PROBLEM]


def _new_row(raw: bytes, key: str, parsed: ParsedMail, place: _Place,
             contact: MunicipalityContact | None) -> IncomingMail:
    return IncomingMail(
        message_id=key,
        mailbox=place.mailbox,
        uidvalidity=place.uidvalidity,
        uid=place.uid,
        sender=parsed.sender,
        subject=parsed.subject[:MAX_SUBJECT],
        received_at=place.received_at,
        size=len(raw),
        raw=raw,
        municipality_code=contact.municipality_code if contact else None,
        fields=parsed.fields or None,
        problems=[_problem(p) for p in parsed.problems] or None,
        attachments=[
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
            for a in parsed.attachments
        ] or None,
        outcome="triage",
        triage_status="open",
    )


def record_mail(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    received_at: datetime | None,
    max_size: int,
    senders: SenderPolicy | None = None,
    max_per_sender_hour: int | None = None,
) -> IncomingMail:
    """Record one raw message in the ledger and make it an application or a triage item.

    See the module for the decisions. *senders* and *max_per_sender_hour* default to the
    app's settings (``SOR_MAIL_SENDER_AUTH``, ``SOR_MAIL_MAX_PER_SENDER_HOUR``). Raises
    :class:`AlreadyRecorded` when the ledger holds this very message. Flushes; the
    caller commits.
    """
    config = current_app.config
    senders = senders or SenderPolicy.from_config(config)
    limit = (int(config["MAIL_MAX_PER_SENDER_HOUR"]) if max_per_sender_hour is None
             else max_per_sender_hour)
    place = _Place(mailbox, uidvalidity, uid, received_at)
    oversized = len(raw) > max_size
    parsed = parse_mail(raw, body=not oversized)
    key, holder = ledger_key(session, parsed.message_id, raw)
    contact = contact_for_sender(session, parsed.sender)
    check = senders.check(raw, parsed.headers, parsed.sender) if contact else None
    sent = (mails_in_the_hour_before(session, contact.email, received_at or utcnow())
            if contact and check and check.authenticated else 0)
    mail = _new_row(raw, key, parsed, place, contact)
    mail.authentication = clean_text(check.how)[:500] if check else None
    session.add(mail)
    if holder is not None:
        _triage(mail, "message_id_reused",
                f"mail {holder.id} in the ledger has the Message-ID {parsed.message_id} "
                "with other content")
    elif contact is None:
        _triage(mail, "unknown_sender", f"the sender {parsed.sender or '(none)'} is not a "
                "registered municipality contact")
    elif not _trusted(check):
        _triage(mail, "unauthenticated", f"the sender {contact.email} is not authenticated: "
                f"{check.how if check else ''}")
    elif sent >= limit:
        _triage(mail, "rate_limited", f"{sent} mails from {contact.email} in the hour before "
                f"this one; at most {limit} an hour become applications")
    elif oversized:
        _triage(mail, "oversized", f"the message is {len(raw):,} bytes; messages over "
                f"{max_size:,} bytes are not read automatically")
        _tell(session, mail, contact, "oversized", size=len(raw) // 1024)
    elif parsed.error is not None:
        _triage(mail, "unparseable", *parsed.problems)
        _tell(session, mail, contact, "unparseable")
    elif not parsed.readable:
        _triage(mail, "unreadable", *parsed.problems)
        _tell(session, mail, contact, "unreadable")
    else:
        session.flush()
        _make_application(session, mail, parsed, contact)
        if mail.triage_reason == "application_error":
            _tell(session, mail, contact, "application_error",
                  problem=mail.problems[0] if mail.problems else "")
    session.flush()
    return mail


def _trusted(check: SenderCheck | None) -> bool:
    return check is not None and check.authenticated


def _triage(mail: IncomingMail, reason: str, *problems: str) -> None:
    """Make *mail* a triage item for *reason*; *problems* first, then what the parser found."""
    mail.triage_reason = reason
    found = [_problem(problem) for problem in problems]
    mail.problems = list(dict.fromkeys(found + (mail.problems or []))) or None


def _tell(session: Session, mail: IncomingMail, contact: MunicipalityContact, what: str,
          **values: Any) -> None:
    """Tell the registered contact that their mail needs a person, in this transaction.

    Only a registered address is written to, and only for a mail whose sender was
    authenticated: answering anyone else would send mail to forged addresses
    (backscatter).
    """
    session.flush()
    enqueue(
        session,
        kind="mail_unreadable",
        to=contact.email,
        context={
            "original_subject": mail.subject or "(intet emne)",
            "received_at": mail.received_at or mail.processed_at or utcnow(),
            "reason": _TOLD[what].format(**values),
        },
        reference=f"MAIL-{mail.id}",
    )


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


def _make_application(session: Session, mail: IncomingMail, parsed: ParsedMail,
                      contact: MunicipalityContact) -> None:
    # Replies go to a registered address of the municipality, whatever the mail names.
    fields = {**parsed.fields,
              "contact_email": reply_address(session, contact, parsed.fields.get(
                  "contact_email"))}
    try:
        # A savepoint: a failing service leaves nothing half-made behind, and the
        # mail is still recorded (as triage) in the same transaction.
        with session.begin_nested():
            application = _create_application(
                session,
                municipality_code=contact.municipality_code,
                sender=contact.email,
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
        mail.problems = [_problem(f"the applications service failed: "
                                  f"{type(exc).__name__}: {exc}")]
        return
    mail.outcome = "application"
    mail.triage_status = None
    mail.problems = None
    mail.application_id = application.id
    mail.application_reference = application.reference


def record_failure(
    session: Session,
    raw: bytes,
    *,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    received_at: datetime | None,
    message_id: str | None,
    error: BaseException,
) -> IncomingMail:
    """Record a mail whose handling failed with *error*: raw bytes, the error's class and
    message, triage ``failed``. As little as can be: this must not fail in turn.

    Under its Message-ID when that is free, else under the digest of its bytes; raises
    :class:`AlreadyRecorded` when even that is taken. Flushes; the caller commits (in a
    transaction of its own: the failed one was rolled back).
    """
    key = message_key(message_id, raw)
    if find_recorded(session, key) is not None:
        key = digest_key(raw)
        if find_recorded(session, key) is not None:
            raise AlreadyRecorded(key)
    sender: str | None = None
    subject = ""
    try:
        headers = read_headers(raw)
        sender = sender_address(headers)
        subject = "".join(header_text(v) for v in header_values(headers, "Subject")[:1])
    except Exception:  # noqa: BLE001 - the headers are a courtesy; the bytes are kept
        pass
    mail = IncomingMail(
        message_id=key, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, sender=sender,
        subject=subject[:MAX_SUBJECT], received_at=received_at, size=len(raw), raw=raw,
        outcome="triage", triage_status="open", triage_reason="failed",
        problems=[_problem(f"the mail could not be handled: {type(error).__name__}: "
                           f"{error}")],
    )
    session.add(mail)
    session.flush()
    return mail

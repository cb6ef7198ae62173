"""The mail intake's tables: who may send applications, and every mail ever read.

``incoming_mails`` is the ledger: one row per message the intake has processed,
with the raw RFC 822 bytes, so that nothing a municipality sent is ever lost
and no message is processed twice (its Message-ID is unique here). A row's
outcome is an application (its id in ``application_id``) or a triage item for
staff (``triage_reason``, ``triage_status``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow

OUTCOMES = ("application", "triage")
# Why a mail was not made into an application:
TRIAGE_REASONS = (
    "unreadable",  # does not follow the template (see ``problems``)
    "unknown_sender",  # the From address is not a registered municipality contact
    "oversized",  # larger than IMAP_MAX_MESSAGE_SIZE: kept raw, not parsed
    "application_error",  # the applications service failed on it (see ``problems``)
    "unauthenticated",  # from a contact's address, but the sender is not authenticated
    "rate_limited",  # more than MAIL_MAX_PER_SENDER_HOUR mails from the sender in an hour
    "message_id_reused",  # another mail in the ledger has its Message-ID, other content
    "unparseable",  # the MIME parser gave up on its body (see ``problems``)
    "failed",  # handling it raised; the error's class and message are in ``problems``
)
TRIAGE_STATUSES = ("open", "resolved")


class MunicipalityContact(Base):
    """An address a municipality sends applications from; the mail's From must be one."""

    __tablename__ = "municipality_contacts"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    municipality_code: Mapped[str] = mapped_column(String(4), index=True)
    # Lower-cased when stored; compared with the lower-cased From address.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IncomingMail(Base):
    """One message read from the intake mailbox, and what became of it."""

    __tablename__ = "incoming_mails"
    __table_args__ = (
        CheckConstraint("outcome IN ('application', 'triage')", name="outcome"),
        CheckConstraint(
            "triage_status IS NULL OR triage_status IN ('open', 'resolved')",
            name="triage_status",
        ),
        # The highest UID already read, per mailbox and UIDVALIDITY.
        Index("ix_incoming_mails_location", "mailbox", "uidvalidity", "uid"),
        # How many mails one sender sent in the last hour (the intake's rate limit).
        Index("ix_incoming_mails_sender_received", "sender", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # The Message-ID header, or "sha256:<digest of the raw bytes>" when there is none.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # Where the message was when it was processed.
    mailbox: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # The sender's municipality, when the sender is a registered contact.
    municipality_code: Mapped[str | None] = mapped_column(String(4))
    # How the sender was authenticated, or why not (applications.mail_trust), for a
    # mail from a registered contact: "dmarc=pass", "dkim=pass for kk.dk", ...
    authentication: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str] = mapped_column(String(20))
    # No foreign key: the applications table belongs to another migration.
    application_id: Mapped[int | None] = mapped_column(BigInteger)
    application_reference: Mapped[str | None] = mapped_column(String(50))
    triage_reason: Mapped[str | None] = mapped_column(String(40))
    triage_status: Mapped[str | None] = mapped_column(String(10), index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # What the template parser read, why it could not (problems), and a list of
    # the attachments (name, type, size; their bytes are in ``raw``).
    fields: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    problems: Mapped[list[str] | None] = mapped_column(JsonDocument)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDocument)

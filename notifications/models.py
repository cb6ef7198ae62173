"""The notifications tables: the outbox and its log of sending attempts.

A mail is rendered once, when the event that causes it happens, and stored
here whole (recipients, subject, bodies, Message-ID); sending only ever reads
the row. The application is referred to by its reference and id as plain
columns: the outbox outlives and does not depend on the applications' tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow

STATUSES = ("queued", "sending", "sent", "failed")
# What an attempt came to; NULL while it runs (and forever if its worker died).
OUTCOMES = ("sent", "error", "abandoned", "retried")


class OutboxMessage(Base):
    """One mail to send: fixed at enqueue time, sent at most once as far as SMTP allows."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed')", name="status"
        ),
        # The senders' query: what is due, oldest first.
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipients: Mapped[list[str]] = mapped_column(JsonDocument)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # RFC 5322 Message-ID, made at enqueue time: every resend carries the same
    # one, so a receiver can recognise a duplicate.
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    reference: Mapped[str | None] = mapped_column(String(40), index=True)
    # No foreign key: the applications' tables belong to another package.
    application_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The claim marker: who is sending it since when. A claim older than the
    # claim timeout belongs to a worker that died and may be taken over.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    attempt_log: Mapped[list[OutboxAttempt]] = relationship(
        back_populates="message",
        order_by="OutboxAttempt.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} {self.status} to {self.recipients}>"


class OutboxAttempt(Base):
    """One try at sending a mail (or a staff retry), kept for the staff's view."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(
        BigIntKey, ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(10))
    error: Mapped[str | None] = mapped_column(Text)

    message: Mapped[OutboxMessage] = relationship(back_populates="attempt_log")

"""Applications for SOR codes: what a municipality asks for, and every step taken on it.

An application is never deleted: it moves through the statuses below, and
each step is an :class:`ApplicationEvent` saying who did what, when, and why.
``version`` counts the submissions, as SEI's forms do: a form sent back for
more information and submitted again is version 2.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sorregistry.models import Base, BigIntKey, CodeString, JsonDocument, UTCDateTime, utcnow

KINDS = ("new", "change")
STATUSES = ("draft", "submitted", "info_requested", "approved", "rejected", "withdrawn")
OPEN_STATUSES = ("draft", "submitted", "info_requested")
DECIDED_STATUSES = ("approved", "rejected", "withdrawn")
SOURCES = ("api", "web", "mail")
APPLICATION_OWNERSHIPS = ("kommunal", "privat")
REFERENCE_PREFIX = "ANS-"


class Application(Base):
    """An application for a new SOR code (``new``) or for a change to one (``change``)."""

    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_municipality_status", "municipality_code", "status"),
        Index("ix_applications_status_submitted", "status", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(10))
    municipality_code: Mapped[str] = mapped_column(String(4))
    # The applying municipality's own CVR (from its client), used to find its IE.
    municipality_cvr: Mapped[str | None] = mapped_column(String(8))
    contact_email: Mapped[str | None] = mapped_column(String(254))

    institution_name: Mapped[str | None] = mapped_column(String(200))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(10), index=True)
    city: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40))
    fax: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(300))
    institution_type: Mapped[str | None] = mapped_column(String(20))
    ownership: Mapped[str | None] = mapped_column(String(10))
    owner_cvr: Mapped[str | None] = mapped_column(String(8), index=True)
    owner_name: Mapped[str | None] = mapped_column(String(200))
    ydernummer: Mapped[str | None] = mapped_column(String(9), index=True)
    gln: Mapped[str | None] = mapped_column(String(13))
    shak: Mapped[str | None] = mapped_column(String(7))
    target_sor_code: Mapped[str | None] = mapped_column(CodeString(18), index=True)
    closing_date: Mapped[date | None] = mapped_column(Date)
    # For a change that closes the unit: the SOR codes that take over from it.
    replaced_by: Mapped[list[str] | None] = mapped_column(JsonDocument)
    remarks: Mapped[str | None] = mapped_column(Text)

    # Once approved: the organisation the application created or changed.
    sor_code: Mapped[str | None] = mapped_column(CodeString(18), index=True)
    # The folded name, for duplicate detection across open applications.
    name_search: Mapped[str | None] = mapped_column(CodeString(200))

    created_by: Mapped[str] = mapped_column(String(200))
    created_by_client: Mapped[int | None] = mapped_column(BigIntKey)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list[ApplicationEvent]] = relationship(
        back_populates="application", order_by="ApplicationEvent.id", lazy="selectin"
    )
    attachments: Mapped[list[ApplicationAttachment]] = relationship(
        back_populates="application", order_by="ApplicationAttachment.id", lazy="selectin"
    )

    @property
    def reference(self) -> str:
        """What people quote in mail: ``ANS-000042``."""
        return f"{REFERENCE_PREFIX}{self.id:06d}"

    @property
    def address(self) -> dict[str, str | None]:
        return {"street": self.street, "postal_code": self.postal_code, "city": self.city}


class ApplicationEvent(Base):
    """One step in an application's life: who did what, when, and why."""

    __tablename__ = "application_events"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # For edits: {field: [old, new]}; for approval: the SOR code and what was created.
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)

    application: Mapped[Application] = relationship(back_populates="events")


class ApplicationAttachment(Base):
    """A file that came with an application (an emailed application's attachments)."""

    __tablename__ = "application_attachments"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    application: Mapped[Application] = relationship(back_populates="attachments")

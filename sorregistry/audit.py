"""The audit log: who did what, when, from where - append-only, kept for good.

Every feature records its decisions here in the transaction that makes them (a login,
an approval, a revoked client, staff reading another municipality's data), so an event
is logged exactly when the thing it tells of happened. Rows are never changed or
deleted by the service; on PostgreSQL a trigger refuses UPDATE and DELETE outright
(migration 0010), like a ledger. Staff read and export it (``GET /api/v1/audit``, the
``/staff/audit`` page, ``sorregistry export-audit``).

A read writes nothing of its own, so staff reading another municipality's data is
*noted* by the view (:func:`note_other_municipality_read`) and recorded once per
request, after the view has answered and before the answer leaves
(:func:`record_noted_reads`, an ``after_request`` hook): one event however many
applications a list showed, in a write step of its own (the read transaction is over by
then; SQLite's writer lock is taken, not fought for). A refused read (4xx, 5xx) showed
nothing and is not recorded.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Response, g, has_request_context, request
from sqlalchemy import Index, String, select
from sqlalchemy.orm import Mapped, mapped_column

from sorregistry.database import DbSession, write_step
from sorregistry.extensions import db
from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow
from sorregistry.request_id import current_request_id

ACTIONS = (
    "login", "login_failed", "logout", "session_ended",
    "user_created", "user_deactivated", "user_activated", "password_set",
    "client_created", "client_revoked", "role_granted", "role_revoked",
    "application_approved", "application_rejected", "information_requested",
    "application_withdrawn", "application_submitted",
    "register_changed", "register_imported", "other_municipality_read",
    "mail_triage_resolved", "outbox_retried",
    "webhook_subscribed", "webhook_unsubscribed", "webhook_retried",
)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"), Index("ix_audit_events_action", "action"))

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(40))
    # Who: "user" (a person logged in), "client" (an API client), "system" (a command).
    actor_kind: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(254))
    target: Mapped[str | None] = mapped_column(String(120))
    municipality_code: Mapped[str | None] = mapped_column(String(4))
    request_id: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who an audit event is about: a person, an API client or the system."""

    kind: str
    id: str | None
    name: str | None

    @classmethod
    def system(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = "unknown"
        return cls("system", None, f"command by {user}")


def record(session: DbSession, action: str, actor: Actor, *,
           target: str | None = None, municipality_code: str | None = None,
           details: Mapping[str, Any] | None = None) -> AuditEvent:
    """Add an event to the log in the caller's transaction (flushed; the caller commits)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        at=utcnow(), action=action, actor_kind=actor.kind, actor_id=actor.id,
        actor_name=(actor.name or "")[:254] or None, target=target,
        municipality_code=municipality_code, request_id=current_request_id(),
        address=(request.remote_addr or "")[:64] or None if has_request_context() else None,
        details=dict(details) if details else None,
    )
    session.add(event)
    session.flush()
    return event


@dataclass(slots=True)
class _NotedReads:
    actor: Actor
    municipalities: set[str]
    targets: list[str]


def note_other_municipality_read(actor: Actor, municipality_codes: Iterable[str], *,
                                 target: str | None = None) -> None:
    """Note that *actor* (staff) is being shown data of *municipality_codes*, none of them
    the actor's own; recorded once, when the request has answered (``record_noted_reads``).
    """
    codes = {code for code in municipality_codes if code}
    if not codes:
        return
    noted: _NotedReads | None = g.get("audit_noted_reads")
    if noted is None:
        noted = g.audit_noted_reads = _NotedReads(actor, set(), [])
    noted.municipalities |= codes
    if target is not None and target not in noted.targets and len(noted.targets) < 200:
        noted.targets.append(target)


def record_noted_reads(response: Response) -> Response:
    """Record this request's noted reads as one ``other_municipality_read`` event."""
    noted: _NotedReads | None = g.pop("audit_noted_reads", None)
    if noted is None or response.status_code >= 400:
        return response
    codes = sorted(noted.municipalities)
    with write_step(db.session) as session:
        record(session, "other_municipality_read", noted.actor,
               target=(noted.targets[0] if len(noted.targets) == 1 else request.path)[:120],
               municipality_code=codes[0] if len(codes) == 1 else None,
               details={"municipalities": codes, "targets": noted.targets,
                        "method": request.method, "path": request.path[:500]})
    return response


def list_events(session: DbSession, *,
                actions: Sequence[str] = (), actor: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                before_id: int | None = None, limit: int = 100) -> list[AuditEvent]:
    """Events newest first, filtered; ``before_id`` pages backwards."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actions:
        query = query.where(AuditEvent.action.in_(list(actions)))
    if actor:
        query = query.where((AuditEvent.actor_name == actor) | (AuditEvent.actor_id == actor))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(session.execute(query).scalars())

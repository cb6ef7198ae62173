"""The outbox: enqueue a mail with the change that causes it; claim, record, retry.

A mail is enqueued in the transaction of the event that causes it (an approval,
a rejection, a received application): ``enqueue`` only flushes, so the mail
exists exactly when the change is committed and never without it.

Sending (``notifications.sender``) goes through four steps, each of the
database steps its own short transaction:

1. **claim**: due rows are locked (``SELECT … FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so concurrent workers take different rows; ``BEGIN IMMEDIATE``
   on SQLite, so claims are serialised), marked ``sending`` with the worker's
   name and the time, their attempt counted and logged — and committed;
2. **send** over SMTP, outside any transaction;
3. **record** the outcome — only if the row is still this worker's claim;
4. commit.

A live worker renews the claims of its batch after each mail. A worker that
dies after 1 leaves its rows ``sending``; once the claim is older than
``NOTIFY_CLAIM_TIMEOUT_SECONDS`` another worker takes them over (the dead
attempt is logged as ``abandoned``). A mail is therefore never lost, and never
sent twice by two live workers. The one duplicate SMTP cannot rule out: a worker
that dies (or loses the database) after the SMTP server accepted the message
but before step 4 committed. The row is then sent again after the claim
timeout — with the same ``Message-ID``, made at enqueue time, by which the
receiving side can recognise it as the same mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid, parseaddr
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import and_, delete, func, or_, select, update

from notifications.mails import (
    InvalidContext,
    NotificationError,
    check_recipients,
    render,
)
from notifications.models import STATUSES, OutboxAttempt, OutboxMessage
from sorregistry.database import DbSession, begin_write, rowcount
from sorregistry.errors import DomainError
from sorregistry.models import utcnow

__all__ = [
    "NotificationError",
    "NotFound",
    "NotRetryable",
    "Outgoing",
    "Page",
    "Policy",
    "claim",
    "enqueue",
    "get_message",
    "list_messages",
    "record_failure",
    "record_sent",
    "release_claims",
    "renew_claims",
    "retry",
]


class NotFound(DomainError, LookupError):
    """No outbox message with that id."""

    status = 404


class NotRetryable(DomainError, ValueError):
    """Only a failed mail can be put back in the queue."""

    status = 409


@dataclass(frozen=True)
class Policy:
    """How sending retries and gives up; from the app's NOTIFY_* settings."""

    max_attempts: int = 10
    retry_base_seconds: int = 60
    retry_max_seconds: int = 6 * 3600
    claim_timeout_seconds: int = 600

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        return cls(
            max_attempts=max(1, int(config.get("NOTIFY_MAX_ATTEMPTS", cls.max_attempts))),
            retry_base_seconds=max(
                0, int(config.get("NOTIFY_RETRY_BASE_SECONDS", cls.retry_base_seconds))
            ),
            retry_max_seconds=max(
                0, int(config.get("NOTIFY_RETRY_MAX_SECONDS", cls.retry_max_seconds))
            ),
            claim_timeout_seconds=max(
                1, int(config.get("NOTIFY_CLAIM_TIMEOUT_SECONDS", cls.claim_timeout_seconds))
            ),
        )

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff: base, 2 x base, 4 x base … after attempt 1, 2, 3 …, capped."""
        exponent = min(max(attempts - 1, 0), 30)  # 2**30 x base is past any cap
        return timedelta(seconds=min(self.retry_base_seconds * 2**exponent,
                                     self.retry_max_seconds))


# --- enqueue --------------------------------------------------------------------


def _message_id_domain() -> str:
    """The right-hand side of Message-IDs: the setting, else the sender's domain."""

    if not has_app_context():
        return "sor.localhost"
    config = current_app.config
    domain = config.get("NOTIFY_MESSAGE_ID_DOMAIN")
    if not domain:
        sender = config.get("MAIL_DEFAULT_SENDER") or ""
        if isinstance(sender, tuple | list):
            sender = sender[-1]
        domain = parseaddr(str(sender))[1].rpartition("@")[2]
    try:
        return (domain or "sor.localhost").encode("idna").decode("ascii")
    except UnicodeError:
        return "sor.localhost"


def enqueue(
    session: DbSession,
    *,
    kind: str,
    to: str | list[str],
    context: dict[str, Any],
    reference: str | None = None,
    application_id: int | None = None,
) -> OutboxMessage:
    """Put a mail of *kind* to *to* in the outbox, rendered now from *context*.

    Call it in the transaction of the change that causes the mail: it only
    flushes, the caller commits. Raises a ``NotificationError`` (a ValueError)
    for an unknown kind, a missing or unusable context value, or an invalid
    recipient address. *reference* defaults to ``context["reference"]``.
    """
    recipients = check_recipients(to)
    if not isinstance(context, dict):
        raise InvalidContext(f"{kind}: the context must be a dict")
    given = context.get("reference")
    if reference is not None and given is not None and str(given) != str(reference):
        raise InvalidContext(
            f"{kind}: reference={reference!r} but the context says {given!r}"
        )
    if reference is None and given is not None:
        reference = given
    reference = None if reference is None else str(reference).strip()
    if reference is not None and not 0 < len(reference) <= 40:
        raise InvalidContext(f"{kind}: a reference has 1 to 40 characters")
    if application_id is not None and (
        isinstance(application_id, bool) or not isinstance(application_id, int)
    ):
        raise InvalidContext(f"{kind}: application_id must be an integer")
    mail = render(kind, {**context, "reference": reference} if reference else context)
    now = utcnow()
    message = OutboxMessage(
        kind=kind,
        recipients=recipients,
        subject=mail.subject,
        body_text=mail.text,
        body_html=mail.html,
        message_id=make_msgid(idstring="sor", domain=_message_id_domain()),
        reference=reference,
        application_id=application_id,
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    session.flush()
    return message


# --- claim and record -----------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A claimed mail, detached from the session: all that sending needs."""

    id: int
    attempt: int  # the message's attempt count with this one: the claim's token
    attempt_id: int
    kind: str
    recipients: list[str]
    subject: str
    body_text: str
    body_html: str
    message_id: str
    reference: str | None
    created_at: datetime


def _due(now: datetime, policy: Policy) -> Any:
    stale = now - timedelta(seconds=policy.claim_timeout_seconds)
    return or_(
        and_(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now),
        # A claim this old belongs to a worker that died mid-send.
        and_(OutboxMessage.status == "sending", OutboxMessage.claimed_at <= stale),
    )


def _close_open_attempts(
    session: DbSession, message_id: int, now: datetime, outcome: str, error: str | None
) -> None:
    session.execute(
        update(OutboxAttempt)
        .where(OutboxAttempt.message_id == message_id, OutboxAttempt.outcome.is_(None))
        .values(outcome=outcome, finished_at=now, error=error)
        .execution_options(synchronize_session=False)
    )


def claim(
    session: DbSession,
    *,
    worker: str,
    limit: int,
    policy: Policy,
    now: datetime | None = None,
) -> list[Outgoing]:
    """Claim up to *limit* due mails for *worker*; flushes, the caller commits at once.

    Due: queued with ``next_attempt_at`` passed, or ``sending`` under a claim
    older than the claim timeout. Rows another transaction has locked are
    skipped (PostgreSQL); on SQLite the transaction is the one writer.
    """
    begin_write(session)
    now = now or utcnow()
    rows = session.scalars(
        select(OutboxMessage)
        .where(_due(now, policy))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    claimed: list[tuple[OutboxMessage, OutboxAttempt]] = []
    for message in rows:
        if message.status == "sending":
            note = (
                f"{message.claimed_by} stopped while sending (claim from "
                f"{message.claimed_at:%Y-%m-%d %H:%M:%S} UTC expired); "
                "the mail may or may not have reached the SMTP server"
            )
            _close_open_attempts(session, message.id, now, "abandoned", note)
            message.last_error = note
            if message.attempts >= policy.max_attempts:
                message.status = "failed"
                message.claimed_by = message.claimed_at = None
                continue
        message.attempts += 1
        message.status = "sending"
        message.claimed_by = worker
        message.claimed_at = now
        attempt = OutboxAttempt(
            message_id=message.id, number=message.attempts, worker=worker, started_at=now
        )
        session.add(attempt)
        claimed.append((message, attempt))
    session.flush()
    return [
        Outgoing(
            id=message.id,
            attempt=message.attempts,
            attempt_id=attempt.id,
            kind=message.kind,
            recipients=list(message.recipients),
            subject=message.subject,
            body_text=message.body_text,
            body_html=message.body_html,
            message_id=message.message_id,
            reference=message.reference,
            created_at=message.created_at,
        )
        for message, attempt in claimed
    ]


def renew_claims(
    session: DbSession, outgoing: list[Outgoing], *, worker: str, now: datetime | None = None
) -> int:
    """Renew this worker's claims on *outgoing* (the rest of a batch, after each mail),
    so the claim timeout need only cover one mail, not a batch. Flushes; the caller commits."""
    if not outgoing:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(or_(*(_still_claimed(o, worker) for o in outgoing)))
        .values(claimed_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def release_claims(session: DbSession, outgoing: list[Outgoing], *, worker: str) -> int:
    """Hand this worker's claims on *outgoing* back, unsent: a worker told to stop
    gives back the rest of its batch rather than leave it for the claim timeout.
    As if never claimed: queued and due as before, the attempt not counted and its
    log row gone (nothing was tried). Returns how many it released. Flushes; the
    caller commits."""
    if not outgoing:
        return 0
    begin_write(session)
    released = 0
    for item in outgoing:
        result = session.execute(
            update(OutboxMessage)
            .where(_still_claimed(item, worker))
            .values(status="queued", attempts=OutboxMessage.attempts - 1,
                    claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) == 1:
            session.execute(delete(OutboxAttempt).where(OutboxAttempt.id == item.attempt_id))
            released += 1
    session.flush()
    return released


def _still_claimed(outgoing: Outgoing, worker: str) -> Any:
    return and_(
        OutboxMessage.id == outgoing.id,
        OutboxMessage.status == "sending",
        OutboxMessage.claimed_by == worker,
        OutboxMessage.attempts == outgoing.attempt,
    )


def _finish_attempt(
    session: DbSession, outgoing: Outgoing, now: datetime, outcome: str, error: str | None
) -> None:
    # By id, whatever it says: a worker that outlived its claim still knows best
    # what became of its own attempt.
    session.execute(
        update(OutboxAttempt)
        .where(OutboxAttempt.id == outgoing.attempt_id)
        .values(outcome=outcome, finished_at=now, error=error)
        .execution_options(synchronize_session=False)
    )


def record_sent(
    session: DbSession, outgoing: Outgoing, *, worker: str, now: datetime | None = None
) -> bool:
    """Mark a claimed mail sent; False when the claim was no longer this worker's
    (it expired and another worker took the mail over). Flushes; the caller commits."""
    begin_write(session)
    now = now or utcnow()
    result = session.execute(
        update(OutboxMessage)
        .where(_still_claimed(outgoing, worker))
        .values(status="sent", sent_at=now, claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    _finish_attempt(session, outgoing, now, "sent", None)
    session.flush()
    return rowcount(result) == 1


def record_failure(
    session: DbSession,
    outgoing: Outgoing,
    error: str,
    *,
    worker: str,
    policy: Policy,
    permanent: bool = False,
    now: datetime | None = None,
) -> OutboxMessage | None:
    """Record a failed attempt: back to the queue after the backoff, or failed for
    good after the last attempt (at once when *permanent*). Returns the message, or
    None when the claim was no longer this worker's. Flushes; the caller commits."""
    begin_write(session)
    now = now or utcnow()
    error = error[:4000]
    _finish_attempt(session, outgoing, now, "error", error)
    message = session.scalars(
        select(OutboxMessage)
        .where(_still_claimed(outgoing, worker))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if message is None:
        session.flush()
        return None
    message.last_error = error
    message.claimed_by = message.claimed_at = None
    if permanent or message.attempts >= policy.max_attempts:
        message.status = "failed"
    else:
        message.status = "queued"
        message.next_attempt_at = now + policy.delay(message.attempts)
    session.flush()
    return message


def retry(session: DbSession, message_id: int, *, actor: str) -> OutboxMessage:
    """Put a failed mail back in the queue, due now, with a fresh count of attempts.

    The attempt log keeps what went before, plus a ``retried`` entry naming
    *actor*. Flushes; the caller commits.
    """
    begin_write(session)
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
    ).one_or_none()
    if message is None:
        raise NotFound(f"no outbox message {message_id}")
    if message.status != "failed":
        raise NotRetryable(
            f"outbox message {message_id} is {message.status}; only a failed mail can be retried"
        )
    now = utcnow()
    session.add(
        OutboxAttempt(
            message_id=message.id, number=message.attempts, worker=actor[:200],
            started_at=now, finished_at=now, outcome="retried",
        )
    )
    message.status = "queued"
    message.attempts = 0
    message.next_attempt_at = now
    message.claimed_by = message.claimed_at = None
    session.flush()
    session.expire(message, ["attempt_log"])
    return message


# --- reading --------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[OutboxMessage]
    total: int
    next: str | None


def list_messages(
    session: DbSession,
    *,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Outbox messages, newest first, *limit* a page; *cursor* is the previous page's next."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    filters = [OutboxMessage.status == status] if status else []
    total = session.scalar(select(func.count()).select_from(OutboxMessage).where(*filters)) or 0
    query = select(OutboxMessage).where(*filters)
    if cursor:
        if not cursor.isdigit():
            raise ValueError("cursor: use the next value of the previous page")
        query = query.where(OutboxMessage.id < int(cursor))
    rows = session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    items = list(rows[:limit])
    return Page(items=items, total=total, next=str(items[-1].id) if more and items else None)


def get_message(session: DbSession, message_id: int) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"no outbox message {message_id}")
    return message

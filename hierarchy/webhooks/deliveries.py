"""From feed entries to deliveries (the dispatcher), and delivering them (claim, POST,
record) with the outbox's machinery (``sorregistry.queue``).

**Dispatch, once per subscription.** In one transaction the active subscriptions are
locked (``FOR UPDATE SKIP LOCKED``; SQLite: ``BEGIN IMMEDIATE``), a page of the feed after
the lowest ``last_position`` among them is read, each entry a subscription's filter
matches becomes a delivery (its body the entry as ``GET /api/v1/changes`` shows it), and
every subscription's ``last_position`` moves to the page's end - all committed together.
A crash before the commit leaves nothing (the page is read again); after it, the
positions are past. The unique (subscription, position) index makes a double enqueue
impossible even so.

**In position order, one at a time per subscription.** A delivery is claimed only when
no earlier delivery of its subscription is undelivered: the receiver sees the entries it
subscribed to in feed order, and the last position it acknowledged is a prefix - what it
passes to ``GET /api/v1/changes`` to catch up, whatever it missed. A receiver that is down
holds back its own deliveries only. Deliveries of different subscriptions go out side by
side.

**Never twice after a 2xx.** A delivery is marked ``delivered`` in the transaction that
records the 2xx. The one resend this cannot rule out: the worker dies after the
receiver's 2xx and before that commit; the claim times out and the entry is sent again
with the same ``X-SOR-Delivery`` id, by which the receiver drops it.

**Retries, giving up.** Anything but a 2xx (a refused connection, a timeout, a 3xx, 4xx or
5xx) is retried after the backoff; after ``SOR_WEBHOOK_MAX_ATTEMPTS`` attempts (or at once
when the URL has become unsafe) the delivery is ``failed`` and its subscription
``paused`` - not deleted: staff see both and a retry resumes it.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from hierarchy.feed.reading import read_page
from hierarchy.models import Organisation
from hierarchy.webhooks.models import WebhookDelivery, WebhookSubscription
from hierarchy.webhooks.subscriptions import allow_private, client_table, development, matches
from hierarchy.webhooks.transport import UnsafeUrl, post, resolve, sign
from sorregistry.database import DbSession, begin_write, is_postgresql, one_of, rowcount
from sorregistry.errors import DomainError
from sorregistry.models import utcnow
from sorregistry.queue import RetryPolicy, due
from sorregistry.reads import SessionReads
from sorregistry.responses import dumps_text

PENDING = ("queued", "sending", "failed")


@dataclass(frozen=True)
class Policy(RetryPolicy):
    """How deliveries retry and give up; from the app's WEBHOOK_* settings."""

    prefix = "WEBHOOK_"
    max_attempts: int = 10
    retry_base_seconds: int = 30
    retry_max_seconds: int = 3600
    claim_timeout_seconds: int = 120


class DeliveryNotFound(DomainError, LookupError):
    status = 404


class NotRetryable(DomainError, ValueError):
    status = 409


# --- dispatch -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dispatched:
    queued: int  # deliveries made
    more: bool  # the feed has more after this page


def dispatch(session: DbSession, *, limit: int = 500) -> Dispatched:
    """Queue the deliveries of one page of the feed for every active subscription.
    Flushes; the caller commits (then calls again while ``more``)."""
    begin_write(session)
    subscriptions = list(session.scalars(
        select(WebhookSubscription).where(WebhookSubscription.status == "active",
                                          _client_active())
        .order_by(WebhookSubscription.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ))
    if not subscriptions:
        return Dispatched(0, False)
    after = min(s.last_position for s in subscriptions)
    page = read_page(SessionReads(session), after, limit)
    codes = {item["sor_code"] for item in page.items}
    paths: dict[str, str] = {row.sor_code: row.path for row in session.execute(
        select(Organisation.sor_code, Organisation.path)
        .where(one_of(Organisation.sor_code, codes, postgresql=is_postgresql(session)))
    )} if codes else {}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for item in page.items:
        body: str | None = None
        for subscription in subscriptions:
            if item["position"] <= subscription.last_position:
                continue
            if not matches(subscription.filter, item, paths.get(item["sor_code"])):
                continue
            body = body or dumps_text(item)
            rows.append({
                "subscription_id": subscription.id, "position": item["position"],
                "sor_code": item["sor_code"], "body": body, "status": "queued",
                "attempts": 0, "next_attempt_at": now, "created_at": now})
    if rows:  # one executemany, not an ORM object per delivery
        session.execute(insert(WebhookDelivery), rows)
    for subscription in subscriptions:
        subscription.last_position = max(subscription.last_position, page.last)
    session.flush()
    return Dispatched(len(rows), page.more)


# --- claim, send, record ------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery, detached from the session: all that sending needs."""

    id: int
    attempt: int  # the delivery's attempt count with this one: the claim's token
    subscription_id: int
    url: str
    secret: str
    position: int
    body: str


def _head() -> Any:
    """The subscription's earliest delivery still to be delivered (its position): one
    probe per status of the (subscription, status, position) index, however many rows
    it has delivered."""
    pending = aliased(WebhookDelivery)
    return (
        select(func.min(pending.position))
        .where(pending.subscription_id == WebhookSubscription.id, pending.status.in_(PENDING))
        .scalar_subquery()
    )


def _client_active() -> Any:
    """The subscription's API client is not revoked: a revoked client's subscriptions
    rest (nothing queued, nothing sent) until deleted."""
    clients = client_table()
    return exists().where(clients.c.id == WebhookSubscription.client_id,
                          clients.c.revoked_at.is_(None))


def _pause(session: DbSession, subscription_id: int, reason: str) -> None:
    session.execute(
        update(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
        .values(status="paused", paused_reason=reason[:2000])
        .execution_options(synchronize_session=False))


def claim(
    session: DbSession, *, worker: str, limit: int, policy: RetryPolicy,
    now: datetime | None = None,
) -> list[Outgoing]:
    """Claim up to *limit* due deliveries, each the next of its subscription. Flushes;
    the caller commits at once."""
    begin_write(session)
    now = now or utcnow()
    rows = session.execute(
        select(WebhookDelivery, WebhookSubscription)
        .select_from(WebhookSubscription)
        # Driven from the subscriptions: each one's head of line, if it is due.
        .join(WebhookDelivery, and_(WebhookDelivery.subscription_id == WebhookSubscription.id,
                                    WebhookDelivery.position == _head()))
        .where(WebhookSubscription.status == "active", _client_active(),
               due(WebhookDelivery, now, policy))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    claimed: list[Outgoing] = []
    for delivery, subscription in rows:
        if delivery.status == "sending":  # its worker died mid-delivery
            delivery.last_error = (f"{delivery.claimed_by} stopped while delivering; the "
                                   "receiver may or may not have had it")
            if delivery.attempts >= policy.max_attempts:
                _give_up(session, delivery, delivery.last_error)
                continue
        delivery.attempts += 1
        delivery.status = "sending"
        delivery.claimed_by = worker[:200]
        delivery.claimed_at = now
        claimed.append(Outgoing(
            delivery.id, delivery.attempts, subscription.id, subscription.url,
            subscription.secret, delivery.position, delivery.body))
    session.flush()
    return claimed


def _give_up(session: DbSession, delivery: WebhookDelivery, error: str) -> None:
    delivery.status = "failed"
    delivery.claimed_by = delivery.claimed_at = None
    _pause(session, delivery.subscription_id,
           f"delivery {delivery.id} (position {delivery.position}) failed: {error}")


def _still_claimed(outgoing: Outgoing, worker: str) -> Any:
    return and_(
        WebhookDelivery.id == outgoing.id,
        WebhookDelivery.status == "sending",
        WebhookDelivery.claimed_by == worker[:200],
        WebhookDelivery.attempts == outgoing.attempt,
    )


def record_delivered(session: DbSession, outgoing: Outgoing, status_code: int, *,
                     worker: str) -> bool:
    """Mark a claimed delivery delivered; False when the claim was no longer this
    worker's. Flushes; the caller commits."""
    begin_write(session)
    result = session.execute(
        update(WebhookDelivery).where(_still_claimed(outgoing, worker))
        .values(status="delivered", delivered_at=utcnow(), last_status_code=status_code,
                claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False))
    session.flush()
    return rowcount(result) == 1


def prune_delivered(session: DbSession, *, keep_days: int, limit: int = 1000) -> int:
    """Delete up to *limit* deliveries delivered more than *keep_days* days ago (the feed
    keeps every entry; a delivered row only says when it went out). Failed and pending
    ones stay. Flushes; the caller commits."""
    cutoff = utcnow() - timedelta(days=keep_days)
    old = (select(WebhookDelivery.id)
           .where(WebhookDelivery.status == "delivered", WebhookDelivery.delivered_at < cutoff)
           .order_by(WebhookDelivery.id).limit(limit))
    ids = list(session.scalars(old))
    if not ids:
        return 0
    begin_write(session)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                    .execution_options(synchronize_session=False))
    session.flush()
    return len(ids)


def record_failure(
    session: DbSession, outgoing: Outgoing, error: str, *, worker: str, policy: RetryPolicy,
    status_code: int | None = None, permanent: bool = False,
) -> str | None:
    """Record a failed attempt: queued again after the backoff, or ``failed`` (and the
    subscription paused) after the last attempt or at once when *permanent*. Returns the
    new status, None when the claim was no longer this worker's. Flushes."""
    begin_write(session)
    delivery = session.scalars(
        select(WebhookDelivery).where(_still_claimed(outgoing, worker)).with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if delivery is None:
        return None
    delivery.last_error = error[:4000]
    delivery.last_status_code = status_code
    if permanent or delivery.attempts >= policy.max_attempts:
        _give_up(session, delivery, error[:500])
    else:
        delivery.status = "queued"
        delivery.claimed_by = delivery.claimed_at = None
        delivery.next_attempt_at = utcnow() + policy.delay(delivery.attempts)
    session.flush()
    return delivery.status


def release(session: DbSession, outgoing: list[Outgoing], *, worker: str) -> int:
    """Hand back unsent claims (a worker told to stop): queued, the attempt not counted."""
    begin_write(session)
    released = 0
    for item in outgoing:
        released += rowcount(session.execute(
            update(WebhookDelivery).where(_still_claimed(item, worker))
            .values(status="queued", attempts=WebhookDelivery.attempts - 1,
                    claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)))
    session.flush()
    return released


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    permanent: bool = False


def send(app: Flask, outgoing: Outgoing) -> Outcome:
    """POST one claimed delivery, signed; outside any transaction. The URL is checked
    and resolved again now (an unsafe one fails the delivery for good)."""
    try:
        target = resolve(outgoing.url, development=development(app),
                         allow_private=allow_private(app))
    except UnsafeUrl as exc:
        return Outcome(False, None, str(exc), permanent=True)
    body = outgoing.body.encode()
    timestamp = int(utcnow().timestamp())
    headers = {
        "X-SOR-Signature": sign(outgoing.secret, timestamp, body),
        "X-SOR-Timestamp": str(timestamp),
        "X-SOR-Position": str(outgoing.position),
        "X-SOR-Delivery": str(outgoing.id),
    }
    timeout = float(app.config.get("WEBHOOK_TIMEOUT_SECONDS") or 10)
    try:
        answer = post(target, body, headers, timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # Refused, timed out, TLS, or not HTTP: the receiver's trouble, retried.
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= answer.status < 300:
        return Outcome(True, answer.status, None)
    return Outcome(False, answer.status, f"HTTP {answer.status}: {answer.excerpt}")


# --- staff ----------------------------------------------------------------------------


def list_deliveries(session: DbSession, *, status: str | None = None,
                    limit: int = 100) -> list[WebhookDelivery]:
    query = select(WebhookDelivery)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def retry(session: DbSession, delivery_id: int) -> WebhookDelivery:
    """Put a failed delivery back in the queue with a fresh count of attempts, and its
    subscription back to active. Flushes; the caller commits."""
    begin_write(session)
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
    if delivery.status != "failed":
        raise NotRetryable(f"delivery {delivery_id} is {delivery.status}; only a failed "
                           "delivery can be retried")
    delivery.status = "queued"
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == delivery.subscription_id)
        .values(status="active", paused_reason=None)
        .execution_options(synchronize_session=False))
    session.flush()
    return delivery

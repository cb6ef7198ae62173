"""The webhook tables: subscriptions and the deliveries queued for them.

A subscription belongs to an API client (``api_clients``, by foreign key only: the
register imports nothing of ``accounts``). Its ``last_position`` is the feed position
the dispatcher has handled for it: entries up to it are queued as deliveries (those the
filter matched) or passed over. A delivery is one feed entry for one subscription,
its body fixed when it is queued (every retry sends the same bytes); it is unique on
(subscription, position), so an entry is never queued twice for one subscription.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow

DELIVERY_STATUSES = ("queued", "sending", "delivered", "failed")
SUBSCRIPTION_STATUSES = ("active", "paused")


class WebhookSubscription(Base):
    """Where to POST the feed entries a filter matches, and how far the feed was read."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'paused')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(
        BigIntKey, ForeignKey("api_clients.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # {"ownership": ..., "cvr": ..., "municipality": ..., "under": ..., "level": ...};
    # every key given must match (an empty filter: every entry).
    filter: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    # The signing key, kept as given out: signing needs it (see README, "Webhooks").
    secret: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="active")
    paused_reason: Mapped[str | None] = mapped_column(Text)
    last_position: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One feed entry to POST to one subscription's URL, with the outbox's claim columns."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'sending', 'delivered', 'failed')",
                        name="status"),
        # One entry, one delivery per subscription: what makes an enqueue happen once.
        Index("ux_webhook_deliveries_subscription_position", "subscription_id", "position",
              unique=True),
        # The workers' query: each subscription's earliest delivery not yet delivered.
        Index("ix_webhook_deliveries_pending", "subscription_id", "status", "position"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        BigIntKey, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(BigInteger)
    sor_code: Mapped[str] = mapped_column(String(18))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

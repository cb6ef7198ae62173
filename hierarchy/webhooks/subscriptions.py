"""Subscriptions: create (with a secret shown once), list, delete; their filters.

A filter names any of ``ownership`` (statslig, regional, kommunal, privat), ``cvr`` (the
owner's), ``municipality`` (the effective postal address's kommunekode), ``under`` (a SOR
code: that organisation and its whole subtree) and ``level`` (IE, SI, OE); an entry
matches when every key given does, judged on the organisation as the entry shows it
(``under`` on its place in the tree when the entry is dispatched). A new subscription
starts at the register's last position: it receives the changes made after it was
created; what went before is in the feed and the exports.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy import Table, select

from hierarchy import identifiers as ids
from hierarchy.models import LEVELS, OWNERSHIPS, RegisterVersion
from hierarchy.webhooks.models import WebhookDelivery, WebhookSubscription
from hierarchy.webhooks.transport import resolve
from sorregistry.database import DbSession, begin_write
from sorregistry.errors import DomainError
from sorregistry.models import Base

FILTER_KEYS = ("ownership", "cvr", "municipality", "under", "level")


class InvalidSubscription(DomainError, ValueError):
    status = 400


class SubscriptionNotFound(DomainError, LookupError):
    status = 404


def development(app: Flask) -> bool:
    return app.config.get("SOR_ENV") == "development"


def allow_private(app: Flask) -> bool:
    return bool(app.config.get("WEBHOOK_ALLOW_PRIVATE"))


def clean_filter(raw: Mapping[str, Any]) -> dict[str, str]:
    """The filter in canonical form, or :class:`InvalidSubscription` saying which key."""
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        raise InvalidSubscription(
            f"filter: unknown key {', '.join(unknown)}; use {', '.join(FILTER_KEYS)}")
    cleaned: dict[str, str] = {}
    for key in FILTER_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise InvalidSubscription(f"filter.{key}: a non-empty string")
        value = value.strip()
        try:
            if key == "ownership" and value not in OWNERSHIPS:
                raise InvalidSubscription(f"filter.ownership: one of {', '.join(OWNERSHIPS)}")
            if key == "level" and value not in LEVELS:
                raise InvalidSubscription(f"filter.level: one of {', '.join(LEVELS)}")
            if key == "cvr":
                value = ids.validate_cvr(value)
            elif key == "municipality":
                value = ids.validate_municipality_code(value)
            elif key == "under":
                # A valid code not (yet) in the register matches nothing until it is.
                value = ids.validate_sor_code(value)
        except ids.IdentifierError as exc:
            raise InvalidSubscription(f"filter.{key}: {exc}") from exc
        cleaned[key] = value
    return cleaned


def matches(wanted: Mapping[str, str], entry: Mapping[str, Any], path: str | None) -> bool:
    """Whether feed *entry* matches the filter *wanted*; *path* is the organisation's
    place in the tree now (``/IE/SI/.../``), None when unknown."""
    organisation = entry["organisation"]
    for key, value in wanted.items():
        if key == "ownership" and organisation.get("ownership") != value:
            return False
        if key == "level" and organisation.get("level") != value:
            return False
        if key == "cvr" and organisation.get("cvr") != value:
            return False
        if key == "municipality":
            address = organisation.get("address") or {}
            if address.get("municipality_code") != value:
                return False
        if key == "under":
            line = {entry["sor_code"], organisation.get("parent_sor_code"),
                    organisation.get("institution_sor_code"),
                    organisation.get("owner_sor_code")}
            if value not in line and (path is None or f"/{value}/" not in path):
                return False
    return True


def client_table() -> Table:
    # The API clients' table, by name: the register imports nothing of accounts.
    return Base.metadata.tables["api_clients"]


def create(
    session: DbSession, app: Flask, *, client_id: int, url: str, wanted: Mapping[str, Any],
    actor: str,
) -> tuple[WebhookSubscription, str]:
    """A subscription for API client *client_id*; returns it and its secret (shown once).
    The URL is checked (and resolved) now and again at every delivery. Flushes."""
    resolve(url, development=development(app), allow_private=allow_private(app))
    clients = client_table()
    found = session.execute(
        select(clients.c.id, clients.c.revoked_at).where(clients.c.id == client_id)
    ).first()
    if found is None or found.revoked_at is not None:
        raise InvalidSubscription(f"client_id: no active API client {client_id}")
    cleaned = clean_filter(wanted)
    begin_write(session)
    last = session.scalar(
        select(RegisterVersion.last_position).where(RegisterVersion.name == "register"))
    secret = "whsec_" + secrets.token_urlsafe(32)
    subscription = WebhookSubscription(
        client_id=client_id, url=url, filter=cleaned, secret=secret, status="active",
        last_position=int(last or 0), created_by=actor[:200])
    session.add(subscription)
    session.flush()
    return subscription, secret


def list_subscriptions(session: DbSession) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def get_subscription(session: DbSession, subscription_id: int) -> WebhookSubscription:
    found = session.get(WebhookSubscription, subscription_id)
    if found is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    return found


def delete_subscription(session: DbSession, subscription_id: int) -> None:
    """Delete a subscription and its deliveries (sent or not). Flushes."""
    begin_write(session)
    subscription = get_subscription(session, subscription_id)
    session.query(WebhookDelivery).filter(
        WebhookDelivery.subscription_id == subscription_id).delete()
    session.delete(subscription)
    session.flush()

"""The outbox's figures for ``/metrics``: its length by status and its oldest queued mail."""

from __future__ import annotations

from flask import Flask

from notifications.models import OutboxMessage
from sorregistry import metrics


def init_app(app: Flask) -> None:
    metrics.register_collector(
        app, "outbox", metrics.queue_collector("outbox_messages", "Mails of the outbox",
                                               OutboxMessage))

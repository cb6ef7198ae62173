"""Notifications: the outbox, mail templates and sending.

Told what to send (``notifications.service.enqueue``, in the caller's transaction);
knows nothing of applications. ``init_app(app)`` attaches the outbox API, the
staff's outbox page and ``send-notifications``.
"""

from __future__ import annotations

from flask import Flask

from notifications import cli, metrics, routes, views
from sorregistry.api import register_api
from sorregistry.pages import MenuEntry, register_pages


def init_app(app: Flask) -> None:
    register_api(app, routes.blp, url_prefix="/api/v1")
    register_pages(app, views.bp,
                   menu=[MenuEntry("notifications_pages.outbox", "Udbakke", ("sds",), order=40)])
    cli.register(app)
    metrics.init_app(app)

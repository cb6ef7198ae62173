"""Webhooks: the change feed pushed to subscribers as signed POSTs.

(The design is written out in README.md, "Webhooks"; this is the map of the package.)

- ``models``: subscriptions and their deliveries.
- ``transport``: where a delivery may go (the SSRF rules), the signature, one POST.
- ``subscriptions``: creating (a secret shown once), listing, deleting; filters.
- ``deliveries``: the dispatcher (feed entries to deliveries, once per subscription) and
  claiming, sending and recording, on the outbox's machinery (``sorregistry.queue``).
- ``worker``, ``cli``: ``sorregistry deliver-webhooks [--loop]``.
- ``routes``, ``views``: the API (sds) and the staff page.

It lives in the register (it reads the feed, imports only the core): no mail, no
applications.
"""

from __future__ import annotations

from flask import Flask

from hierarchy.webhooks import cli, routes, views
from sorregistry.api import register_api
from sorregistry.pages import MenuEntry, register_pages


def init_app(app: Flask) -> None:
    register_api(app, routes.blp, url_prefix="/api/v1")
    register_pages(app, views.bp,
                   menu=[MenuEntry("webhook_pages.subscriptions_page", "Webhooks", ("sds",),
                                   order=45)])
    cli.register(app)

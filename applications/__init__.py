"""Applications for SOR codes: intake (web, API, mail), validation, review, code allocation.

``init_app(app)`` attaches the applications API, the staff's review and mail-intake
pages (with the staff's overview of figures: ``stats_views``; their API:
``stats_routes``), the municipalities' pages and the commands (``add-contact``,
``fetch-mail``).
"""

from __future__ import annotations

from flask import Flask

from applications import (
    cli,
    metrics,
    routes,
    stats_routes,
    stats_views,  # noqa: F401  (its routes attach to views.staff_bp)
    triage_views,
    views,
)
from sorregistry.api import register_api
from sorregistry.pages import MenuEntry, register_pages


def init_app(app: Flask) -> None:
    register_api(app, routes.blp, url_prefix="/api/v1")
    register_api(app, stats_routes.blp, url_prefix="/api/v1")
    register_pages(app, views.staff_bp, menu=[
        MenuEntry("staff.queue", "Ansøgninger", ("sds",), order=10),
        triage_views.MENU_ENTRY,
    ])
    register_pages(app, views.municipality_bp, menu=[
        MenuEntry("municipality.applications", "Mine ansøgninger", ("municipality",), order=50),
    ])
    cli.register(app)
    metrics.init_app(app)

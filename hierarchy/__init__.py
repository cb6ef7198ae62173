"""The register: organisations in their hierarchy, identifiers, imports and lookups.

``init_app(app)`` attaches the register to the app: its APIs (organisations,
lookups, the change feed, the exports, the FHIR directory), its pages (the start page,
the staff register browser, the picker), its commands (imports, the demo, the tick,
export), the register version the health answer shows, and the hooks that record register
changes in the app's sessions (``hierarchy.changes``).
"""

from __future__ import annotations

from flask import Flask

from hierarchy import (
    changes,
    cli,
    embed_routes,
    lookup_routes,
    metrics,
    routes,
    start,
    views,
    webhooks,
)
from hierarchy.export import cli as export_cli
from hierarchy.export import routes as export_routes
from hierarchy.feed import cli as feed_cli
from hierarchy.feed import routes as feed_routes
from hierarchy.fhir import outcome as fhir_outcome
from hierarchy.fhir import routes as fhir_routes
from hierarchy.service import register_version
from sorregistry import health
from sorregistry.api import register_api
from sorregistry.extensions import db
from sorregistry.pages import MenuEntry, register_pages


def init_app(app: Flask) -> None:
    changes.install(db.session)  # records register changes, bumps its version at commit
    register_api(app, routes.blp, url_prefix="/api/v1")
    register_api(app, lookup_routes.blp, url_prefix="/api/v1")
    register_api(app, feed_routes.blp, url_prefix="/api/v1")
    register_api(app, export_routes.blp, url_prefix="/api/v1")
    register_api(app, embed_routes.blp, url_prefix="/api/v1")
    register_api(app, fhir_routes.bp, url_prefix="/fhir", render_error=fhir_outcome.render_error,
                 accepts=("application/x-www-form-urlencoded",))
    register_pages(app, start.bp)
    register_pages(app, views.register_bp,
                   menu=[MenuEntry("register_pages.browse", "Registret", ("sds",), order=20)])
    register_pages(app, views.picker_bp, menu=[MenuEntry("picker.picker", "Opslag", order=60)])
    health.report_register_version(app, register_version)
    cli.register(app)
    feed_cli.register(app)
    export_cli.register(app)
    webhooks.init_app(app)
    metrics.init_app(app)

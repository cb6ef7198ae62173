"""The application factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from sorregistry import config as sor_config


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app: configuration, extensions, blueprints, error handlers, commands."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(sor_config.DEFAULTS)
    if test_config is None:
        app.config.update(sor_config.from_environment())
    else:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI",
        "sqlite:///" + os.path.join(app.instance_path, "sorregistry.db"),
    )
    _check_secret_key(app)
    _limit_connect_time(app)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    register_extensions(app)
    register_blueprints(app)
    register_pages(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def _limit_connect_time(app: Flask) -> None:
    """PostgreSQL: give up connecting after 10 s (libpq waits for the TCP timeout, often
    minutes, when the server's host does not answer), so a request or the health check
    answers 503 instead of holding a worker. A connect_timeout given in
    SQLALCHEMY_ENGINE_OPTIONS wins."""
    if not str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("connect_timeout", 10)
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _check_secret_key(app: Flask) -> None:
    if app.config.get("SECRET_KEY"):
        return
    if app.config.get("TESTING") or app.config.get("SOR_ENV") == "development" or app.debug:
        app.config["SECRET_KEY"] = "dev-only-not-secret"
        return
    raise sor_config.ConfigurationError(
        "SOR_SECRET_KEY must be set outside development and tests "
        "(or set SOR_ENV=development for a local run)"
    )


def register_extensions(app: Flask) -> None:
    # Import every package's models so that the metadata is complete.
    import applications.mail_models  # noqa: F401
    import applications.models  # noqa: F401
    import hierarchy.models  # noqa: F401
    import notifications.models  # noqa: F401
    import sorregistry.auth  # noqa: F401
    from sorregistry.database import configure_engine
    from sorregistry.extensions import api, db, mail, migrate

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrations = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
    migrate.init_app(app, db, directory=migrations, render_as_batch=True)
    api.init_app(app)
    mail.init_app(app)


def register_blueprints(app: Flask) -> None:
    from applications.routes import blp as applications_api
    from hierarchy.lookup_routes import blp as lookups_api
    from hierarchy.routes import blp as hierarchy_api
    from notifications.routes import blp as notifications_api
    from sorregistry.extensions import api
    from sorregistry.health import blp as health_api
    from sorregistry.views import bp as site

    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "Token from create-client"},
    )
    api.register_blueprint(hierarchy_api, url_prefix="/api/v1")
    api.register_blueprint(lookups_api, url_prefix="/api/v1")
    api.register_blueprint(applications_api, url_prefix="/api/v1")
    api.register_blueprint(notifications_api, url_prefix="/api/v1")
    api.register_blueprint(health_api, url_prefix="/api/v1")
    app.register_blueprint(site)


def register_pages(app: Flask) -> None:
    from sorregistry.pages import register

    register(app)


def register_errorhandlers(app: Flask) -> None:
    from sorregistry.errors import register

    register(app)


def register_commands(app: Flask) -> None:
    from applications.cli import register as register_application_commands
    from hierarchy.cli import register as register_hierarchy_commands
    from notifications.cli import register as register_notification_commands
    from sorregistry.cli import create_client, list_clients, load_demo, revoke_client

    register_hierarchy_commands(app)
    register_application_commands(app)
    register_notification_commands(app)
    app.cli.add_command(load_demo)
    app.cli.add_command(create_client)
    app.cli.add_command(list_clients)
    app.cli.add_command(revoke_client)

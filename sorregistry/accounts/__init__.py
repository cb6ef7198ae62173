"""Accounts: the people who log in to the pages and the API clients that call the API.

A feature like the others (it lives under ``sorregistry/`` because the top-level
layout is the project's brief): models, services (``users``, ``clients``), the
login pages and the commands. ``sorregistry.security`` decides what the roles
allow; this package tells it who a token or a login session belongs to.
"""

from __future__ import annotations

from flask import Flask

from sorregistry import pages, security
from sorregistry.accounts import cli, clients, users, views
from sorregistry.accounts.models import User
from sorregistry.extensions import db, login_manager


def _load_user(user_id: str) -> User | None:
    return users.load_user(db.session, user_id)


def init_app(app: Flask) -> None:
    """The login pages, the session's user loader, the token resolver, the commands."""
    login_manager.user_loader(_load_user)
    security.add_token_resolver(app, clients.identity_for_token)
    pages.register_pages(app, views.bp)
    for command in cli.COMMANDS:
        app.cli.add_command(command)

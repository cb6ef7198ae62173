"""Accounts: the people who log in to the pages and the API clients that call the API.

A feature like the others (it lives under ``sorregistry/`` because the top-level
layout is the project's brief): models, services (``users``, ``clients``, ``roles``), the
login pages (``views``; ``oidc`` for the national identity, through ``oidc_client``), the
resolvers of bearer tokens (``access_tokens`` for an identity provider's JWTs,
``clients`` for the service's own) and the commands (``cli``, ``identity_cli``).
``sorregistry.security`` decides what the roles allow; this package tells it who a token
or a login session belongs to.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, session

from sorregistry import audit, pages, security
from sorregistry.accounts import (
    access_tokens,
    cli,
    clients,
    identity_cli,
    oidc,
    oidc_client,
    users,
    views,
)
from sorregistry.accounts import sessions as login_sessions
from sorregistry.accounts.models import User
from sorregistry.database import write_step
from sorregistry.extensions import db, login_manager
from sorregistry.models import utcnow


def _load_user(user_id: str) -> User | None:
    """The person of the session cookie, if the account and the login session are alive.

    Ending a session that ran out, or recording use (at most once a minute), is a write:
    it is done here, in a write step of its own before the view has done anything, so
    the view's transaction is never made a writer by it."""
    user = users.load_user(db.session, user_id)
    if user is None:
        return None
    config = current_app.config
    now = utcnow()
    found = login_sessions.look_up(
        db.session, session.get(login_sessions.SESSION_KEY), user.id, now=now,
        idle=timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        lifetime=timedelta(hours=config["SESSION_MAX_HOURS"]))
    if found.state == "alive" and not found.touch:
        return user
    if found.row_id is not None:
        with write_step(db.session) as work:
            if found.state == "alive":
                login_sessions.touch(work, found.row_id, now)
            else:
                login_sessions.end_row(work, found.row_id, found.state, now)
                audit.record(work, "session_ended", users.user_actor(user),
                             details={"reason": found.state})
    return users.load_user(db.session, user_id) if found.state == "alive" else None


def init_app(app: Flask) -> None:
    """The login pages, the session's user loader, the token resolvers, the commands."""
    login_manager.user_loader(_load_user)
    oidc_client.init_app(app)
    # An access token is recognised by its shape (a JWS) without the database, so it is
    # asked first; the service's own tokens are looked up after.
    security.add_token_resolver(app, access_tokens.identity_for_access_token)
    security.add_token_resolver(app, clients.identity_for_token)
    pages.register_pages(app, views.bp)
    if oidc_client.state(app) is not None:  # its pages exist only with an issuer
        pages.register_pages(app, oidc.bp)
    for command in (*cli.COMMANDS, *identity_cli.COMMANDS):
        app.cli.add_command(command)

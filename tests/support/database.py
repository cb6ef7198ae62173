"""Run an app's ``db.session`` inside a transaction the test owns (the one place that
reaches into Flask-SQLAlchemy's private API).

Written against Flask-SQLAlchemy 3.1 (3.1.1). Flask-SQLAlchemy has no public way to
give its session a connection: its ``Session.get_bind`` takes the engine from
``db.engines`` (ignoring a ``bind=`` session option), and ``db.session`` is made by
``db._make_scoped_session``. So :func:`bind_session_to` puts the connection in the
app's private engine map (``db._app_engines[app][None]``) and builds the scoped
session with ``join_transaction_mode="create_savepoint"``: a commit in the code under
test only releases a savepoint, and the test's rollback undoes everything. While it
is bound, ``db.engine`` is that connection too, so code that reads through
``db.engine`` stays inside the test's transaction.

:func:`check_private_api` says in one sentence what changed when an upgrade breaks
this; tests/test_support_database.py runs it first, and the fixtures through
:func:`bind_session_to`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any

from flask import Flask
from flask_sqlalchemy.session import Session
from sqlalchemy.engine import Connection
from sqlalchemy.orm import scoped_session

from sorregistry.extensions import db

WRITTEN_AGAINST = "3.1"


class UnsupportedFlaskSQLAlchemy(RuntimeError):
    """Flask-SQLAlchemy changed what bind_session_to relies on."""


def _broken(what: str) -> UnsupportedFlaskSQLAlchemy:
    return UnsupportedFlaskSQLAlchemy(
        f"Flask-SQLAlchemy {version('flask-sqlalchemy')} {what}; tests/support/database.py "
        f"(bind_session_to) was written against {WRITTEN_AGAINST}: adapt it there, in its "
        "one place"
    )


def _engines(app: Flask) -> dict[str | None, Any]:
    """The app's engine map, the very dict that ``db.engines`` and the session read."""
    app_engines = getattr(db, "_app_engines", None)
    if app_engines is None:
        raise _broken("has no SQLAlchemy._app_engines (the engines per app)")
    engines = app_engines.get(app)
    if not isinstance(engines, dict) or None not in engines:
        raise _broken("keeps no dict with the default engine under None in _app_engines[app]")
    if db.engines is not engines:
        raise _broken("answers db.engines with something else than _app_engines[app]")
    return engines


def check_private_api(app: Flask) -> None:
    """Raise UnsupportedFlaskSQLAlchemy, saying what, unless the private API this module
    uses is there (call inside an app context of *app*)."""
    _engines(app)
    if not callable(getattr(db, "_make_scoped_session", None)):
        raise _broken("has no SQLAlchemy._make_scoped_session(options)")


@contextmanager
def bind_session_to(app: Flask, connection: Connection) -> Iterator[scoped_session[Session]]:
    """Within the block, *app*'s ``db.session`` and ``db.engine`` use *connection*; the
    code's commits become savepoints of the transaction the caller began on it. Call
    inside an app context of *app*; restores the engine and session on the way out."""
    check_private_api(app)
    engines = _engines(app)
    engine = engines[None]
    original = db.session
    engines[None] = connection
    db.session = db._make_scoped_session({"join_transaction_mode": "create_savepoint"})
    try:
        yield db.session
    finally:
        db.session.remove()
        db.session = original
        engines[None] = engine

"""tests/support/database.py: the test transaction around the app's session, and a clear
failure when a Flask-SQLAlchemy upgrade takes away what it relies on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from applications.mail_models import MunicipalityContact
from applications.mail_service import add_contact
from sorregistry import create_app
from sorregistry.extensions import db
from tests.support import database
from tests.support.database import UnsupportedFlaskSQLAlchemy, bind_session_to


@pytest.fixture
def plain_app(database_url: str) -> Iterator[Flask]:
    """The app as the service makes it, not yet bound to any test transaction."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _contacts(connection: Connection) -> int:
    return connection.execute(
        select(func.count()).select_from(MunicipalityContact)).scalar_one()


def test_the_installed_flask_sqlalchemy_has_what_the_helper_uses(plain_app: Flask) -> None:
    # When this fails, its message names the version and what is gone: fix
    # tests/support/database.py, the one place that uses Flask-SQLAlchemy's private API.
    database.check_private_api(plain_app)


def test_a_commit_inside_is_a_savepoint_the_callers_rollback_undoes(plain_app: Flask) -> None:
    engine, session = db.engine, db.session
    with engine.connect() as connection:
        transaction = connection.begin()
        before = _contacts(connection)
        with bind_session_to(plain_app, connection) as bound:
            assert bound is db.session and db.session is not session
            assert db.engine is connection
            add_contact(db.session, "0751", "sor@aarhus.dk")
            db.session.commit()  # as the code under test does
            assert _contacts(connection) == before + 1  # on the test's connection
            assert transaction.is_active
        assert db.session is session and db.engine is engine
        transaction.rollback()
    with engine.connect() as other:
        assert _contacts(other) == before


def test_an_upgrade_that_removes_the_private_api_fails_with_a_clear_message(
    plain_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Flask-SQLAlchemy upgrade looks like to the fixtures: one sentence naming
    the version and what is gone, not an AttributeError deep in a fixture."""
    monkeypatch.delattr(type(db), "_make_scoped_session")
    with db.engine.connect() as connection, pytest.raises(
        UnsupportedFlaskSQLAlchemy,
        match=r"^Flask-SQLAlchemy \S+ has no SQLAlchemy\._make_scoped_session.*written "
              r"against 3\.1",
    ), bind_session_to(plain_app, connection):
        pass
    monkeypatch.undo()
    monkeypatch.setattr(db, "_app_engines", None)
    with pytest.raises(UnsupportedFlaskSQLAlchemy, match="has no SQLAlchemy._app_engines"):
        database.check_private_api(plain_app)

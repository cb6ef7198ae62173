"""Fixtures: the app on SQLite and on a real PostgreSQL server, one transaction per test.

The PostgreSQL server is Debian's, started once per test session in a
temporary directory (as the ``postgres`` user, since initdb refuses root) and
removed at the end. Set SOR_TEST_BACKENDS=sqlite to run on SQLite alone, or
SOR_TEST_POSTGRES_URL to use a server you run yourself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade

from hierarchy.search import version_listener
from sorregistry import create_app
from sorregistry.extensions import db
from tests.support import postgres
from tests.support.database import bind_session_to

FIXTURES = Path(__file__).parent / "fixtures"
BACKENDS = [b for b in os.environ.get("SOR_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def pytest_report_header(config: pytest.Config) -> str:
    return f"database back ends: {', '.join(BACKENDS)}"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Server]:
    url = os.environ.get("SOR_TEST_POSTGRES_URL")
    if url:
        yield postgres.Server.external(url)
        return
    server = postgres.Server.start(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()


def _migrate(url: str) -> None:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated database per back end, shared by the tests (each rolls back)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "register.db"
        url = f"sqlite:///{path}"
    else:
        server: postgres.Server = request.getfixturevalue("postgres_server")
        url = server.create_database("sor_test")
    _migrate(url)
    return url


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The app on one connection whose transaction is rolled back after the test: a
    commit in the code under test only releases a savepoint (see
    tests/support/database.py)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        engine = db.engine
        connection = engine.connect()
        transaction = connection.begin()
        try:
            with bind_session_to(app, connection):
                yield app
        finally:
            if transaction.is_active:
                transaction.rollback()
            connection.close()
            engine.dispose()


@pytest.fixture
def session(app: Flask):
    return db.session


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def fresh_database(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database of its own, migrated, for tests that must really commit."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "own.db"
        url = f"sqlite:///{path}"
    else:
        server: postgres.Server = request.getfixturevalue("postgres_server")
        name = "sor_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
        name = "".join(ch if ch.isalnum() else "_" for ch in name)
        url = server.create_database(name)
    _migrate(url)
    yield url
    if not database_url.startswith("sqlite"):
        version_listener.close_all()  # the workers' LISTEN threads, before their database goes
        server.drop_database(url)


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def copy_fixture(name: str, target: Path) -> Path:
    shutil.copy(FIXTURES / name, target)
    return target

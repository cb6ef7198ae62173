"""Fixtures: the app on SQLite and on a real PostgreSQL server, one transaction per test.

The PostgreSQL server is Debian's, started once per test session in a
temporary directory (as the ``postgres`` user, since initdb refuses root) and
removed at the end. Set SOR_TEST_BACKENDS=sqlite to run on SQLite alone, or
SOR_TEST_POSTGRES_URL to use a server you run yourself.

Each back end is migrated once per worker, into a template that is only copied: the
shared test database, every ``fresh_database`` and a module's imported register
(:func:`loaded_copy`) are copies of it (``CREATE DATABASE ... TEMPLATE``, a file copy
on SQLite). A module whose tests all read one register imports it once, not per test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade

from hierarchy.search import version_listener
from sorregistry import create_app
from sorregistry.extensions import db
from tests.support import postgres
from tests.support.client import ServerClient
from tests.support.database import bind_session_to

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATE = "sor_template"  # the migrated PostgreSQL database fresh ones copy
# Every app's test client closes the answers it reads, as a server does.
Flask.test_client_class = ServerClient

BACKENDS = [b for b in os.environ.get("SOR_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def pytest_report_header(config: pytest.Config) -> str:
    return f"database back ends: {', '.join(BACKENDS)}"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Server]:
    url = os.environ.get("SOR_TEST_POSTGRES_URL")
    if url:
        yield postgres.Server.external(url)
        return
    # A throwaway server: nothing on it must outlive a crash of the machine, so it
    # never waits for the disk (fsync: a dropped database otherwise costs a second
    # of checkpoint, and every commit a flush). What the tests see of it is unchanged.
    server = postgres.Server.start(tmp_path_factory.mktemp("postgres"), fsync="off",
                                   synchronous_commit="off", full_page_writes="off")
    try:
        yield server
    finally:
        server.stop()


def _migrate(url: str) -> None:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_templates() -> dict[str, str]:
    """The migrated templates made so far, by back end: kept for the whole session.

    ``migrated_template`` is a parametrized session fixture, and pytest keeps one
    parameter's value at a time: every switch of back end (each test file runs its SQLite
    tests, then its PostgreSQL ones, on its xdist worker) finalizes it and makes it
    again. Made once here, each switch costs a lookup, not a migration."""
    return {}


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    migrated_templates: dict[str, str],
) -> str:
    """A migrated, empty database per back end that is never used, only copied (the
    SQLite file; the PostgreSQL database ``CREATE DATABASE ... TEMPLATE`` copies): one
    migration per back end and worker instead of one per database the tests make (a
    migration takes seconds, a copy a fraction of one)."""
    backend: str = request.param
    if backend not in migrated_templates:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("template") / "template.db"
            _migrate(f"sqlite:///{path}")
            migrated_templates[backend] = str(path)
        else:
            server: postgres.Server = request.getfixturevalue("postgres_server")
            _migrate(server.create_database(TEMPLATE))
            migrated_templates[backend] = TEMPLATE
    return migrated_templates[backend]


def copy_template(request: pytest.FixtureRequest, template: str, folder: Path, name: str) -> str:
    """A new migrated database *name* (a SQLite file in *folder*): a copy of *template*."""
    if template.endswith(".db"):
        path = folder / f"{name}.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    server: postgres.Server = request.getfixturevalue("postgres_server")
    return server.create_database(name, template=template)


def drop_copy(request: pytest.FixtureRequest, url: str) -> None:
    """Drop a database :func:`copy_template` made (a SQLite file goes with its folder)."""
    if url.startswith("postgresql"):
        version_listener.close_all()  # the workers' LISTEN threads, before their database goes
        request.getfixturevalue("postgres_server").drop_database(url)


@contextmanager
def loaded_copy(
    request: pytest.FixtureRequest, template: str, folder: Path, name: str,
    load: Callable[[Any], None],
) -> Iterator[str]:
    """A copy of *template* that *load* fills (given the session; committed here), for a
    module whose tests all read the same register: imported once, not once per test.
    The tests read it through :func:`rolled_back_app`, so none sees another's writes."""
    url = copy_template(request, template, folder, name)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        try:
            load(db.session)
            db.session.commit()
        finally:
            db.session.remove()
            db.engine.dispose()
    try:
        yield url
    finally:
        drop_copy(request, url)


@pytest.fixture(scope="session")
def database_url(
    migrated_template: str, request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A migrated database per back end, shared by the tests (each rolls back)."""
    return copy_template(request, migrated_template, tmp_path_factory.mktemp("sqlite"),
                         "sor_test")


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@contextmanager
def rolled_back_app(url: str) -> Iterator[Flask]:
    """The app on one connection whose transaction is rolled back at the end: a commit
    in the code under test only releases a savepoint (see tests/support/database.py)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
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
def app(database_url: str) -> Iterator[Flask]:
    """The app on the shared database, its transaction rolled back after the test."""
    with rolled_back_app(database_url) as app:
        yield app


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
    migrated_template: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database of its own, migrated (a copy of the template), for tests that must
    really commit."""
    name = "sor_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    name = "".join(ch if ch.isalnum() else "_" for ch in name)
    url = copy_template(request, migrated_template, tmp_path, name)
    yield url
    drop_copy(request, url)


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def copy_fixture(name: str, target: Path) -> Path:
    shutil.copy(FIXTURES / name, target)
    return target

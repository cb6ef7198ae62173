"""GET /api/v1/health: 200 when the instance can serve, 503 (with the reason) when not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from sorregistry import create_app
from sorregistry.errors import database_unavailable
from tests.test_database_down import unreachable  # noqa: F401 - the fixture

MIGRATIONS = Path(__file__).parents[1] / "migrations" / "versions"


def test_a_migrated_database_is_healthy_without_a_token(client, session):
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["schema"] == "current"
    assert body["schema_revision"] == body["expected_revision"]
    newest = max(path.name[:4] for path in MIGRATIONS.glob("0*.py"))
    assert body["expected_revision"] == newest
    assert isinstance(body["register_version"], int)
    assert response.headers["Cache-Control"] == "no-store"


def test_a_schema_behind_this_code_is_unavailable(client, session):
    session.execute(text("UPDATE alembic_version SET version_num = '0008'"))
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["schema"] == "behind"
    assert body["database"] == "ok" and body["schema_revision"] == "0008"


def test_a_schema_ahead_of_this_code_still_serves(client, session):
    """A rolling deploy migrates first: the old instances must stay in until replaced."""
    session.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json()["schema"] == "ahead"


def test_a_database_never_migrated_is_behind(tmp_path):
    app = create_app({"TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}"})
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json()["schema"] == "behind"
    assert response.get_json()["database"] == "ok"


def test_an_unreachable_database_is_unavailable(unreachable):  # noqa: F811
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": unreachable,
                      "PROPAGATE_EXCEPTIONS": False})
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["database"] == "unreachable"
    assert body["schema"] == "unknown" and body["schema_revision"] is None


def test_what_counts_as_the_database_out_of_reach():


    assert database_unavailable(PoolTimeout("QueuePool limit of size 5 overflow 10 reached"))
    assert database_unavailable(psycopg.OperationalError("connection refused"))
    assert not database_unavailable(psycopg.errors.PipelineAborted("pipeline aborted"))
    assert not database_unavailable(psycopg.errors.QueryCanceled("statement timeout"))
    assert database_unavailable(psycopg.errors.AdminShutdown("terminating connection"))

    locked = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    missing = OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: x"))
    assert database_unavailable(locked) and not database_unavailable(missing)

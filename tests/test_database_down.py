"""With the database out of reach, the API answers 503 with Retry-After, never a 500."""

from __future__ import annotations

import socket
import time

import pytest

from sorregistry import create_app, reads
from sorregistry.accounts.clients import (
    _IDENTITIES,
    ClientIdentity,
    digest_token,
    forget_identities,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


@pytest.fixture(params=["sqlite", "postgresql"])
def unreachable(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'no-such-folder' / 'register.db'}"
    return f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/sor"


def test_api_says_503_when_the_database_is_unreachable(unreachable):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": unreachable,
                      "PROPAGATE_EXCEPTIONS": False})
    client = app.test_client()
    headers = {"Authorization": "Bearer sor_whatever"}
    # Checking the token needs the database.
    response = client.get("/api/v1/resolve?code=123451000016001", headers=headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "unavailable" in response.get_json()["message"]
    # A worker that knew the client before the database went: the lookup's own reads fail
    # (on PostgreSQL on the thread's own connection, sorregistry.reads), still a 503.
    identity = ClientIdentity(id=1, name="form", cvr="55133018", roles=("reporter",),
                              municipality_code=None)
    _IDENTITIES[digest_token("sor_known")] = (time.monotonic() + 60, identity)
    try:
        response = client.get("/api/v1/lookups/my-cvr/si",
                              headers={"Authorization": "Bearer sor_known"})
        assert response.status_code == 503, response.get_data()
        assert response.get_json()["code"] == 503
    finally:
        forget_identities()
        reads.close_connections()


def test_a_post_with_the_database_down_does_not_invite_a_blind_retry(unreachable):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": unreachable,
                      "PROPAGATE_EXCEPTIONS": False})
    response = app.test_client().post("/api/v1/applications", json={},
                                      headers={"Authorization": "Bearer sor_whatever"})
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert "is not known" in response.get_json()["message"]


def test_a_database_error_that_is_no_outage_stays_a_500(tmp_path):
    """An unmigrated database (no such table) is a fault to fix, not a moment to wait."""
    app = create_app({"TESTING": True, "PROPAGATE_EXCEPTIONS": False,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}"})
    response = app.test_client().get("/api/v1/resolve?code=123451000016001",
                                     headers={"Authorization": "Bearer sor_whatever"})
    assert response.status_code == 500
    assert "Retry-After" not in response.headers

"""The request log (sorregistry/logs.py) and the request id's way into the register.

The JSON lines of a real gunicorn are read in tests/test_prometheus.py; these run in
the test's process, on both back ends."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from flask import Flask, Response
from prometheus_client import REGISTRY
from sqlalchemy import select

from applications import service
from hierarchy.models import RegisterCommit
from sorregistry import config as sor_config
from sorregistry import create_app, logs
from sorregistry.audit import AuditEvent
from tests.applications.helpers import AARHUS, AARHUS_CVR, bearer, build_register, new_nursing_home
from tests.pages.helpers import login, make_users


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the request logger writes, as JSON lines."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    logs.REQUEST_LOGGER.addHandler(handler)
    level = logs.REQUEST_LOGGER.level
    logs.REQUEST_LOGGER.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logs.REQUEST_LOGGER.removeHandler(handler)
        logs.REQUEST_LOGGER.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_request_with_its_id(client, session, log_lines) -> None:
    build_register(session)
    reporter = bearer(session, "reporter", name="reporter")
    session.commit()
    sent = client.get("/api/v1/lookups/ownership/kommunal", headers={
        **reporter, "X-Request-Id": "proxy-id-12345678"})
    made = client.get("/no/such/path")
    first, second = _lines(log_lines)
    assert sent.headers["X-Request-Id"] == first["request_id"] == "proxy-id-12345678"
    assert first["endpoint"] == "lookups.OwnershipList" and first["status"] == 200
    assert first["method"] == "GET" and first["path"] == "/api/v1/lookups/ownership/kommunal"
    assert first["client"].startswith("client:") and first["level"] == "INFO"
    assert first["logger"] == "sorregistry.request" and first["duration_ms"] >= 0
    assert first["message"].startswith("GET /api/v1/lookups/ownership/kommunal 200 ")
    assert made.headers["X-Request-Id"] == second["request_id"] != first["request_id"]
    assert second["endpoint"] == "<unmatched>" and second["status"] == 404
    assert "client" not in second


def test_the_line_and_the_count_come_once_the_answer_has_been_sent(log_lines) -> None:
    """The request line and the metrics' count wait for the server to close the answer
    (after its last byte), so the client never waits for them, and they time the whole
    answer: here a streamed one whose last part comes 0.2 s after its first."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})

    @app.get("/tests/slowly")
    def slowly() -> Response:
        def parts() -> Iterator[bytes]:
            yield b"first "
            time.sleep(0.2)
            yield b"last"
        return Response(parts(), mimetype="text/plain")

    labels = {"method": "GET", "endpoint": "slowly", "status": "200"}

    def counted() -> float:
        return REGISTRY.get_sample_value("sor_http_requests_total", labels) or 0.0

    before = counted()
    answer = app.test_client().get("/tests/slowly", buffered=False)
    assert answer.get_data() == b"first last"
    assert _lines(log_lines) == [] and counted() == before  # sent, not yet closed
    answer.close()
    (line,) = _lines(log_lines)
    assert line["endpoint"] == "slowly" and line["status"] == 200
    assert line["duration_ms"] >= 200
    assert counted() == before + 1
    timed = REGISTRY.get_sample_value("sor_http_request_duration_seconds_bucket",
                                      {**labels, "le": "0.1"})
    assert timed == 0  # not at the headers: the stream's 0.2 s are in it


def test_a_person_logged_in_is_named_by_user_id(app: Flask, session, log_lines) -> None:
    people = make_users(session)
    session.commit()
    client = app.test_client()
    login(client, people["sds"].email)
    log_lines.truncate(0)
    log_lines.seek(0)
    assert client.get("/staff/").status_code == 200
    (line,) = _lines(log_lines)
    assert line["client"] == f"user:{people['sds'].id}"


def test_a_line_logged_while_serving_carries_the_request_id(app: Flask) -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.request_log")
    logger.addHandler(logs.handler("json", stream))
    logger.propagate = False
    try:
        with app.test_request_context(headers={"X-Request-Id": "edge-abcdef12"}):
            logger.warning("the SMTP server said %s", "no")
        logger.warning("outside any request")
    finally:
        logger.handlers.clear()
        logger.propagate = True
    inside, outside = _lines(stream)
    assert inside["request_id"] == "edge-abcdef12" and inside["level"] == "WARNING"
    assert inside["message"] == "the SMTP server said no" and "time" in inside
    assert "request_id" not in outside


def test_the_log_format_setting(monkeypatch) -> None:
    assert sor_config.from_environment({"SOR_LOG_FORMAT": "JSON"})["LOG_FORMAT"] == "json"
    with pytest.raises(sor_config.ConfigurationError, match="SOR_LOG_FORMAT"):
        sor_config.from_environment({"SOR_LOG_FORMAT": "xml"})
    production = Flask("p")
    production.config.update(SOR_ENV="production", LOG_FORMAT=None)
    assert logs.log_format(production) == "json"
    production.config["SOR_ENV"] = "development"
    assert logs.log_format(production) == "text"
    production.config["LOG_FORMAT"] = "json"
    assert logs.log_format(production) == "json"


def test_an_approval_records_its_request_id_in_the_audit_and_the_register(
        client, session) -> None:
    build_register(session)
    sds = bearer(session, "sds", cvr="29190909", name="SDS")
    actor = service.Actor(name="test", roles=("municipality",), municipality_code=AARHUS,
                          cvr=AARHUS_CVR)
    application = service.create_application(session, actor, new_nursing_home())
    service.submit_application(session, actor, application.id)
    session.commit()
    answer = client.post(f"/api/v1/applications/{application.id}/approve", json={},
                         headers={**sds, "X-Request-Id": "approve-abc-123"})
    assert answer.status_code == 200 and answer.headers["X-Request-Id"] == "approve-abc-123"
    audited = session.scalars(select(AuditEvent.action).where(
        AuditEvent.request_id == "approve-abc-123")).all()
    assert audited == ["application_approved"]
    (commit,) = session.scalars(select(RegisterCommit).where(
        RegisterCommit.request_id == "approve-abc-123")).all()
    assert commit.changes >= 1 and commit.first_position is not None
    # A command's commit has none (the demo register was built by the test, not a request).
    assert session.scalar(select(RegisterCommit.request_id).order_by(RegisterCommit.id)) is None

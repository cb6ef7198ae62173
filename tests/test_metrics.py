"""``/metrics`` in the app: guarded by its token, and its figures (a real Prometheus scrapes
it in tests/test_prometheus.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from applications.mail_models import IncomingMail
from hierarchy import identifiers as ids
from notifications.service import enqueue
from sorregistry import create_app, metrics
from sorregistry.extensions import db
from tests.applications.helpers import bearer, build_register
from tests.notifications.conftest import issued_context
from tests.support.database import bind_session_to

TOKEN = "metrics-token-for-the-tests-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def metrics_app(database_url: str) -> Iterator[Flask]:
    """The app with SOR_METRICS_TOKEN set, in the test's rolled-back transaction."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                      "METRICS_TOKEN": TOKEN})
    with app.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        try:
            with bind_session_to(app, connection):
                yield app
        finally:
            transaction.rollback()
            connection.close()
            db.engine.dispose()


def _figures(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", headers=SCRAPE)
    assert answer.status_code == 200, answer.data
    assert answer.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for sample in family.samples}


def _value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def test_without_a_token_setting_there_is_no_metrics_endpoint(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=SCRAPE).status_code == 404


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}",
                                           f"Bearer {TOKEN}x", "Bearer "])
def test_a_scrape_without_the_token_is_refused(metrics_app: Flask,
                                               authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = metrics_app.test_client().get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"sor_" not in answer.data


def test_requests_are_counted_per_endpoint_and_status_and_the_cache_per_result(
        metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    build_register(db.session)
    reporter = bearer(db.session, "reporter", name="reporter")
    db.session.commit()
    before = _figures(client)
    assert client.get("/api/v1/health").status_code == 200
    lookup = "/api/v1/lookups/ownership/kommunal?limit=5"
    assert client.get(lookup, headers=reporter).headers["X-Cache"] == "miss"
    assert client.get(lookup, headers=reporter).headers["X-Cache"] == "hit"
    unknown = f"/api/v1/organisations/{ids.make_sor_code(987654)}"
    assert client.get(unknown, headers=reporter).status_code == 404
    assert client.get("/no/such/page").status_code == 404
    after = _figures(client)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    endpoint = "lookups.OwnershipList"
    assert moved("sor_http_requests_total", method="GET", endpoint="health.Health",
                 status="200") == 1
    assert moved("sor_http_requests_total", method="GET", endpoint=endpoint,
                 status="200") == 2
    assert moved("sor_http_requests_total", method="GET", endpoint="<unmatched>",
                 status="404") == 1
    assert moved("sor_http_request_duration_seconds_count", method="GET", endpoint=endpoint,
                 status="200") == 2
    assert moved("sor_http_request_duration_seconds_sum", method="GET", endpoint=endpoint,
                 status="200") > 0
    assert moved("sor_answer_cache_requests_total", endpoint=endpoint, result="miss") == 1
    assert moved("sor_answer_cache_requests_total", endpoint=endpoint, result="hit") == 1
    # No raw path becomes a label: the organisation's code is not in any series.
    assert moved("sor_http_requests_total", method="GET", endpoint="organisations.OrganisationItem",
                 status="404") == 1
    assert not [key for key in after if any(unknown in value for _, value in key[1])]


def test_the_outbox_and_the_mail_ledger_are_counted(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    empty = _figures(client)
    assert _value(empty, "sor_outbox_messages", status="queued") == 0
    assert _value(empty, "sor_outbox_messages_oldest_queued_age_seconds") == 0
    assert _value(empty, "sor_mail_intake_mails", state="application") == 0
    for n in range(3):
        enqueue(db.session, kind="sor_code_issued", to=f"institution{n}@example.dk",
                context=issued_context("institution", f"A-2026-{n:04d}"))
    db.session.add(IncomingMail(
        message_id="<metrics-1@example.dk>", mailbox="INBOX", uidvalidity=1, uid=1,
        size=10, raw=b"x", outcome="triage", triage_reason="unreadable",
        triage_status="open"))
    db.session.commit()
    figures = _figures(client)
    assert _value(figures, "sor_outbox_messages", status="queued") == 3
    assert _value(figures, "sor_outbox_messages", status="failed") == 0
    assert _value(figures, "sor_outbox_messages_oldest_queued_age_seconds") >= 0
    assert _value(figures, "sor_mail_intake_mails", state="triage_open") == 1
    assert _value(figures, "sor_webhook_deliveries", status="queued") == 0
    assert ("sor_direct_read_connections", ()) in figures


def test_a_feature_samples_a_labelled_value_per_process(metrics_app: Flask) -> None:
    """What the replicas register for their lag: one series per standby, and a standby
    that is gone shows NaN rather than its last lag."""
    lags: dict[tuple[str, ...], float] = {("standby-1",): 0.25, ("standby-2",): 3.0}
    metrics.sample(metrics_app, "sor_test_replica_lag_seconds", "A test's lag",
                   lambda: dict(lags), labels=("database",))
    client = metrics_app.test_client()
    figures = _figures(client)
    assert _value(figures, "sor_test_replica_lag_seconds", database="standby-1") == 0.25
    assert _value(figures, "sor_test_replica_lag_seconds", database="standby-2") == 3.0
    del lags[("standby-2",)]
    figures = _figures(client)
    assert math.isnan(_value(figures, "sor_test_replica_lag_seconds", database="standby-2"))
    # A sample that raises is left out (and logged); the scrape still answers.
    metrics.sample(metrics_app, "sor_test_broken", "Raises", lambda: 1 / 0)
    assert client.get("/metrics", headers=SCRAPE).status_code == 200

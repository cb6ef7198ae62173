"""Webhooks, on SQLite and PostgreSQL, with a real HTTP receiver on 127.0.0.1: each entry
once, signed, in order; a receiver down for a while; giving up and retrying; filters;
the SSRF refusals at creation and at delivery."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from hierarchy import service as register
from hierarchy.webhooks import deliveries, subscriptions
from hierarchy.webhooks.models import WebhookDelivery, WebhookSubscription
from hierarchy.webhooks.transport import UnsafeUrl, resolve, sign
from hierarchy.webhooks.worker import WebhookWorker
from sorregistry import create_app
from sorregistry.accounts.clients import create_client, revoke_client
from sorregistry.extensions import db
from sorregistry.models import utcnow
from tests.applications.helpers import (
    AARHUS,
    AARHUS_CVR,
    AARHUS_IE,
    EXISTING_SI,
    PRIVATE_CVR,
    PRIVATE_IE,
    PRIVATE_SI,
    bearer,
    build_register,
)
from tests.support.feed import feed as feed_entries
from tests.support.receiver import Receiver, verify


@pytest.fixture
def dev(app: Flask) -> Flask:
    """Development: http:// and 127.0.0.1 allowed, retries after a second."""
    app.config.update(SOR_ENV="development", WEBHOOK_ALLOW_PRIVATE=True,
                      WEBHOOK_RETRY_BASE_SECONDS=1, WEBHOOK_RETRY_MAX_SECONDS=1,
                      WEBHOOK_MAX_ATTEMPTS=3, WEBHOOK_TIMEOUT_SECONDS=5)
    return app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.up()
    yield found
    found.down()


@pytest.fixture
def sds(session) -> dict[str, str]:
    return bearer(session, "sds", name="staff")


@pytest.fixture
def subscriber(session) -> int:
    client, _ = create_client(session, "Region Midt's system", cvr=AARHUS_CVR,
                              roles=["reporter"])
    session.commit()
    return client.id


def _subscribe(client, sds, subscriber: int, url: str, **wanted: str) -> dict:
    answer = client.post("/api/v1/subscriptions", headers=sds,
                         json={"client_id": subscriber, "url": url, "filter": wanted})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def _worker(app: Flask, session) -> WebhookWorker:
    return WebhookWorker.from_app(app, session, name="test-worker")


def _change(session, code: str, phone: str) -> None:
    register.change_organisation(session, code, {"phone": phone}, source="staff",
                                 actor="test")
    session.commit()


def test_a_receiver_gets_each_entry_once_signed_and_in_order(
        dev, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url)
    receiver.secret = created["secret"]
    assert created["secret"].startswith("whsec_") and created["status"] == "active"
    build_register(session)
    session.commit()
    _change(session, AARHUS_IE, "89402001")
    expected = [e for e in feed_entries(session) if e["position"] > created["last_position"]]
    assert len(expected) >= 5

    result = _worker(dev, session).run_once()
    assert (result.queued, result.delivered, result.retrying) == (len(expected),) * 2 + (0,)
    got = receiver.accepted()
    assert [r.position for r in got] == [e["position"] for e in expected]
    assert all(r.verified for r in got)
    # The body is the entry as the feed shows it; the headers name it.
    for request, entry in zip(got, expected, strict=True):
        assert request.entry["sor_code"] == entry["sor_code"]
        assert request.entry["change"] == entry["change"]
        assert request.headers["X-SOR-Timestamp"] == request.headers[
            "X-SOR-Signature"].split(",")[0].removeprefix("t=")
        assert request.headers["X-SOR-Delivery"].isdigit()
        assert request.headers["Content-Type"] == "application/json"
    # Signed with this secret and no other; the request's path and query kept.
    assert not verify("whsec_wrong", got[0].headers["X-SOR-Signature"], got[0].body)

    again = _worker(dev, session).run_once()
    assert (again.queued, again.delivered) == (0, 0)
    assert len(receiver.requests) == len(expected)
    # The secret is shown once: not in the list, not in the item.
    listed = client.get("/api/v1/subscriptions", headers=sds).get_json()["items"]
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    item = client.get(f"/api/v1/subscriptions/{created['id']}", headers=sds).get_json()
    assert "secret" not in item and item["last_position"] == expected[-1]["position"]


def test_a_receiver_down_for_a_while_loses_nothing_and_gets_nothing_twice(
        dev, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url)
    receiver.secret = created["secret"]
    build_register(session)
    session.commit()
    worker = _worker(dev, session)
    first = worker.run_once()
    assert first.delivered == 4
    # Down: connections refused.
    receiver.down()
    _change(session, AARHUS_IE, "89402002")
    _change(session, PRIVATE_SI, "86000001")
    refused = worker.run_once()
    assert (refused.delivered, refused.retrying) == (0, 1)  # the next in line only
    # Up, but failing with 500.
    receiver.failing = True
    receiver.up()
    time.sleep(1.1)
    failing = worker.run_once()
    assert (failing.delivered, failing.retrying) == (0, 1)
    assert receiver.requests[-1].answered == 500
    # Healthy again: the rest arrives, in order.
    receiver.failing = False
    _change(session, EXISTING_SI, "86000002")
    time.sleep(1.1)
    healthy = worker.run_once()
    everything = [e["position"] for e in feed_entries(session)
                  if e["position"] > created["last_position"]]
    assert healthy.delivered == len(everything) - first.delivered >= 4
    accepted = [r.position for r in receiver.accepted()]
    assert accepted == everything  # none lost, none twice after a 2xx, in feed order
    statuses = set(session.scalars(select(WebhookDelivery.status)))
    assert statuses == {"delivered"}


def test_a_delivery_given_up_pauses_the_subscription_and_a_retry_resumes_it(
        dev, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url, level="IE")
    receiver.secret = created["secret"]
    receiver.failing = True
    build_register(session)
    session.commit()
    worker = _worker(dev, session)
    for _ in range(3):  # WEBHOOK_MAX_ATTEMPTS
        worker.run_once()
        time.sleep(1.1)
    failed = client.get("/api/v1/webhook-deliveries?status=failed", headers=sds).get_json()
    assert len(failed["items"]) == 1 and failed["items"][0]["attempts"] == 3
    assert "HTTP 500" in failed["items"][0]["last_error"]
    item = client.get(f"/api/v1/subscriptions/{created['id']}", headers=sds).get_json()
    assert item["status"] == "paused" and "failed" in item["paused_reason"]
    # Paused: nothing more is tried, and the later entry waits.
    assert worker.run_once().delivered == 0
    assert len(receiver.requests) == 3

    receiver.failing = False
    delivery_id = failed["items"][0]["id"]
    retried = client.post(f"/api/v1/webhook-deliveries/{delivery_id}/retry", headers=sds)
    assert retried.status_code == 200 and retried.get_json()["status"] == "queued"
    assert client.post(f"/api/v1/webhook-deliveries/{delivery_id}/retry",
                       headers=sds).status_code == 409
    assert client.post("/api/v1/webhook-deliveries/999999/retry",
                       headers=sds).status_code == 404
    resumed = worker.run_once()
    assert resumed.delivered == 2  # the two owners (IE), in order
    assert [r.entry["organisation"]["level"] for r in receiver.accepted()] == ["IE", "IE"]
    assert session.get(WebhookSubscription, created["id"]).status == "active"


def test_filters_choose_the_entries_each_subscription_gets(
        dev, client, session, sds, subscriber, receiver):
    wanted = {
        "all": {},
        "private": {"ownership": "privat"},
        "cvr": {"cvr": PRIVATE_CVR},
        "aarhus": {"municipality": AARHUS},
        "under": {"under": AARHUS_IE},
        "institutions": {"level": "SI"},
        "both": {"ownership": "kommunal", "level": "SI"},
    }
    ids = {name: _subscribe(client, sds, subscriber, receiver.url, **f)["id"]
           for name, f in wanted.items()}
    build_register(session)
    session.commit()
    with_state = deliveries.dispatch(session)
    session.commit()
    assert with_state.queued > 0
    got = {name: sorted(session.scalars(select(WebhookDelivery.sor_code).where(
        WebhookDelivery.subscription_id == ident))) for name, ident in ids.items()}
    assert got["all"] == sorted([AARHUS_IE, EXISTING_SI, PRIVATE_IE, PRIVATE_SI])
    assert got["private"] == sorted([PRIVATE_IE, PRIVATE_SI])
    assert got["cvr"] == sorted([PRIVATE_IE, PRIVATE_SI])
    assert got["aarhus"] == sorted([AARHUS_IE, EXISTING_SI, PRIVATE_SI])
    assert got["under"] == sorted([AARHUS_IE, EXISTING_SI])
    assert got["institutions"] == sorted([EXISTING_SI, PRIVATE_SI])
    assert got["both"] == [EXISTING_SI]
    # Dispatching again queues nothing twice.
    assert deliveries.dispatch(session).queued == 0
    total = session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert total == sum(len(codes) for codes in got.values())


@pytest.mark.parametrize(("body", "says"), [
    ({"filter": {"ownership": "offentlig"}}, "ownership"),
    ({"filter": {"cvr": "12345678"}}, "cvr"),
    ({"filter": {"municipality": "75a"}}, "municipality"),
    ({"filter": {"under": "123456789012345"}}, "under"),
    ({"filter": {"level": "XX"}}, "level"),
    ({"filter": {"colour": "blue"}}, "colour"),
    ({"client_id": 987654}, "client"),
    ({"url": "ftp://127.0.0.1/x"}, "https"),
    ({"url": "http://user:pw@127.0.0.1/x"}, "user"),
])
def test_bad_subscriptions_are_refused_and_change_nothing(
        dev, client, session, sds, subscriber, receiver, body, says):
    request = {"client_id": subscriber, "url": receiver.url, "filter": {}, **body}
    answer = client.post("/api/v1/subscriptions", headers=sds, json=request)
    assert answer.status_code in (400, 422), answer.get_json()
    assert says in str(answer.get_json()).lower()
    assert session.scalar(select(func.count()).select_from(WebhookSubscription)) == 0


def test_only_staff_subscribe(client, session, subscriber):
    for role in ("reporter", "municipality"):
        headers = bearer(session, role, name=role)
        answer = client.post("/api/v1/subscriptions", headers=headers,
                             json={"client_id": subscriber, "url": "https://example.org/"})
        assert answer.status_code == 403
    assert client.get("/api/v1/subscriptions").status_code == 401


def test_delete_removes_the_subscription_and_its_deliveries(
        dev, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url)
    build_register(session)
    session.commit()
    deliveries.dispatch(session)
    session.commit()
    assert client.delete(f"/api/v1/subscriptions/{created['id']}",
                         headers=sds).status_code == 204
    assert client.get(f"/api/v1/subscriptions/{created['id']}",
                      headers=sds).status_code == 404
    assert client.delete(f"/api/v1/subscriptions/{created['id']}",
                         headers=sds).status_code == 404
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


# --- SSRF -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook",
    "https://localhost/hook",  # a name that resolves to loopback
    "https://10.1.2.3/hook",
    "https://192.168.1.10/hook",
    "https://172.16.0.1/hook",
    "https://169.254.169.254/latest/meta-data",  # link-local: the cloud metadata service
    "https://100.64.0.1/hook",  # shared address space (CGNAT)
    "https://224.0.0.1/hook",  # multicast
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://[::ffff:10.0.0.1]/hook",
])
def test_a_private_address_is_refused_outside_development(
        client, session, sds, subscriber, url):
    answer = client.post("/api/v1/subscriptions", headers=sds,
                         json={"client_id": subscriber, "url": url})
    assert answer.status_code == 400, answer.get_json()
    assert "SOR_WEBHOOK_ALLOW_PRIVATE" in answer.get_json()["message"]
    assert session.scalar(select(func.count()).select_from(WebhookSubscription)) == 0


def test_plain_http_is_refused_outside_development(app, client, session, sds, subscriber):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True  # the address is not what is refused here
    answer = client.post("/api/v1/subscriptions", headers=sds,
                         json={"client_id": subscriber, "url": "http://127.0.0.1:9/hook"})
    assert answer.status_code == 400 and "https://" in answer.get_json()["message"]
    allowed = client.post("/api/v1/subscriptions", headers=sds,
                          json={"client_id": subscriber, "url": "https://127.0.0.1:9/hook"})
    assert allowed.status_code == 201


def test_an_address_refused_at_delivery_fails_for_good_and_pauses(
        dev, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url)
    receiver.secret = created["secret"]
    build_register(session)
    session.commit()
    dev.config["WEBHOOK_ALLOW_PRIVATE"] = False  # the rules changed since (or the DNS did)
    result = _worker(dev, session).run_once()
    assert (result.delivered, result.failed) == (0, 1)
    assert receiver.requests == []
    subscription = session.get(WebhookSubscription, created["id"])
    session.refresh(subscription)
    assert subscription.status == "paused" and "127.0.0.1" in subscription.paused_reason


def test_the_url_rules_and_the_signature_without_the_app():
    with pytest.raises(UnsafeUrl, match="https://"):
        resolve("http://127.0.0.1/", development=False, allow_private=True)
    with pytest.raises(UnsafeUrl, match="resolves to"):
        resolve("http://localhost/", development=True, allow_private=False)
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        resolve("https://no-such-host.invalid/", development=False, allow_private=False)
    target = resolve("http://127.0.0.1:8080/a/b?c=d", development=True, allow_private=True)
    assert (target.address, target.port, target.path) == ("127.0.0.1", 8080, "/a/b?c=d")
    # Stripe's scheme: t=<unix>,v1=hex(HMAC-SHA256(secret, f"{t}.{body}")).
    expected = hmac.new(b"whsec_test", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign("whsec_test", 1700000000, b'{"a":1}') == f"t=1700000000,v1={expected}"
    assert verify("whsec_test", f"t=1700000000,v1={expected}", b'{"a":1}', now=1700000000)
    assert not verify("whsec_test", sign("whsec_test", 1700000000, b"{}"), b"{}",
                      now=1700000000 + 3600)  # too old


def test_the_command_runs_a_round(dev, runner, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url, under=PRIVATE_IE)
    receiver.secret = created["secret"]
    build_register(session)
    session.commit()
    result = runner.invoke(args=["deliver-webhooks"])
    assert result.exit_code == 0, result.output
    assert "Queued 2, delivered 2." in result.output
    assert {r.entry["sor_code"] for r in receiver.accepted()} == {PRIVATE_IE, PRIVATE_SI}


def test_matches_judges_the_entry_as_shown():
    entry = {"sor_code": "3", "organisation": {
        "ownership": "kommunal", "level": "OE", "cvr": AARHUS_CVR,
        "address": {"municipality_code": AARHUS}, "parent_sor_code": "2",
        "institution_sor_code": "2", "owner_sor_code": "1"}}
    assert subscriptions.matches({}, entry, None)
    assert subscriptions.matches({"under": "1", "level": "OE"}, entry, None)
    assert subscriptions.matches({"under": "9"}, entry, "/1/9/2/3/")  # deeper units
    assert not subscriptions.matches({"under": "9"}, entry, "/1/2/3/")
    assert not subscriptions.matches({"municipality": "0461"}, entry, None)
    assert not subscriptions.matches({"ownership": "privat"}, entry, None)
    assert not subscriptions.matches({"cvr": PRIVATE_CVR}, entry, None)


def test_a_worker_told_to_stop_finishes_the_delivery_in_hand_and_puts_the_rest_back(
        dev, client, session, sds, subscriber, receiver):
    for _ in range(3):  # three subscriptions: three deliveries claimed in one batch
        receiver.secret = _subscribe(client, sds, subscriber, receiver.url,
                                     level="SI", under=PRIVATE_IE)["secret"]
    # One secret for all three: the receiver checks with the last; give them all that.
    secret = receiver.secret
    session.query(WebhookSubscription).update({"secret": secret})
    build_register(session)
    session.commit()
    worker = _worker(dev, session)
    receiver.on_request = worker.stop.set  # SIGTERM's effect, as the first one arrives
    stopped = worker.run_once()
    assert (stopped.delivered, stopped.released) == (1, 2)
    assert session.scalar(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.status == "queued", WebhookDelivery.attempts == 0)) == 2
    receiver.on_request = lambda: None
    worker.stop.clear()
    assert worker.run_once().delivered == 2
    assert len(receiver.accepted()) == 3


def test_a_revoked_clients_subscriptions_rest(dev, client, session, sds, subscriber,
                                              receiver):
    _subscribe(client, sds, subscriber, receiver.url)
    revoke_client(session, subscriber)
    build_register(session)
    session.commit()
    result = _worker(dev, session).run_once()
    assert (result.queued, result.delivered) == (0, 0) and receiver.requests == []


def test_sigterm_ends_the_daemon_after_the_delivery_under_way(tmp_path, receiver):
    """A real ``deliver-webhooks --loop`` process and a real SIGTERM, sent while the
    receiver holds the first delivery: that one is delivered and recorded, the rest of
    the batch goes back to the queue, the process exits 0. One back end: signals are the
    process's business."""
    url = f"sqlite:///{tmp_path / 'webhooks.db'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                      "SOR_ENV": "development", "WEBHOOK_ALLOW_PRIVATE": True})
    with app.app_context():
        upgrade()
        sds = bearer(db.session, "sds", name="staff")
        subscriber, _ = create_client(db.session, "Region Midt's system", cvr=AARHUS_CVR,
                                      roles=["reporter"])
        db.session.commit()
        client = app.test_client()
        for _ in range(3):  # three subscriptions: three deliveries claimed in one batch
            receiver.secret = _subscribe(client, sds, subscriber.id, receiver.url,
                                         level="SI", under=PRIVATE_IE)["secret"]
        db.session.query(WebhookSubscription).update({"secret": receiver.secret})
        build_register(db.session)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    environment = {**os.environ, "SOR_DATABASE_URL": url, "SOR_ENV": "development",
                   "SOR_WEBHOOK_ALLOW_PRIVATE": "1", "SOR_LOG_FORMAT": "text"}
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("sorregistry")), "deliver-webhooks", "--loop",
         "--interval", "0.2", "--batch", "3"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver.on_request = lambda: daemon.send_signal(signal.SIGTERM)
    try:
        out, err = daemon.communicate(timeout=120)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err and "Queued 3, delivered 1; 2 put back (stopped)." in out
    assert len(receiver.accepted()) == 1
    with app.app_context():
        rows = db.session.execute(select(WebhookDelivery.status, WebhookDelivery.attempts,
                                         WebhookDelivery.claimed_by)).all()
        db.engine.dispose()
    assert sorted((status, attempts) for status, attempts, _ in rows) == [
        ("delivered", 1), ("queued", 0), ("queued", 0)]
    assert all(claimed is None for _, _, claimed in rows)


def test_delivered_deliveries_are_deleted_after_the_days_kept_and_failed_ones_stay(
        dev, client, session, sds, subscriber, receiver):
    created = _subscribe(client, sds, subscriber, receiver.url, under=PRIVATE_IE)
    receiver.secret = created["secret"]
    build_register(session)
    session.commit()
    first = _worker(dev, session).run_once()
    assert (first.delivered, first.pruned) == (2, 0)  # just delivered: kept
    rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.position)).all()
    old, failed = rows
    old.delivered_at = utcnow() - timedelta(days=31)
    failed.status, failed.delivered_at = "failed", utcnow() - timedelta(days=400)
    failed_id = failed.id
    session.commit()
    second = _worker(dev, session).run_once()
    assert second.pruned == 1
    left = session.execute(select(WebhookDelivery.id, WebhookDelivery.status)).all()
    assert [tuple(row) for row in left] == [(failed_id, "failed")]
    assert _worker(dev, session).run_once().pruned == 0

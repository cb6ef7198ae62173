"""Webhook workers racing each other and the register's writers, with real commits on
SQLite and PostgreSQL: every receiver gets each of its entries once, in feed order."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask

from hierarchy import service as register
from hierarchy.webhooks.models import WebhookSubscription
from hierarchy.webhooks.worker import WebhookWorker
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.applications.helpers import AARHUS_CVR, AARHUS_IE, PRIVATE_IE, bearer, build_register
from tests.support.feed import feed
from tests.support.receiver import Receiver

WORKERS = 3
CHANGES = 12


@pytest.fixture
def live_app(fresh_database: str) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "SOR_ENV": "development", "WEBHOOK_ALLOW_PRIVATE": True,
                      "WEBHOOK_RETRY_BASE_SECONDS": 0, "WEBHOOK_RETRY_MAX_SECONDS": 0})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_racing_workers_deliver_each_entry_once_and_in_order(live_app: Flask) -> None:
    receiver = Receiver()
    receiver.up()
    try:
        with live_app.app_context():
            sds = bearer(db.session, "sds", name="staff")
            subscriber, _ = create_client(db.session, "system", cvr=AARHUS_CVR,
                                          roles=["reporter"])
            db.session.commit()
            client = live_app.test_client()
            made = {}
            for name, wanted in (("all", {}), ("owners", {"level": "IE"})):
                answer = client.post("/api/v1/subscriptions", headers=sds, json={
                    "client_id": subscriber.id, "url": f"{receiver.url}&sub={name}",
                    "filter": wanted})
                assert answer.status_code == 201, answer.get_json()
                made[name] = answer.get_json()
            receiver.secret = made["all"]["secret"]
            db.session.query(WebhookSubscription).update(
                {"secret": receiver.secret})
            db.session.commit()
            build_register(db.session)
            db.session.commit()
            db.session.remove()

        done = threading.Event()
        errors: list[BaseException] = []

        def work(number: int) -> None:
            try:
                with live_app.app_context():
                    worker = WebhookWorker.from_app(live_app, db.session, name=f"w{number}",
                                                    batch=3)
                    while True:
                        finished = done.is_set()
                        worker.run_once()
                        if finished:  # one last round after the writers stopped
                            return
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
        for thread in threads:
            thread.start()
        with live_app.app_context():
            for number in range(CHANGES):
                code = (AARHUS_IE, PRIVATE_IE)[number % 2]
                with write_step(db.session()) as session:
                    register.change_organisation(session, code, {"phone": f"7000{number:04d}"},
                                                 source="staff", actor="test")
            db.session.remove()
        done.set()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors
        with live_app.app_context():
            entries = feed(db.session)
            db.session.remove()
    finally:
        receiver.down()
    start = made["all"]["last_position"]
    wanted = {
        "all": [e["position"] for e in entries if e["position"] > start],
        "owners": [e["position"] for e in entries
                   if e["position"] > start and e["organisation"]["level"] == "IE"],
    }
    assert len(wanted["all"]) >= 4 + CHANGES and len(wanted["owners"]) >= 2 + CHANGES
    for name, positions in wanted.items():
        got = [r.position for r in receiver.accepted() if r.path.endswith(f"sub={name}")]
        assert got == positions, name  # each once, in feed order
    assert all(r.verified for r in receiver.requests)

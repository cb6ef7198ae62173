"""Benchmark webhooks: dispatching an import's feed entries and delivering them.

Generates an export (bench/generate_sor_export.py), imports it into a fresh SQLite
database (or PostgreSQL with --postgres), subscribes 1 and then --subscriptions
receivers (every entry each) and measures, side by side in one run:

- dispatch: feed entries turned into deliveries per second, for 1 and for N
  subscriptions (ratio: the cost of a further subscription);
- delivery: deliveries per second to a receiver on 127.0.0.1 (signing, one POST each,
  in position order), and each delivery's time from claim to its recorded 2xx
  (median, p95), with --limit deliveries.

    .venv/bin/python bench/bench_webhooks.py --entities 20000 --subscriptions 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from common import load_generator, postgres_server, say  # noqa: I001 (bench/ on the path)
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import delete, func, select, update

from hierarchy.sor_import import import_sor_file
from hierarchy.webhooks import deliveries, subscriptions
from hierarchy.webhooks.models import WebhookDelivery, WebhookSubscription
from hierarchy.webhooks.worker import WebhookWorker
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.support.receiver import Receiver


def _app(url: str) -> Flask:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                      "SOR_ENV": "development", "WEBHOOK_ALLOW_PRIVATE": True})
    with app.app_context():
        upgrade()
    return app


def _subscribe(app: Flask, client_id: int, url: str, count: int) -> None:
    with app.app_context():
        with write_step(db.session()) as session:
            session.execute(delete(WebhookDelivery))
            session.execute(delete(WebhookSubscription))
            for _ in range(count):
                made, _secret = subscriptions.create(
                    session, app, client_id=client_id, url=url, wanted={}, actor="bench")
                made.secret = "whsec_bench"
            session.execute(update(WebhookSubscription).values(last_position=0))
        db.session.remove()


def _dispatch_all(app: Flask) -> tuple[float, int]:
    with app.app_context():
        started = time.perf_counter()
        queued, more = 0, True
        while more:
            with write_step(db.session()) as session:
                done = deliveries.dispatch(session, limit=1000)
            queued += done.queued
            more = done.more
        elapsed = time.perf_counter() - started
        db.session.remove()
    return elapsed, queued


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=20000)
    p.add_argument("--subscriptions", type=int, default=10)
    p.add_argument("--limit", type=int, default=500, help="deliveries timed")
    p.add_argument("--postgres", action="store_true")
    a = p.parse_args(argv)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-wh-")))
        export = work / "export.xml"
        load_generator().generate(export, a.entities, seed=1)
        if a.postgres:
            server = stack.enter_context(postgres_server(work / "pg"))
            url = server.create_database("bench_webhooks")
        else:
            url = f"sqlite:///{work / 'register.db'}"
        app = _app(url)
        receiver = Receiver()
        receiver.secret = "whsec_bench"
        receiver.up()
        stack.callback(receiver.down)
        with app.app_context():
            with write_step(db.session()) as session:
                import_sor_file(session, export, actor="bench")
                client, _ = create_client(session, "bench", cvr="29190909",
                                          roles=["reporter"])
                client_id = client.id
            entries = db.session.scalar(select(func.count()).select_from(
                db.metadata.tables["feed_entries"]))
            db.session.remove()
        say(f"{entries} feed entries ({a.entities} generated), "
            f"{'PostgreSQL' if a.postgres else 'SQLite'}")
        rates = {}
        for count in (1, a.subscriptions):
            _subscribe(app, client_id, receiver.url, count)
            elapsed, queued = _dispatch_all(app)
            rates[count] = entries / elapsed
            say(f"dispatch, {count:>3} subscription(s): {queued} deliveries in "
                f"{elapsed:.2f} s = {rates[count]:,.0f} entries/s")
        say(f"ratio entries/s 1 : {a.subscriptions} subscriptions = "
            f"{rates[1] / rates[a.subscriptions]:.2f}")
        _subscribe(app, client_id, receiver.url, 1)
        _dispatch_all(app)
        times: list[float] = []
        with app.app_context():
            worker = WebhookWorker.from_app(app, db.session, name="bench", batch=1, limit=1)
            started = time.perf_counter()
            for _ in range(a.limit):
                begin = time.perf_counter()
                if worker.run_once().delivered != 1:
                    break
                times.append(time.perf_counter() - begin)
            elapsed = time.perf_counter() - started
        times_ms = sorted(t * 1000 for t in times)
        p95 = times_ms[int(len(times_ms) * 0.95) - 1]
        say(f"delivery: {len(times)} in {elapsed:.2f} s = {len(times) / elapsed:,.0f}/s; "
            f"a round of one delivery median {statistics.median(times_ms):.1f} ms, "
            f"p95 {p95:.1f} ms")
        assert len(receiver.accepted()) == len(times)
        assert all(r.verified for r in receiver.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The feed under concurrent writers, over real HTTP, on SQLite and PostgreSQL: a poller
never misses nor repeats an entry, and a long-polling client hears of an approval at once."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from hierarchy import service
from hierarchy.models import Organisation
from sorregistry import create_app
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.applications.helpers import bearer, build_register
from tests.support.feed import (
    LiveRegister,
    Poller,
    feed,
    http_json,
    latest_items,
    live_register,
    serve,
)

ROUNDS = 5
APPROVALS_PER_ROUND = 4


def _run_at_once(jobs: list[Callable[[], Any]]) -> None:
    """Run *jobs* in threads released together; raise the first error."""
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def _staff_change(live: LiveRegister, code: str, round_: int) -> None:
    with live.app.app_context():
        with write_step(db.session()) as session:
            service.change_organisation(session, code, {"phone": f"7000{round_:04d}"},
                                        source="staff", actor="test")
        db.session.remove()


def test_a_poller_racing_writers_never_misses_nor_repeats_an_entry(fresh_database, tmp_path):
    with live_register(fresh_database, tmp_path,
                       applications=ROUNDS * APPROVALS_PER_ROUND) as live:
        owners = [item["sor_code"] for item in live.get("/api/v1/changes", limit=50)["items"]
                  if item["organisation"]["level"] == "IE"]
        # One poller in small pages (cut inside commits), one in large ones.
        pollers = [Poller(live, limit=7, wait=0.5), Poller(live, limit=1000, wait=2)]
        for poller in pollers:
            poller.start()
        pending = list(live.applications)
        for round_ in range(ROUNDS):
            batch = [pending.pop() for _ in range(APPROVALS_PER_ROUND)]
            jobs: list[Callable[[], Any]] = [lambda a=a: live.approve(a) for a in batch]
            jobs.append(lambda r=round_: live.reimport(live.changed if r % 2 == 0
                                                       else live.plain))
            jobs.append(lambda r=round_: _staff_change(live, owners[r % len(owners)], r))
            _run_at_once(jobs)
        seen = [poller.finish() for poller in pollers]
        with live.app.app_context():
            everything = feed(db.session)
            db.session.remove()
    positions = [entry["position"] for entry in everything]
    assert positions == sorted(set(positions))
    for entries in seen:
        # In order, none twice, none missed: exactly the feed as it stands at the end.
        assert [entry["position"] for entry in entries] == positions
        assert [(e["sor_code"], e["change"]) for e in entries] == \
            [(e["sor_code"], e["change"]) for e in everything]
    kinds = {entry["change"] for entry in everything}
    assert {"created", "changed", "closed"} <= kinds
    assert any(entry["inherited"] for entry in everything)
    assert len(latest_items(everything)) > 600


def test_a_long_polling_client_hears_of_an_approval_within_a_second(fresh_database, tmp_path):
    with live_register(fresh_database, tmp_path, applications=3, entities=200) as live:
        page = {"more": True, "next": None}
        while page["more"]:
            page = live.get("/api/v1/changes", after=page["next"], limit=1000)
        cursor = page["next"]
        for application_id in live.applications:
            heard: dict[str, Any] = {}

            def listen(after: str = cursor, heard: dict[str, Any] = heard) -> None:
                heard["page"] = live.get("/api/v1/changes", after=after, wait=20)
                heard["at"] = time.monotonic()

            listener = threading.Thread(target=listen)
            asked = time.monotonic()
            listener.start()
            time.sleep(0.5)  # it is waiting now
            approved = live.approve(application_id)
            committed = time.monotonic()  # the answer comes after the commit
            listener.join(timeout=30)
            codes = [item["sor_code"] for item in heard["page"]["items"]]
            assert approved["sor_code"] in codes
            assert heard["at"] - asked >= 0.5  # held until the approval ...
            assert heard["at"] - committed < 1.0  # ... and answered at once after it
            cursor = heard["page"]["next"]


class _Places(threading.BoundedSemaphore):
    """The feed's one place for a waiting request, telling when it is taken."""

    def __init__(self) -> None:
        super().__init__(1)
        self.taken = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        got = super().acquire(blocking, timeout)
        if got:
            self.taken.set()
        return got


def test_a_worker_holds_only_so_many_long_polls_and_turns_more_away_at_once(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        build_register(db.session)
        reporter = bearer(db.session, "reporter", name="Mirror")
        db.session.commit()
        db.session.remove()
    places = _Places()
    app.extensions["sor.feed.waiting"] = places  # the route's, watched
    with serve(app, threads=4) as url:

        def changes(after: str, wait: float) -> tuple[Any, str | None]:
            query = urllib.parse.urlencode({"after": after, "wait": wait, "limit": 1000})
            request = urllib.request.Request(f"{url}/api/v1/changes?{query}",
                                             headers=reporter)
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read()), response.headers.get("Retry-After")

        end = http_json("GET", f"{url}/api/v1/changes?limit=1000", reporter)["next"]
        held: list[Any] = []
        first = threading.Thread(target=lambda: held.append(changes(end, 20)))
        first.start()
        assert places.taken.wait(10)  # the first holds the only place
        page, retry_after = changes(end, 20)  # answered at once, not in 20 s
        assert retry_after == "1"
        assert page == {"items": [], "next": end, "more": False}
        assert first.is_alive() and not held
        with app.app_context():
            with write_step(db.session()) as session:
                code = session.scalars(select(Organisation.sor_code).limit(1)).first()
                service.change_organisation(session, code, {"phone": "70707070"},
                                            source="staff", actor="test")
            db.session.remove()
        first.join(timeout=30)
    with app.app_context():
        db.engine.dispose()  # the pool's connections, before the database goes
    woken, retry_after = held[0]
    assert woken["items"] and woken["items"][0]["sor_code"] == code  # (and inherited)
    assert retry_after is None

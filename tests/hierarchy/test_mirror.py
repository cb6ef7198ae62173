"""The mirror test (issue 13's "must show"), on SQLite and PostgreSQL, over real HTTP: the
example client (examples/mirror.py) seeds from the NDJSON export, then follows the feed
while 12 approvals, a change application altering the phone its units inherit, and a
re-import of a changed export run at once; at the end the mirror is a fresh export, byte
for byte."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from typing import Any

from applications import service as applications_service
from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.models import Organisation
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.applications.helpers import EXISTING_SI
from tests.hierarchy.test_feed_live import _run_at_once
from tests.support.feed import LiveRegister, live_register, mirror_module

NEW_PHONE = "87139999"
UNITS = [ids.make_sor_code(93_000_001 + n) for n in range(4)]


def _units_inheriting_the_phone(live: LiveRegister) -> int:
    """Units under the nursing home, with no phone of their own; a change application of
    the home's phone, submitted. Its id."""
    with live.app.app_context():
        with write_step(db.session()) as session:
            for n, code in enumerate(UNITS):
                service.create_organisation(session, code, {
                    "level": "OE", "parent_sor_code": EXISTING_SI, "name": f"Afsnit {n}"},
                    source="staff", actor="test")
            actor = applications_service.Actor(name="Aarhus", roles=("municipality",),
                                               municipality_code="0751", cvr="55133018")
            change = applications_service.create_application(session, actor, {
                "kind": "change", "target_sor_code": EXISTING_SI,
                "contact_email": "sor@aarhus.dk", "phone": NEW_PHONE})
            applications_service.submit_application(session, actor, change.id)
            application_id = change.id
        with write_step(db.session()) as session:
            inherited = [session.get(Organisation, code).effective["phone"] for code in UNITS]
        db.session.remove()
    assert NEW_PHONE not in inherited
    return application_id


def _export(live: LiveRegister) -> tuple[bytes, list[bytes]]:
    request = urllib.request.Request(f"{live.url}/api/v1/export/register.ndjson",
                                     headers=live.reporter)
    with urllib.request.urlopen(request, timeout=120) as answer:
        first, *lines = answer.read().splitlines(keepends=True)
    return first, lines


def test_a_mirror_seeded_from_an_export_and_following_the_feed_equals_a_fresh_export(
        fresh_database, tmp_path):
    with live_register(fresh_database, tmp_path, applications=12) as live:
        change_id = _units_inheriting_the_phone(live)
        token = live.reporter["Authorization"].removeprefix("Bearer ")
        mirror = mirror_module().Mirror(live.url, token)
        seeded = mirror.seed()
        assert seeded > 600

        stop = threading.Event()
        failed: list[BaseException] = []

        def follow() -> None:
            try:
                mirror.follow(wait=1.0, stop=stop, state=tmp_path / "mirror.ndjson")
            except BaseException as exc:  # reported below
                failed.append(exc)

        follower = threading.Thread(target=follow)
        follower.start()
        jobs: list[Callable[[], Any]] = [lambda a=a: live.approve(a) for a in live.applications]
        jobs.append(lambda: live.approve(change_id))
        jobs.append(lambda: live.reimport(live.changed))
        _run_at_once(jobs)
        stop.set()
        follower.join(timeout=120)
        assert not follower.is_alive() and not failed, failed
        mirror.catch_up()  # what arrived after the follower's last page

        first, fresh = _export(live)
        assert b"".join(mirror.lines()) == b"".join(fresh)
        assert mirror.applied > 12 + len(UNITS)
        # Nothing is past the mirror's cursor, and the file it saved is the register too.
        assert mirror.poll()["items"] == []
        saved = mirror_module().Mirror(live.url, token)
        saved.load(tmp_path / "mirror.ndjson")
        saved.catch_up()
        assert list(saved.lines()) == fresh

    # The units' inherited phone reached the mirror through entries of their own.
    for code in UNITS:
        assert mirror.organisations[code]["phone"] == NEW_PHONE
    approved = {item["name"] for item in mirror.organisations.values()}
    assert {f"Plejehjem nr. {n}" for n in range(12)} <= approved

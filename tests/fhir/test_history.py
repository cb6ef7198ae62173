"""Read, vread and history (ITI-91) on the register's versions."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from hierarchy import identifiers as ids
from hierarchy import service
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from tests.applications.helpers import AARHUS_IE, build_register
from tests.fhir.conftest import FOOT_CLINIC, FOOT_THERAPIST
from tests.support.fhir import ValidatingClient


def _get(client, headers, path, status=200):
    response = client.get(path, headers=headers)
    assert response.status_code == status, response.get_json()
    return response


def _phone(resource):
    return next(t["value"] for t in resource["telecom"] if t["system"] == "phone")


def _stamp(moment):
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_read_is_versioned_and_conditional(client, register, reader):
    response = _get(client, reader, f"/fhir/Organization/{FOOT_CLINIC}")
    assert response.headers["Content-Location"].endswith(
        f"/fhir/Organization/{FOOT_CLINIC}/_history/1")
    assert response.headers["Last-Modified"].endswith("GMT")
    again = client.get(f"/fhir/Organization/{FOOT_CLINIC}",
                       headers={**reader, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_vread_shows_a_version_as_it_was(client, register, reader):
    # The therapist (OE) inherits the clinic's phone; the clinic's phone changes, then the
    # therapist's own name (its version 2).
    service.change_organisation(register, FOOT_CLINIC, {"phone": "70707070"},
                                source="staff", actor="test")
    service.change_organisation(register, FOOT_THERAPIST, {"name": "Trine B. Fodterapeut"},
                                source="staff", actor="test")
    register.commit()
    now = _get(client, reader, f"/fhir/Organization/{FOOT_THERAPIST}").get_json()
    assert now["meta"]["versionId"] == "2" and now["name"] == "Trine B. Fodterapeut"
    assert _phone(now) == "70707070"
    first = _get(client, reader, f"/fhir/Organization/{FOOT_THERAPIST}/_history/1").get_json()
    assert first["meta"]["versionId"] == "1" and first["name"] == "Trine Baadsgaard"
    assert _phone(first) == "29439846"  # the clinic's phone when version 1 was recorded
    assert first["meta"]["lastUpdated"] < now["meta"]["lastUpdated"]
    assert first["partOf"] == now["partOf"] == {"reference": f"Organization/{FOOT_CLINIC}"}
    current = _get(client, reader, f"/fhir/Organization/{FOOT_THERAPIST}/_history/2")
    assert current.get_json() == now
    clinic = _get(client, reader, f"/fhir/Location/{FOOT_CLINIC}/_history/1").get_json()
    assert _phone(clinic) == "29439846" and clinic["meta"]["versionId"] == "1"
    _get(client, reader, f"/fhir/Organization/{FOOT_THERAPIST}/_history/3", 404)
    _get(client, reader, f"/fhir/Location/{FOOT_THERAPIST}/_history/1", 404)


def test_instance_history_newest_first_creation_a_post(client, register, reader):
    closing = date.today() - timedelta(days=1)
    service.change_organisation(register, FOOT_CLINIC, {"phone": "11111111"},
                                source="staff", actor="test")
    service.close_organisation(register, FOOT_CLINIC, closing, source="staff", actor="test")
    register.commit()
    bundle = _get(client, reader, f"/fhir/Organization/{FOOT_CLINIC}/_history").get_json()
    assert bundle["type"] == "history" and bundle["total"] == 3
    versions = [e["resource"]["meta"]["versionId"] for e in bundle["entry"]]
    assert versions == ["3", "2", "1"]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]
    assert bundle["entry"][-1]["request"]["url"] == "Organization"
    assert bundle["entry"][0]["request"]["url"] == f"Organization/{FOOT_CLINIC}"
    assert bundle["entry"][0]["response"]["etag"] == 'W/"3"'
    closure = bundle["entry"][0]["resource"]
    assert closure["active"] is False  # the closure is a version, inactive
    assert [e["resource"]["active"] for e in bundle["entry"][1:]] == [True, True]
    since = bundle["entry"][1]["resource"]["meta"]["lastUpdated"]
    recent = _get(client, reader,
                  f"/fhir/Organization/{FOOT_CLINIC}/_history?_since={since}").get_json()
    assert [e["resource"]["meta"]["versionId"] for e in recent["entry"]] == ["3", "2"]
    located = _get(client, reader, f"/fhir/Location/{FOOT_CLINIC}/_history").get_json()
    assert [e["resource"]["status"] for e in located["entry"]] == ["inactive", "active",
                                                                  "active"]
    _get(client, reader, f"/fhir/Organization/{ids.make_sor_code(999)}/_history", 404)


def _walk(client, headers, url):
    """Every entry of a history, following its next links; the pages' sizes."""
    entries, sizes = [], []
    while url:
        bundle = _get(client, headers, url.replace("http://localhost", "")).get_json()
        entries += bundle.get("entry", [])
        sizes.append(len(bundle.get("entry", [])))
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return entries, sizes


def test_type_history_since_an_instant(client, register, reader):
    moment = datetime.now(UTC)
    time.sleep(0.01)
    new = ids.make_sor_code(241)
    service.create_organisation(register, new, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Nyt",
        "entity_type": "42665001"}, source="application", actor="test")
    service.change_organisation(register, FOOT_CLINIC, {"name": "Fodklinikken"},
                                source="staff", actor="test")
    register.commit()
    entries, _ = _walk(client, reader, f"/fhir/Organization/_history?_since={_stamp(moment)}")
    assert [(e["resource"]["id"], e["request"]["method"]) for e in entries] == [
        (new, "POST"), (FOOT_CLINIC, "PUT")]  # oldest first
    locations, _ = _walk(client, reader, f"/fhir/Location/_history?_since={_stamp(moment)}")
    assert [e["fullUrl"].split("/fhir/")[1] for e in locations] == [
        f"Location/{new}", f"Location/{FOOT_CLINIC}"]
    everything, sizes = _walk(client, reader, "/fhir/Organization/_history?_count=5")
    assert len(everything) == 17 + 2 and max(sizes) == 5  # every version, paged


def test_type_history_pages_reach_what_is_written_meanwhile(client, register, reader):
    moment = datetime.now(UTC)
    time.sleep(0.01)
    first = ids.make_sor_code(242)
    service.create_organisation(register, first, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Et",
        "entity_type": "42665001"}, source="application", actor="test")
    register.commit()
    page = _get(client, reader,
                f"/fhir/Organization/_history?_since={_stamp(moment)}&_count=1").get_json()
    assert [e["resource"]["id"] for e in page["entry"]] == [first]
    assert not any(link["relation"] == "next" for link in page["link"])
    second = ids.make_sor_code(243)
    service.create_organisation(register, second, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter To",
        "entity_type": "42665001"}, source="application", actor="test")
    register.commit()
    two = _get(client, reader,
               f"/fhir/Organization/_history?_since={_stamp(moment)}&_count=1").get_json()
    following = next(link["url"] for link in two["link"] if link["relation"] == "next")
    third = ids.make_sor_code(244)  # written while the client pages
    service.create_organisation(register, third, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Tre",
        "entity_type": "42665001"}, source="application", actor="test")
    register.commit()
    rest, _ = _walk(client, reader, following)
    assert [e["resource"]["id"] for e in rest] == [second, third]


def test_type_history_pages_in_commit_order_not_insert_order(fresh_database, backend):
    """A transaction that commits after a page was read is reached by its next link, even
    when its version was inserted before the ones the page showed (positions, not ids)."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: no two write transactions in flight")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    app.test_client_class = ValidatingClient
    with app.app_context():
        build_register(db.session)
        _, token = create_client(db.session, "FHIR reader", cvr="35095748", roles=["reporter"])
        db.session.commit()
        reader = {"Authorization": f"Bearer {token}"}
        moment = datetime.now(UTC)
        time.sleep(0.01)
        early_session, late_session = db.session.session_factory(), db.session.session_factory()
        early, late, last = (ids.make_sor_code(n) for n in (245, 246, 247))
        for session, code, name in ((early_session, early, "Indsat først"),
                                    (late_session, late, "Indsat sidst"),
                                    (late_session, last, "Indsat til sidst")):
            service.create_organisation(session, code, {"level": "IE", "name": name},
                                        source="staff", actor="test")
        late_session.commit()  # the later inserts commit first ...
        client = app.test_client()
        page = _get(client, reader,
                    f"/fhir/Organization/_history?_since={_stamp(moment)}&_count=1").get_json()
        assert [e["resource"]["id"] for e in page["entry"]] == [late]
        following = next(link["url"] for link in page["link"] if link["relation"] == "next")
        early_session.commit()  # ... the earlier insert while the client pages
        rest, _ = _walk(client, reader, following)
        assert [e["resource"]["id"] for e in rest] == [last, early]
        early_session.close()
        late_session.close()
        db.session.remove()
        db.engine.dispose()


def _versions_by_history(client, headers, since):
    """(id, versionId) -> resource of every entry of the type-level history since *since*."""
    entries, _ = _walk(client, headers, f"/fhir/Organization/_history?_since={_stamp(since)}")
    return {(e["resource"]["id"], e["resource"]["meta"]["versionId"]): e["resource"]
            for e in entries}


def test_type_history_shows_each_version_as_recorded(client, register, reader):
    """The entries are read with the versions' feed entries (one statement a page); each is
    its version as the register held it when recorded - a vread's rebuild from the snapshot
    - also where an ancestor changed after it; a version without a feed entry (recorded
    before the feed, migration 0016) is rebuilt from its snapshot and shown alike."""
    moment = datetime.now(UTC)
    time.sleep(0.01)
    service.change_organisation(register, FOOT_THERAPIST, {"name": "Trine B. Fodterapeut"},
                                source="staff", actor="test")
    service.change_organisation(register, FOOT_CLINIC, {"phone": "70707070"},
                                source="staff", actor="test")  # inherited by the therapist
    service.change_organisation(register, FOOT_THERAPIST, {"name": "Trine Fodterapeut"},
                                source="staff", actor="test")
    register.commit()
    shown = _versions_by_history(client, reader, moment)
    assert sorted(shown) == [(FOOT_CLINIC, "2"), (FOOT_THERAPIST, "2"), (FOOT_THERAPIST, "3")]
    assert _phone(shown[(FOOT_THERAPIST, "2")]) == "29439846"  # the clinic's phone then
    assert _phone(shown[(FOOT_THERAPIST, "3")]) == "70707070"
    for (code, version), resource in shown.items():
        if version != "3":  # an older version: the vread rebuilds it from its snapshot
            assert resource == _get(client, reader,
                                    f"/fhir/Organization/{code}/_history/{version}").get_json()
    # The therapist's version 2 as a register migrated from before the feed has it.
    deleted = register.execute(text(
        "DELETE FROM feed_entries WHERE (commit_id, commit_seq) IN (SELECT commit_id, "
        "commit_seq FROM organisation_versions WHERE sor_code = :code AND version = 2)"),
        {"code": FOOT_THERAPIST})
    assert deleted.rowcount == 1
    register.commit()
    again = _versions_by_history(client, reader, moment)
    assert again == shown

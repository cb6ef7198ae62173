"""The audit log: what is recorded, who may read it, the CSV export, and that it is
append-only in the database itself."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from applications import service
from sorregistry import audit
from tests.applications.helpers import (
    AARHUS,
    AARHUS_CVR,
    ODENSE,
    ODENSE_CVR,
    bearer,
    new_nursing_home,
)
from tests.pages.helpers import login, post

SDS = "sagsbehandler@sundhedsdata.dk"


@pytest.fixture
def tokens(session, people):
    return {"sds": bearer(session, "sds", name="sds"),
            "reporter": bearer(session, "reporter", name="reporter")}


def test_logins_failures_and_logouts_are_recorded_with_the_request_id(client, session, people):
    login(client, SDS, password="wrong password")
    answer = login(client, SDS)
    post(client, "/logout", page="/staff/")
    events = audit.list_events(session)
    assert [e.action for e in events] == ["logout", "login", "login_failed"]
    assert {e.actor_name for e in events} == {SDS}
    assert all(e.request_id and len(e.request_id) >= 8 for e in events)
    assert answer.headers["X-Request-Id"] == events[1].request_id


def test_a_sane_request_id_from_the_proxy_is_kept(client, people):
    answer = client.get("/login", headers={"X-Request-Id": "edge-1234abcd"})
    assert answer.headers["X-Request-Id"] == "edge-1234abcd"
    forged = client.get("/login", headers={"X-Request-Id": "<script>alert(1)</script>"})
    assert forged.headers["X-Request-Id"] != "<script>alert(1)</script>"


def test_commands_are_recorded_as_the_system(runner, session):
    session.commit()  # the command's own transaction follows the test's
    result = runner.invoke(args=["create-client", "Form", "--cvr", "55133018",
                                 "--role", "reporter"])
    assert result.exit_code == 0, result.output
    (event,) = audit.list_events(session, actions=["client_created"])
    assert event.actor_kind == "system" and event.details["name"] == "Form"


def test_staff_read_and_export_it_others_may_not(client, session, tokens):
    audit.record(session, "login", audit.Actor("user", "7", "a@b.dk"), details={"x": "æø"})
    assert client.get("/api/v1/audit", headers=tokens["reporter"]).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401
    page = client.get("/api/v1/audit?action=login", headers=tokens["sds"]).json
    assert page["items"][0]["actor_name"] == "a@b.dk"
    assert page["items"][0]["details"] == {"x": "æø"}
    exported = client.get("/api/v1/audit.csv", headers=tokens["sds"])
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows and set(rows[0]) >= {"id", "at", "action", "actor_name", "request_id"}
    assert any(row["actor_name"] == "a@b.dk" and row["details"] == '{"x":"æø"}'
               for row in rows)


def test_the_staff_page_lists_and_exports(client, session, people):
    login(client, SDS)
    page = client.get("/staff/audit/?action=login").get_data(as_text=True)
    assert "Revisionslog" in page and SDS in page
    exported = client.get("/staff/audit/export.csv?action=login").get_data(as_text=True)
    assert exported.startswith("\ufeffid,at,action") and SDS in exported
    post(client, "/logout", page="/staff/")
    login(client, "sor@aarhus.dk")
    assert client.get("/staff/audit/").status_code == 403


def test_the_database_refuses_to_change_or_delete_an_event(session):
    audit.record(session, "login", audit.Actor.system())
    for statement in ("UPDATE audit_events SET action = 'logout'", "DELETE FROM audit_events"):
        with pytest.raises(DatabaseError, match="append-only"):
            with session.begin_nested():
                session.execute(text(statement))


def _reads(session) -> list[audit.AuditEvent]:
    return audit.list_events(session, actions=["other_municipality_read"])


def _application(session, municipality_code: str, name: str) -> int:
    actor = service.Actor(name="test", roles=("municipality",),
                          municipality_code=municipality_code,
                          cvr=AARHUS_CVR if municipality_code == AARHUS else ODENSE_CVR)
    created = service.create_application(session, actor, new_nursing_home(
        institution_name=name, contact_email="sor@aarhus.dk"))
    service.submit_application(session, actor, created.id)
    return created.id


@pytest.fixture
def applications(session, people):
    made = {"aarhus": _application(session, AARHUS, "Plejecenter Aarhus"),
            "odense": _application(session, ODENSE, "Plejecenter Odense")}
    session.commit()  # a refused request rolls back: what the test made must outlive it
    return made


def test_staff_reading_a_municipality_s_application_is_recorded_once(client, session, tokens,
                                                                     applications):
    url = f"/api/v1/applications/{applications['aarhus']}"
    answer = client.get(url, headers=tokens["sds"])
    assert answer.status_code == 200
    (event,) = _reads(session)
    assert event.actor_kind == "client" and event.actor_name.endswith(" sds")
    assert event.municipality_code == AARHUS
    assert event.target == f"application {answer.json['reference']}"
    assert event.request_id == answer.headers["X-Request-Id"]
    assert event.details["municipalities"] == [AARHUS]
    # A list of both municipalities' applications: one event for the request, naming both.
    listed = client.get("/api/v1/applications", headers=tokens["sds"])
    assert listed.json["total"] == 2
    newest = _reads(session)[0]
    assert len(_reads(session)) == 2
    assert newest.details["municipalities"] == sorted([AARHUS, ODENSE])
    assert len(newest.details["targets"]) == 2 and newest.municipality_code is None
    # Validating and an unknown application: the first is a read, the second showed nothing.
    assert client.post(url + "/validate", headers=tokens["sds"]).status_code == 200
    assert client.get("/api/v1/applications/999999", headers=tokens["sds"]).status_code == 404
    assert len(_reads(session)) == 3


def test_a_municipality_reading_its_own_is_never_recorded(client, session, people,
                                                          applications):
    aarhus = bearer(session, "municipality", name="Aarhus")
    assert client.get(f"/api/v1/applications/{applications['aarhus']}",
                      headers=aarhus).status_code == 200
    assert client.get("/api/v1/applications", headers=aarhus).json["total"] == 1
    # Another's is a 404 (the service's rule): nothing read, nothing recorded.
    assert client.get(f"/api/v1/applications/{applications['odense']}",
                      headers=aarhus).status_code == 404
    login(client, "sor@aarhus.dk")
    assert client.get("/municipality/").status_code == 200
    assert client.get(f"/municipality/applications/{applications['aarhus']}").status_code == 200
    assert _reads(session) == []


def test_staff_pages_record_the_person(client, session, people, applications):
    login(client, SDS)
    assert client.get(f"/staff/applications/{applications['odense']}").status_code == 200
    (event,) = _reads(session)
    assert (event.actor_kind, event.actor_id) == ("user", str(people["sds"].id))
    assert event.municipality_code == ODENSE
    assert client.get("/staff/").status_code == 200
    assert _reads(session)[0].details["municipalities"] == sorted([AARHUS, ODENSE])
    assert len(_reads(session)) == 2


def _decisions(session) -> list[audit.AuditEvent]:
    return audit.list_events(session, actions=[
        "application_submitted", "information_requested", "application_rejected",
        "application_withdrawn", "application_approved"])


def test_the_workflow_s_decisions_are_audit_events_with_who_and_why(client, session, tokens,
                                                                    applications):
    # The fixture submitted both (a service actor with no client id: the system).
    submitted = _decisions(session)
    assert {e.action for e in submitted} == {"application_submitted"}
    assert {e.actor_kind for e in submitted} == {"system"}
    assert {e.municipality_code for e in submitted} == {AARHUS, ODENSE}
    aarhus, odense = applications["aarhus"], applications["odense"]
    asked = client.post(f"/api/v1/applications/{aarhus}/request-info",
                        json={"reason": "Mangler CVR"}, headers=tokens["sds"])
    assert asked.status_code == 200
    rejected = client.post(f"/api/v1/applications/{odense}/reject",
                           json={"reason": "Findes allerede"}, headers=tokens["sds"])
    assert rejected.status_code == 200
    newest = _decisions(session)[:2]
    assert [e.action for e in newest] == ["application_rejected", "information_requested"]
    for event, answer, municipality in ((newest[0], rejected, ODENSE),
                                        (newest[1], asked, AARHUS)):
        assert event.actor_kind == "client" and event.actor_name.endswith(" sds")
        assert event.target == f"application {answer.json['reference']}"
        assert event.municipality_code == municipality
        assert event.request_id == answer.headers["X-Request-Id"]
    assert newest[0].details == {"from": "submitted", "to": "rejected",
                                 "reason": "Findes allerede"}
    # A refused step (rejecting what is already rejected) records nothing.
    again = client.post(f"/api/v1/applications/{odense}/reject",
                        json={"reason": "igen"}, headers=tokens["sds"])
    assert again.status_code == 409
    assert len(_decisions(session)) == 4


def test_a_person_deciding_on_a_page_is_the_audit_event_s_user(client, session, people,
                                                               applications):
    login(client, SDS)
    page = f"/staff/applications/{applications['aarhus']}"
    answer = post(client, page + "/reject", {"reason": "Ikke et sundhedstilbud"}, page=page)
    assert answer.status_code == 303
    (event,) = audit.list_events(session, actions=["application_rejected"])
    assert event.actor_kind == "user" and SDS in event.actor_name
    assert event.actor_id is not None and int(event.actor_id) > 0


def test_imports_are_recorded_as_the_system_and_a_refused_one_is_not(runner, session,
                                                                      tmp_path):
    session.commit()
    shak = Path(__file__).parents[2] / "hierarchy" / "demo" / "SHAK_DEMO.TXT"
    result = runner.invoke(args=["import-shak", str(shak)])
    assert result.exit_code == 0, result.output
    (event,) = audit.list_events(session, actions=["register_imported"])
    assert event.actor_kind == "system" and event.target == "SHAK_DEMO.TXT"
    assert event.details["summary"] in result.output
    assert event.details["allow_mass_withdrawal"] is False
    empty = tmp_path / "SHAKCOMPLETE.TXT"
    empty.write_bytes(b"")
    refused = runner.invoke(args=["import-shak", str(empty)])
    assert refused.exit_code == 1
    assert len(audit.list_events(session, actions=["register_imported"])) == 1

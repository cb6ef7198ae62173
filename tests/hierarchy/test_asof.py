"""Reads as of a date (valid time), as recorded at an instant (transaction time), both, and
the batch read - on both back ends."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import event

from hierarchy import identifiers as ids
from hierarchy import service
from sorregistry.accounts.clients import create_client

OWNER = ids.make_sor_code(9000)
CLINIC = ids.make_sor_code(9001)
OTHER_CLINIC = ids.make_sor_code(9002)
UNIT = ids.make_sor_code(9003)
START = date(2015, 1, 1)


def staff(session, sor_code: str, changes: dict) -> None:
    service.change_organisation(session, sor_code, changes, source="staff", actor="test")
    session.commit()  # only a savepoint (tests/support/database.py): a refusal keeps it


def instant() -> datetime:
    """Now, apart from the versions recorded just before and just after."""
    time.sleep(0.02)
    moment = datetime.now(UTC)
    time.sleep(0.02)
    return moment


@pytest.fixture
def tree(session):
    service.create_organisation(session, OWNER, {
        "level": "IE", "name": "Region Test", "entity_type": "550881000005103",
        "first_valid_from": START, "valid_from": START, "phone": "70000001",
        "postal_address": {"street": "Alléen 1", "postal_code": "4000", "city": "Roskilde"},
    }, source="staff", actor="test")
    for sor_code, name in ((CLINIC, "Klinikken"), (OTHER_CLINIC, "Den anden klinik")):
        service.create_organisation(session, sor_code, {
            "level": "SI", "parent_sor_code": OWNER, "name": name, "entity_type": "22232009",
            "first_valid_from": START, "valid_from": START,
        }, source="staff", actor="test")
    service.create_organisation(session, UNIT, {
        "level": "OE", "parent_sor_code": CLINIC, "name": "Gammelt navn",
        "first_valid_from": START, "valid_from": START,
    }, source="staff", actor="test")
    session.commit()
    return session


@pytest.fixture
def auth(session) -> dict[str, str]:
    _, token = create_client(session, "mirror", cvr="35095748", roles=["reporter"])
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def read(client, auth, sor_code=UNIT, **args):
    return client.get(f"/api/v1/organisations/{sor_code}", headers=auth, query_string=args)


# --- valid time ---------------------------------------------------------------------------


def test_on_a_date_reads_the_state_in_force_then(client, tree, auth):
    staff(tree, UNIT, {"name": "Nyt navn", "valid_from": date(2020, 1, 1)})
    before = read(client, auth, on="2018-06-01").get_json()
    assert before["name"] == "Gammelt navn" and before["version"] == 1
    assert before["recorded_at"]
    after = read(client, auth, on="2021-06-01").get_json()
    assert after["name"] == "Nyt navn" and after["valid_from"] == "2020-01-01"
    assert read(client, auth).get_json()["name"] == "Nyt navn"  # now, as before


def test_on_a_date_before_the_organisation_existed_is_404(client, tree, auth):
    response = read(client, auth, on="2014-12-31")
    assert response.status_code == 404
    assert "in force on 2014-12-31" in response.get_json()["message"]


def test_a_closing_cuts_the_open_ended_state_before_it(client, tree, auth):
    staff(tree, UNIT, {"valid_to": date(2023, 1, 1)})
    assert read(client, auth, on="2022-12-31").get_json()["valid_to"] == "2023-01-01"
    assert read(client, auth, on="2023-01-01").status_code == 404  # closing date exclusive
    assert read(client, auth, on="2030-01-01").status_code == 404
    staff(tree, UNIT, {"valid_to": None, "valid_from": date(2025, 1, 1)})  # reopened
    assert read(client, auth, on="2024-06-01").status_code == 404
    assert read(client, auth, on="2025-06-01").get_json()["valid_to"] is None


def test_inherited_values_and_the_tree_as_of_the_date(client, tree, auth):
    staff(tree, OWNER, {"phone": "70000002", "valid_from": date(2020, 1, 1)})
    staff(tree, UNIT, {"parent_sor_code": OTHER_CLINIC, "valid_from": date(2021, 1, 1)})
    then = read(client, auth, on="2018-01-01").get_json()
    assert then["phone"] == "70000001" and "phone" in then["inherited"]
    assert then["parent_sor_code"] == CLINIC and then["institution_sor_code"] == CLINIC
    assert then["address"]["city"] == "Roskilde" and then["ownership"] == "regional"
    later = read(client, auth, on="2022-01-01").get_json()
    assert later["phone"] == "70000002" and later["institution_sor_code"] == OTHER_CLINIC
    assert later["owner_sor_code"] == OWNER


# --- transaction time ---------------------------------------------------------------------


def test_as_recorded_before_and_after_a_change(client, tree, auth):
    before_change = instant()
    staff(tree, UNIT, {"name": "Nyt navn"})
    staff(tree, OWNER, {"phone": "70000009"})
    after_change = instant()
    then = read(client, auth, as_recorded=before_change.isoformat()).get_json()
    assert then["name"] == "Gammelt navn" and then["phone"] == "70000001"
    now = read(client, auth, as_recorded=after_change.isoformat()).get_json()
    assert now["name"] == "Nyt navn" and now["phone"] == "70000009" and now["version"] == 2


def test_as_recorded_before_the_first_version_is_404(client, tree, auth):
    response = read(client, auth, as_recorded="2001-01-01T00:00:00+01:00")
    assert response.status_code == 404
    assert "held no organisation" in response.get_json()["message"]


def test_both_what_the_register_said_then_about_a_date(client, tree, auth):
    said_open = instant()
    staff(tree, UNIT, {"valid_to": date(2023, 1, 1)})
    asked = {"on": "2024-01-01"}
    assert read(client, auth, **asked).status_code == 404
    then = read(client, auth, as_recorded=said_open.isoformat(), **asked)
    assert then.status_code == 200 and then.get_json()["valid_to"] is None


@pytest.mark.parametrize("args, field", [
    ({"as_recorded": "2024-01-01T12:00:00"}, "as_recorded"),  # no offset: which instant?
    ({"as_recorded": "yesterday"}, "as_recorded"),
    ({"on": "2024-02-30"}, "on"),
    ({"on": "2024-01-01T00:00:00+00:00"}, "on"),
])
def test_malformed_moments_are_422(client, tree, auth, args, field):
    response = read(client, auth, **args)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["query"]


# --- the batch ----------------------------------------------------------------------------


def batch(client, auth, **body):
    return client.post("/api/v1/organisations/batch", headers=auth, json=body)


def test_batch_answers_in_order_once_each_and_names_what_is_missing(client, tree, auth):
    unknown = ids.make_sor_code(9999)
    response = batch(client, auth, sor_codes=[UNIT, unknown, OWNER, UNIT, f" {CLINIC} "])
    assert response.status_code == 200
    body = response.get_json()
    assert [i["sor_code"] for i in body["items"]] == [UNIT, OWNER, CLINIC]
    assert body["not_found"] == [unknown]
    assert body["items"][0]["address"]["city"] == "Roskilde"


def test_batch_on_a_date(client, tree, auth):
    staff(tree, UNIT, {"name": "Nyt navn", "valid_from": date(2020, 1, 1)})
    staff(tree, CLINIC, {"valid_to": date(2019, 1, 1)})
    body = batch(client, auth, sor_codes=[CLINIC, UNIT, OWNER], on="2019-06-01").get_json()
    assert [i["sor_code"] for i in body["items"]] == [UNIT, OWNER]
    assert body["items"][0]["name"] == "Gammelt navn"
    assert body["not_found"] == [CLINIC]
    # without a date: as they stand now, the closed one too
    now = batch(client, auth, sor_codes=[CLINIC, UNIT]).get_json()
    assert [i["sor_code"] for i in now["items"]] == [CLINIC, UNIT] and now["not_found"] == []


def test_batch_items_carry_successors(client, tree, auth):
    staff(tree, CLINIC, {"valid_to": date(2019, 1, 1), "replaced_by": [OTHER_CLINIC]})
    body = batch(client, auth, sor_codes=[CLINIC, OTHER_CLINIC]).get_json()
    closed, successor = body["items"]
    assert [s["sor_code"] for s in closed["successors"]] == [OTHER_CLINIC]
    assert successor["replaces"] == [CLINIC] and "successors" not in successor


@pytest.mark.parametrize("body, where", [
    ({"sor_codes": []}, "sor_codes"),
    ({"sor_codes": [OWNER] * 501}, "sor_codes"),
    ({"sor_codes": [OWNER, "12345", "abc"]}, "sor_codes"),
    ({"sor_codes": OWNER}, "sor_codes"),
    ({"sor_codes": [OWNER], "on": "someday"}, "on"),
    ({"sor_codes": [OWNER], "as_recorded": "2024-01-01T00:00:00"}, "as_recorded"),
    ({}, "sor_codes"),
])
def test_batch_refuses_bad_input(client, tree, auth, body, where):
    response = batch(client, auth, **body)
    assert response.status_code == 422
    assert where in response.get_json()["errors"]["json"]


def test_batch_names_each_malformed_code(client, tree, auth):
    errors = batch(client, auth, sor_codes=[OWNER, "12345", "abc"]).get_json()["errors"]
    assert set(errors["json"]["sor_codes"]) == {"1", "2"}


def test_batch_needs_a_token(client):
    assert client.post("/api/v1/organisations/batch", json={"sor_codes": [OWNER]}) \
        .status_code == 401


def test_batch_costs_a_handful_of_statements(client, tree, auth, session):
    units = []
    for n in range(60):
        sor_code = ids.make_sor_code(9100 + n)
        service.create_organisation(session, sor_code, {
            "level": "OE", "parent_sor_code": CLINIC if n % 2 else OTHER_CLINIC,
            "name": f"Enhed {n}", "first_valid_from": START, "valid_from": START,
            "valid_to": date(2020, 1, 1) if n < 10 else None,
            "replaced_by": [UNIT] if n < 10 else None,
        }, source="staff", actor="test")
        units.append(sor_code)
    session.commit()
    selects: list[str] = []
    connection = session.get_bind()

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    for body in ({"sor_codes": units}, {"sor_codes": units, "on": "2019-01-01"}):
        selects.clear()
        event.listen(connection, "before_cursor_execute", count)
        try:
            answer = batch(client, auth, **body).get_json()
        finally:
            event.remove(connection, "before_cursor_execute", count)
        assert len(answer["items"]) == 60
        assert len(selects) <= 8, selects  # the client, the items, their ancestors, one hop
    assert [s["sor_code"] for s in answer["items"][0]["successors"]] == [UNIT]

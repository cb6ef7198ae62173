"""A change application that closes a unit "replaced by" others: checked, approved, and named
back on the successors - over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from applications.service import InvalidInput, clean_input
from hierarchy import identifiers as ids
from hierarchy import service as register
from hierarchy.models import Organisation
from tests.applications.helpers import (
    AARHUS,
    AARHUS_IE,
    EXISTING_SI,
    PLEJEHJEM,
    bearer,
    build_register,
)

NEW_SI = ids.make_sor_code(120)
OTHER_SI = ids.make_sor_code(121)
CLOSED_SI = ids.make_sor_code(122)
YESTERDAY = date.today() - timedelta(days=1)


@pytest.fixture
def world(session):
    build_register(session)
    start = date(2010, 1, 1)
    for code, name, valid_to in ((NEW_SI, "Plejecenter Nord", None),
                                 (OTHER_SI, "Plejecenter Syd", None),
                                 (CLOSED_SI, "Plejecenter Vest", date(2012, 1, 1))):
        register.create_organisation(session, code, {
            "level": "SI", "parent_sor_code": AARHUS_IE, "name": name,
            "entity_type": PLEJEHJEM, "first_valid_from": start, "valid_from": start,
            "valid_to": valid_to,
            "postal_address": {"street": "Nordgade 1", "postal_code": "8000",
                               "city": "Aarhus C", "municipality_code": AARHUS},
        }, source="staff", actor="test")
    session.commit()
    return {
        "aarhus": bearer(session, "municipality", name="Aarhus"),
        "sds": bearer(session, "sds", cvr="29190909", name="SDS"),
        "reporter": bearer(session, "reporter", name="Form"),
    }


def change(client, world, **body):
    response = client.post("/api/v1/applications", headers=world["aarhus"], json={
        "kind": "change", "target_sor_code": EXISTING_SI, "contact_email": "sor@aarhus.dk",
        **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def findings(client, world, application) -> tuple[list[str], list[str]]:
    result = client.post(f"/api/v1/applications/{application['id']}/validate",
                         headers=world["aarhus"]).get_json()
    return ([f"{e['field']}:{e['code']}" for e in result["errors"]],
            [f"{w['field']}:{w['code']}" for w in result["warnings"]])


def test_approval_closes_the_unit_and_names_it_on_its_successors(client, world, session):
    application = change(client, world, closing_date=YESTERDAY.isoformat(),
                         replaced_by=[NEW_SI, OTHER_SI])
    assert application["replaced_by"] == [NEW_SI, OTHER_SI]
    url = f"/api/v1/applications/{application['id']}"
    assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 200
    approved = client.post(url + "/approve", headers=world["sds"])
    assert approved.status_code == 200, approved.get_json()
    shown = {c["field"]: c["new"] for c in approved.get_json()["events"][-1]["details"]["changes"]}
    assert shown["replaced_by"] == f"{NEW_SI}, {OTHER_SI}"
    closed = session.get(Organisation, EXISTING_SI)
    assert closed.valid_to == YESTERDAY and closed.replaced_by == [NEW_SI, OTHER_SI]
    for successor in (NEW_SI, OTHER_SI):
        history = register.organisation_history(session, successor)
        assert history[-1].snapshot["replaces"] == [EXISTING_SI]
        assert history[-1].source == "application"
        assert history[-1].reference == f"ANS-{application['id']:06d}"
    # A reporting form now meets the closed code with its successors.
    item = client.get(f"/api/v1/organisations/{EXISTING_SI}", headers=world["reporter"])
    assert [s["sor_code"] for s in item.get_json()["successors"]] == [NEW_SI, OTHER_SI]
    resolved = client.get(f"/api/v1/resolve?code={EXISTING_SI}", headers=world["reporter"])
    assert resolved.status_code == 200
    assert resolved.get_json()["warnings"][0]["code"] == "replaced"


def test_replaced_by_needs_a_closing_date(client, world):
    errors, _ = findings(client, world, change(client, world, replaced_by=[NEW_SI]))
    assert "closing_date:required" in errors


def test_successor_unknown_or_itself_is_an_error(client, world):
    unknown = ids.make_sor_code(999)
    errors, _ = findings(client, world, change(client, world, closing_date="2030-01-01",
                                               replaced_by=[unknown, EXISTING_SI]))
    assert "replaced_by:unknown" in errors and "replaced_by:itself" in errors


def test_successor_not_in_force_is_a_warning(client, world):
    errors, warnings = findings(client, world, change(client, world, closing_date="2030-01-01",
                                                      replaced_by=[CLOSED_SI]))
    assert errors == [] and "replaced_by:successor_not_in_force" in warnings


def test_replaced_by_on_a_new_application_is_a_warning(client, world):
    response = client.post("/api/v1/applications", headers=world["aarhus"], json={
        "kind": "new", "contact_email": "sor@aarhus.dk", "replaced_by": [NEW_SI]})
    assert response.status_code == 201
    _, warnings = findings(client, world, response.get_json())
    assert "kind:change_fields" in warnings


@pytest.mark.parametrize("value", [["12345"], [NEW_SI] * 1 + ["abc"], "not a list",
                                   [NEW_SI, 7], [ids.make_sor_code(n) for n in range(200, 221)]])
def test_malformed_successors_are_refused_and_nothing_is_stored(client, world, value):
    response = client.post("/api/v1/applications", headers=world["aarhus"], json={
        "kind": "change", "target_sor_code": EXISTING_SI, "replaced_by": value})
    assert response.status_code == 422
    assert "replaced_by" in str(response.get_json()["errors"])
    listed = client.get("/api/v1/applications", headers=world["aarhus"]).get_json()
    assert listed["total"] == 0


def test_the_form_gives_successors_as_text():
    assert clean_input({"replaced_by": f" {NEW_SI},{OTHER_SI} {NEW_SI}"}, partial=True) == {
        "replaced_by": [NEW_SI, OTHER_SI]}
    assert clean_input({"replaced_by": ""}, partial=True) == {"replaced_by": None}
    with pytest.raises(InvalidInput) as refused:
        clean_input({"replaced_by": f"{NEW_SI}, 42"}, partial=True)
    assert "replaced_by" in refused.value.errors

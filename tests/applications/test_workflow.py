"""The application workflow over HTTP, end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from applications.models import Application
from hierarchy import identifiers as ids
from hierarchy import service as register
from hierarchy.models import Organisation, OrganisationVersion
from tests.applications.helpers import (
    AARHUS_CVR,
    AARHUS_IE,
    EXISTING_SI,
    FYSIOTERAPI,
    NEW_PRIVATE_CVR,
    ODENSE,
    ODENSE_CVR,
    PLEJEHJEM,
    PRIVATE_CVR,
    PRIVATE_IE,
    bearer,
    build_register,
    new_nursing_home,
)


@pytest.fixture
def world(session):
    build_register(session)
    return {
        "aarhus": bearer(session, "municipality", name="Aarhus"),
        "odense": bearer(session, "municipality", cvr=ODENSE_CVR, municipality=ODENSE,
                         name="Odense"),
        "sds": bearer(session, "sds", cvr="29190909", name="SDS"),
        "reporter": bearer(session, "reporter", name="Form"),
    }


def _create(client, headers, **overrides):
    response = client.post("/api/v1/applications", json=new_nursing_home(**overrides),
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _warnings(client, headers, application):
    """The application's validation warnings by their code."""
    result = client.post(f"/api/v1/applications/{application['id']}/validate",
                         headers=headers).get_json()
    return {w["code"]: w for w in result["warnings"]}


def test_the_contract_flow_end_to_end(client, world, session):
    draft = _create(client, world["aarhus"], phone=None)
    assert draft["status"] == "draft" and draft["version"] == 0
    assert draft["municipality_code"] == "0751" and draft["municipality_name"] == "Aarhus"
    assert draft["reference"] == f"ANS-{draft['id']:06d}"
    assert draft["institution_type_name"] == "plejehjem"
    url = f"/api/v1/applications/{draft['id']}"

    # Submitting an incomplete draft is refused with the missing field.
    response = client.post(url + "/submit", headers=world["aarhus"])
    assert response.status_code == 422
    assert "phone" in response.get_json()["errors"]

    edited = client.patch(url, json={"phone": "87 13 00 00"}, headers=world["aarhus"])
    assert edited.status_code == 200 and edited.get_json()["phone"] == "87 13 00 00"
    check = client.post(url + "/validate", headers=world["aarhus"]).get_json()
    assert check["errors"] == []

    submitted = client.post(url + "/submit", headers=world["aarhus"]).get_json()
    assert submitted["status"] == "submitted" and submitted["version"] == 1
    assert client.patch(url, json={"fax": "1"}, headers=world["aarhus"]).status_code == 409

    listed = client.get("/api/v1/applications?status=submitted", headers=world["sds"]).get_json()
    assert [item["id"] for item in listed["items"]] == [draft["id"]] and listed["total"] == 1

    # A form looks the municipality's institutions up before and after: the
    # lookups' answer cache must not hide the new institution.
    my_si = "/api/v1/lookups/my-cvr/si"
    before = client.get(my_si, headers=world["reporter"]).get_json()["total"]
    assert client.get(my_si, headers=world["reporter"]).get_json()["total"] == before

    approved = client.post(url + "/approve", json={}, headers=world["sds"])
    assert approved.status_code == 200, approved.get_json()
    body = approved.get_json()
    assert body["status"] == "approved"
    code = body["sor_code"]
    assert ids.is_sor_code(code) and ids.sor_code_has_valid_check_digit(code)
    assert "1000016" in code
    assert [e["action"] for e in body["events"]] == [
        "created", "edited", "submitted", "approved"]
    assert body["events"][-1]["details"]["sor_code"] == code

    organisation = client.get(f"/api/v1/organisations/{code}", headers=world["reporter"])
    assert organisation.status_code == 200
    item = organisation.get_json()
    assert item["name"] == "Plejecenter Åbo" and item["level"] == "SI"
    assert item["parent_sor_code"] == AARHUS_IE and item["ownership"] == "kommunal"
    assert item["cvr"] == AARHUS_CVR
    assert item["address"]["postal_code"] == "8000"
    after = client.get(my_si, headers=world["reporter"]).get_json()
    assert after["total"] == before + 1
    assert code in [item["sor_code"] for item in after["items"]]
    version = session.execute(
        select(OrganisationVersion).where(OrganisationVersion.sor_code == code)
    ).scalar_one()
    assert version.source == "application" and version.reference == body["reference"]

    # Decided: nothing more can happen to it.
    assert client.post(url + "/withdraw", headers=world["aarhus"]).status_code == 409
    assert client.post(url + "/approve", headers=world["sds"]).status_code == 409


def test_private_institution_goes_under_its_owner_made_when_new(client, world, session):
    known = _create(client, world["aarhus"], ownership="privat", owner_cvr=PRIVATE_CVR,
                    institution_name="Fysio Viby", institution_type=FYSIOTERAPI,
                    address={"street": "Skanderborgvej 1", "postal_code": "8260",
                             "city": "Viby J"})
    new = _create(client, world["aarhus"], ownership="privat", owner_cvr=NEW_PRIVATE_CVR,
                  owner_name="Genoptræning Nord ApS", institution_name="Genoptræning Nord",
                  institution_type=FYSIOTERAPI,
                  address={"street": "Randersvej 99", "postal_code": "8200",
                           "city": "Aarhus N"})
    codes = []
    for application in (known, new):
        url = f"/api/v1/applications/{application['id']}"
        assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 200
        approved = client.post(url + "/approve", headers=world["sds"]).get_json()
        codes.append(approved["sor_code"])
    first = session.get(Organisation, codes[0])
    assert first.parent_sor_code == PRIVATE_IE and first.ownership == "privat"
    second = session.get(Organisation, codes[1])
    owner = session.get(Organisation, second.parent_sor_code)
    assert owner.level == "IE" and owner.cvr == NEW_PRIVATE_CVR
    assert owner.name == "Genoptræning Nord ApS" and owner.ownership == "privat"
    assert second.owner_cvr == NEW_PRIVATE_CVR and second.ownership == "privat"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("owner_cvr", "12345678"),
        ("gln", "5790000000013"),
        ("shak", "12"),
        ("ydernummer", "12ab"),
        ("target_sor_code", "123"),
        ("institution_type", "999999"),
        ("contact_email", "not-an-address"),
        ("kind", "other"),
    ],
)
def test_invalid_identifiers_are_refused_with_field_errors(client, world, session, field,
                                                          value):
    before = session.execute(select(func.count()).select_from(Application)).scalar_one()
    response = client.post("/api/v1/applications", json=new_nursing_home(**{field: value}),
                           headers=world["aarhus"])
    assert response.status_code == 422
    body = response.get_json()
    assert field in body["errors"]["json"] and body["code"] == 422
    after = session.execute(select(func.count()).select_from(Application)).scalar_one()
    assert after == before


def test_bad_postcode_and_unknown_fields_are_refused(client, world):
    response = client.post("/api/v1/applications", json=new_nursing_home(
        address={"street": "Vej 1", "postal_code": "80000", "city": "Aarhus"}),
        headers=world["aarhus"])
    assert response.status_code == 422
    assert "postal_code" in response.get_json()["errors"]["json"]
    response = client.post("/api/v1/applications", json={**new_nursing_home(), "colour": "red"},
                           headers=world["aarhus"])
    assert response.status_code == 422


def test_a_second_application_for_a_registered_institution_warns(client, world):
    duplicate = _create(client, world["aarhus"], institution_name="Plejecenter Søndergaarden",
                        address={"street": "Søndergade 12", "postal_code": "8000",
                                 "city": "Aarhus C"})
    url = f"/api/v1/applications/{duplicate['id']}"
    result = client.post(url + "/validate", headers=world["aarhus"]).get_json()
    assert result["errors"] == []
    by_code = {w["code"]: w for w in result["warnings"]}
    assert EXISTING_SI in [c["sor_code"] for c in by_code["similar_name"]["candidates"]]
    # Warnings do not block.
    assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 200


def test_same_ydernummer_and_open_applications_are_duplicates(client, world):
    first = _create(client, world["aarhus"], ydernummer="12345",
                    institution_name="Træningshuset", ownership="privat",
                    owner_cvr=PRIVATE_CVR, institution_type=FYSIOTERAPI,
                    address={"street": "Vestergade 3", "postal_code": "8600",
                             "city": "Silkeborg"})
    assert first["ydernummer"] == "012345"
    by_code = _warnings(client, world["aarhus"], first)
    assert by_code["duplicate_ydernummer"]["candidates"][0]["ydernummer"] == "012345"
    assert "has_ydernummer" in by_code

    second = _create(client, world["aarhus"], institution_name="Træningshuset Silkeborg",
                     ownership="privat", owner_cvr=PRIVATE_CVR, institution_type=FYSIOTERAPI,
                     address={"street": "Vestergade 3", "postal_code": "8600",
                              "city": "Silkeborg"})
    by_code = _warnings(client, world["aarhus"], second)
    for code in ("duplicate_address", "similar_name"):
        candidates = by_code[code]["candidates"]
        assert [c["reference"] for c in candidates] == [first["reference"]]
        assert candidates[0]["type"] == "application"


def test_a_duplicate_after_the_first_two_hundred_of_a_postcode_is_found(client, world,
                                                                          session):
    """The signs test every organisation of the postcode, not a page of them: Aarhus C
    holds thousands of units, and the look-alike here has the highest code of 230."""
    start = date(2010, 1, 1)
    for number in range(230):
        last = number == 229
        register.create_organisation(session, ids.make_sor_code(5000 + number), {
            "level": "SI", "parent_sor_code": AARHUS_IE, "entity_type": PLEJEHJEM,
            "name": "Plejecenter Bakkegården" if last else f"Hjemmepleje distrikt {number}",
            "first_valid_from": start, "valid_from": start,
            "postal_address": {"street": "Bakkevej 9" if last else f"Gade {number}",
                               "postal_code": "8000", "city": "Aarhus C"},
        }, source="staff", actor="test")
    session.commit()
    look_alike = ids.make_sor_code(5229)
    application = _create(client, world["aarhus"], institution_name="Plejecentret Bakkegaarden",
                          address={"street": "Bakkevej 9.", "postal_code": "8000",
                                   "city": "Aarhus C"})
    by_code = _warnings(client, world["aarhus"], application)
    for code in ("similar_name", "duplicate_address"):
        assert [c["sor_code"] for c in by_code[code]["candidates"]] == [look_alike], code


def test_another_municipality_cannot_read_or_edit(client, world):
    mine = _create(client, world["aarhus"])
    url = f"/api/v1/applications/{mine['id']}"
    assert client.get(url, headers=world["odense"]).status_code == 404
    assert client.patch(url, json={"fax": "12345678"}, headers=world["odense"]).status_code == 404
    assert client.post(url + "/submit", headers=world["odense"]).status_code == 404
    assert client.post(url + "/validate", headers=world["odense"]).status_code == 404
    assert client.get("/api/v1/applications", headers=world["odense"]).get_json()["total"] == 0
    assert client.get(url, headers=world["aarhus"]).status_code == 200


def test_roles(client, world, session):
    mine = _create(client, world["aarhus"])
    url = f"/api/v1/applications/{mine['id']}"
    client.post(url + "/submit", headers=world["aarhus"])
    assert client.get(url).status_code == 401
    assert client.post("/api/v1/applications", json=new_nursing_home(),
                       headers=world["reporter"]).status_code == 403
    assert client.post(url + "/approve", headers=world["reporter"]).status_code == 403
    assert client.post(url + "/approve", headers=world["aarhus"]).status_code == 403
    assert client.post(url + "/reject", json={"reason": "nej"},
                       headers=world["aarhus"]).status_code == 403
    # Staff and the municipality in one client: still not its own approval.
    both = bearer(session, ["sds", "municipality"], name="Aarhus staff")
    response = client.post(url + "/approve", headers=both)
    assert response.status_code == 403 and "own" in response.get_json()["message"]
    assert client.get(url, headers=world["sds"]).status_code == 200


def test_staff_cannot_approve_what_they_sent_in(client, world, session):
    sent = client.post("/api/v1/applications", json=new_nursing_home(municipality_code="0751"),
                       headers=world["sds"])
    assert sent.status_code == 201
    assert sent.get_json()["municipality_code"] == "0751"
    url = f"/api/v1/applications/{sent.get_json()['id']}"
    assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 200
    refused = client.post(url + "/approve", headers=world["sds"])
    assert refused.status_code == 403 and "sent" in refused.get_json()["message"]
    colleague = bearer(session, "sds", cvr="29190909", name="SDS colleague")
    assert client.post(url + "/approve", headers=colleague).status_code == 200


def test_information_requested_then_resubmitted_counts_versions(client, world):
    mine = _create(client, world["aarhus"])
    url = f"/api/v1/applications/{mine['id']}"
    assert client.post(url + "/approve", headers=world["sds"]).status_code == 409  # a draft
    client.post(url + "/submit", headers=world["aarhus"])
    missing = client.post(url + "/request-info", json={}, headers=world["sds"])
    assert missing.status_code == 422 and "reason" in missing.get_json()["errors"]["json"]
    asked = client.post(url + "/request-info", json={"reason": "Mangler ydernummer?"},
                        headers=world["sds"]).get_json()
    assert asked["status"] == "info_requested"
    assert asked["events"][-1]["reason"] == "Mangler ydernummer?"
    assert client.patch(url, json={"remarks": "Intet ydernummer."},
                        headers=world["aarhus"]).status_code == 200
    again = client.post(url + "/submit", headers=world["aarhus"]).get_json()
    assert again["status"] == "submitted" and again["version"] == 2
    rejected = client.post(url + "/reject", json={"reason": "Findes allerede"},
                           headers=world["sds"]).get_json()
    assert rejected["status"] == "rejected" and rejected["decided_at"]
    actions = [(e["action"], e["from_status"], e["to_status"], e["version"])
               for e in rejected["events"]]
    assert actions == [
        ("created", None, "draft", 0),
        ("submitted", "draft", "submitted", 1),
        ("info_requested", "submitted", "info_requested", 1),
        ("edited", "info_requested", "info_requested", 1),
        ("submitted", "info_requested", "submitted", 2),
        ("rejected", "submitted", "rejected", 2),
    ]


def test_withdraw_before_a_decision(client, world):
    mine = _create(client, world["aarhus"])
    url = f"/api/v1/applications/{mine['id']}"
    withdrawn = client.post(url + "/withdraw", json={"reason": "Fejl"},
                            headers=world["aarhus"]).get_json()
    assert withdrawn["status"] == "withdrawn"
    assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 409
    assert client.get(url, headers=world["aarhus"]).get_json()["status"] == "withdrawn"


def test_change_application_changes_the_organisation(client, world, session):
    change = client.post("/api/v1/applications", json={
        "kind": "change", "target_sor_code": EXISTING_SI, "contact_email": "sor@aarhus.dk",
        "institution_name": "Plejecenter Søndergården Nord", "phone": "87 13 99 99",
        "address": {"street": "Nordgade 1"},
    }, headers=world["aarhus"])
    assert change.status_code == 201, change.get_json()
    url = f"/api/v1/applications/{change.get_json()['id']}"
    assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 200
    approved = client.post(url + "/approve", headers=world["sds"]).get_json()
    assert approved["sor_code"] == EXISTING_SI
    shown = {c["field"]: c["new"] for c in approved["events"][-1]["details"]["changes"]}
    assert shown == {"institution_name": "Plejecenter Søndergården Nord",
                     "phone": "87 13 99 99", "street": "Nordgade 1"}
    organisation = session.get(Organisation, EXISTING_SI)
    assert organisation.name == "Plejecenter Søndergården Nord"
    assert organisation.postal_address["street"] == "Nordgade 1"
    assert organisation.postal_address["postal_code"] == "8000"
    assert organisation.version == 2


def test_change_application_closes(client, world, session):
    change = client.post("/api/v1/applications", json={
        "kind": "change", "target_sor_code": EXISTING_SI, "contact_email": "sor@aarhus.dk",
        "closing_date": "2030-01-31"}, headers=world["aarhus"]).get_json()
    url = f"/api/v1/applications/{change['id']}"
    assert client.post(url + "/submit", headers=world["aarhus"]).status_code == 200
    assert client.post(url + "/approve", headers=world["sds"]).status_code == 200
    assert session.get(Organisation, EXISTING_SI).valid_to.isoformat() == "2030-01-31"


def test_change_of_an_unknown_or_owner_code_does_not_validate(client, world):
    for target, code in ((ids.make_sor_code(999), "unknown"), (AARHUS_IE, "owner_level")):
        change = client.post("/api/v1/applications", json={
            "kind": "change", "target_sor_code": target, "contact_email": "sor@aarhus.dk",
            "phone": "12345678"}, headers=world["aarhus"]).get_json()
        result = client.post(f"/api/v1/applications/{change['id']}/validate",
                             headers=world["aarhus"]).get_json()
        assert code in [e["code"] for e in result["errors"]]


def test_list_pages_with_a_cursor(client, world):
    made = [_create(client, world["aarhus"], institution_name=f"Center {n}")["id"]
            for n in range(5)]
    seen, url = [], "/api/v1/applications?limit=2"
    while url:
        page = client.get(url, headers=world["aarhus"]).get_json()
        assert page["total"] == 5
        seen += [item["id"] for item in page["items"]]
        url = f"/api/v1/applications?limit=2&cursor={page['next']}" if page["next"] else None
    assert seen == sorted(made, reverse=True)
    assert client.get("/api/v1/applications?status=nonsense",
                      headers=world["sds"]).status_code == 422

"""The CapabilityStatement lists exactly the search parameters that work: each one it names
is exercised here and finds exactly what it should, and it names no other."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.fhir import systems
from tests.applications.helpers import EXISTING_SI, PRIVATE_SI
from tests.fhir.conftest import (
    EYE_DEPARTMENT,
    EYE_HOSPITAL,
    EYE_SECTION,
    FOOT_CLINIC,
    PRACTICE,
    PRACTITIONER,
    bundle_ids,
)

BRANCH = ids.make_sor_code(231)  # a unit with a visiting address of its own (set up below)


def _close_existing_si(session):
    service.close_organisation(session, EXISTING_SI, date.today() - timedelta(days=1),
                               source="staff", actor="test")


def _open_branch(session):
    service.create_organisation(session, BRANCH, {
        "level": "OE", "parent_sor_code": FOOT_CLINIC, "name": "Fodklinik, filial",
        "entity_type": "554061000005105",
        "visiting_address": {"street": "Algade 1", "postal_code": "9700", "city": "Brønderslev"},
    }, source="staff", actor="test")


def _change_section(session):
    """Change one unit after a moment; the query string asks for what changed since."""
    moment = datetime.now(UTC)
    time.sleep(0.01)
    service.change_organisation(session, EYE_SECTION, {"name": "Roskilde Øjenklinik, afsnit"},
                                source="staff", actor="test")
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"_lastUpdated=ge{stamp}"


def _fixed(query):
    return lambda session: query


# (resource, parameter) -> (set-up returning the query string, the ids it must find exactly).
EXERCISES = {
    ("Organization", "_id"): (_fixed(f"_id={FOOT_CLINIC},{PRACTICE}"),
                              {FOOT_CLINIC, PRACTICE}),
    ("Organization", "_lastUpdated"): (_change_section, {EYE_SECTION}),
    ("Organization", "identifier"): (_fixed(f"identifier={systems.YDERNUMMER}|19062"),
                                     {PRACTITIONER}),
    ("Organization", "name"): (_fixed("name=plejecenter"), {EXISTING_SI}),
    ("Organization", "type"): (_fixed(f"type={systems.SNOMED}|22232009"), {EYE_HOSPITAL}),
    ("Organization", "partof"): (_fixed(f"partof={EYE_HOSPITAL}"), {EYE_DEPARTMENT}),
    ("Organization", "active"): (lambda s: (_close_existing_si(s), "active=false")[1],
                                 {EXISTING_SI}),
    ("Organization", "address-postalcode"): (_fixed("address-postalcode=8230"), {PRIVATE_SI}),
    ("Organization", "address-city"): (_fixed("address-city=Åbyhøj"), {PRIVATE_SI}),
    ("Location", "_id"): (_fixed(f"_id={FOOT_CLINIC}"), {FOOT_CLINIC}),
    ("Location", "_lastUpdated"): (lambda s: (_open_branch(s), "_lastUpdated=ge" + (
        datetime.now(UTC) - timedelta(minutes=5)).date().isoformat())[1],
        None),  # every Location (all made today): checked against the plain search
    ("Location", "identifier"): (_fixed(f"identifier={systems.SOR}|{EYE_HOSPITAL}"),
                                 {EYE_HOSPITAL}),
    ("Location", "name"): (_fixed("name=roskilde"), {EYE_HOSPITAL}),
    ("Location", "type"): (_fixed(f"type={systems.SNOMED}|22232009"), {EYE_HOSPITAL}),
    ("Location", "organization"): (_fixed(f"organization=Organization/{PRACTICE}"),
                                   {PRACTICE}),
    ("Location", "partof"): (lambda s: (_open_branch(s), f"partof=Location/{FOOT_CLINIC}")[1],
                             {BRANCH}),
    ("Location", "status"): (lambda s: (_close_existing_si(s), "status=inactive")[1],
                             {EXISTING_SI}),
    ("Location", "address-postalcode"): (_fixed("address-postalcode=8230"), {PRIVATE_SI}),
}


def _statement(client):
    response = client.get("/fhir/metadata")  # no token needed
    assert response.status_code == 200
    return response.get_json()


def test_the_statement_names_exactly_the_parameters_exercised_here(client):
    statement = _statement(client)
    assert statement["kind"] == "instance" and statement["fhirVersion"] == "4.0.1"
    assert statement["instantiates"] == [systems.MCSD_DIRECTORY]
    named = {(resource["type"], parameter["name"])
             for resource in statement["rest"][0]["resource"]
             for parameter in resource["searchParam"]}
    assert named == set(EXERCISES)


def test_the_statement_names_the_interactions_and_includes_that_work(client):
    resources = {r["type"]: r for r in _statement(client)["rest"][0]["resource"]}
    assert set(resources) == {"Organization", "Location"}
    for resource in resources.values():
        assert {i["code"] for i in resource["interaction"]} == {
            "read", "vread", "history-instance", "history-type", "search-type"}
    assert resources["Organization"]["searchInclude"] == ["Organization:partof"]
    assert resources["Organization"]["searchRevInclude"] == ["Location:organization"]
    assert resources["Location"]["searchInclude"] == ["Location:organization"]


@pytest.mark.parametrize("exercise", sorted(EXERCISES), ids="{0[0]}-{0[1]}".format)
def test_each_parameter_finds_what_it_should(client, register, reader, exercise):
    resource, _ = exercise
    set_up, expected = EXERCISES[exercise]
    query = set_up(register)
    register.commit()
    response = client.get(f"/fhir/{resource}?{query}&_count=500", headers=reader)
    assert response.status_code == 200, response.get_json()
    found = {entry.split("/")[1] for entry in bundle_ids(response.get_json())}
    if expected is None:  # the same as with no filter, and not nothing
        everything = client.get(f"/fhir/{resource}?_count=500", headers=reader).get_json()
        expected = {entry.split("/")[1] for entry in bundle_ids(everything)}
        assert expected
    assert found == expected
    assert response.get_json()["total"] == len(expected)

"""ITI-90 searches in depth: modifiers, identifier forms, the hierarchy, includes, sorting,
counting, paging, POST _search, NDJSON and FHIR's lenient and strict handling."""

from __future__ import annotations

import json

import pytest

from hierarchy.fhir import systems
from sorregistry.accounts.clients import create_client
from tests.applications.helpers import (
    AARHUS_CVR,
    AARHUS_IE,
    EXISTING_SI,
    PRIVATE_IE,
    PRIVATE_SI,
)
from tests.fhir.conftest import (
    EYE_DEPARTMENT,
    EYE_HOSPITAL,
    EYE_OWNER,
    EYE_SECTION,
    FOOT_CLINIC,
    FOOT_THERAPIST,
    PRACTICE,
    PRACTICE_OWNER,
    PRACTITIONER,
    PRIVATE_OWNER,
    bundle_ids,
)

EVERY_UNIT = 17  # in the register fixture


def _search(client, headers, query, resource="Organization", status=200):
    response = client.get(f"/fhir/{resource}?{query}", headers=headers)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _found(client, headers, query, resource="Organization"):
    return {e.split("/")[1] for e in bundle_ids(_search(client, headers, query, resource))}


@pytest.mark.parametrize(("query", "expected"), [
    ("name=plejecen", {EXISTING_SI}),  # a word starts so
    ("name=PLEJECENTER", {EXISTING_SI}),
    ("name=ecenter", set()),  # not the start of a word ...
    ("name:contains=ecenter", {EXISTING_SI}),  # ... but contained
    ("name=aabyhoej", {PRIVATE_SI}),  # folded: å/aa, ø/oe
    ("name=Åbyhøj", {PRIVATE_SI}),
    ("name=fysio%20%C3%A5by", {PRIVATE_SI}),  # several words, each starting one
    ("name=%C3%A5by%20fysio", {PRIVATE_SI}),  # in any order
    ("name=%C3%B8jenklinik%20afd", {EYE_DEPARTMENT}),
    ("name:exact=Fysioterapi%20%C3%85byh%C3%B8j", {PRIVATE_SI}),
    ("name:exact=fysioterapi%20%C3%A5byh%C3%B8j", set()),  # exact: case and letters count
    ("name:exact=Fysioterapi", set()),
])
def test_name(client, register, reader, query, expected):
    assert _found(client, reader, query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    (f"identifier={systems.YDERNUMMER}|19062", {PRACTITIONER}),  # without the leading zero
    (f"identifier={systems.YDERNUMMER}|019062", {PRACTITIONER}),
    ("identifier=019062", {PRACTITIONER}),  # any system
    ("identifier=|019062", set()),  # no system: none of ours
    (f"identifier={systems.SOR}|{FOOT_CLINIC}", {FOOT_CLINIC}),
    (f"identifier={FOOT_CLINIC}", {FOOT_CLINIC}),
    (f"identifier={systems.SKS}|252901", {EYE_DEPARTMENT}),  # exact, not a SHAK prefix
    (f"identifier={systems.SKS}|2529", {EYE_HOSPITAL}),
    (f"identifier={systems.CVR}|35095748", {PRIVATE_OWNER}),  # the owner's CVR: on the IE
    (f"identifier={systems.CVR}|{AARHUS_CVR}", {AARHUS_IE}),
    (f"identifier={systems.GLN}|5790002401473", {PRIVATE_OWNER}),  # own GLN only
    (f"identifier={systems.GLN_DK_CORE_3_5}|5790002401473", {PRIVATE_OWNER}),
    (f"identifier={systems.KOMMUNEKODE}|0751", {AARHUS_IE}),
    (f"identifier={systems.KOMMUNEKODE}|751", {AARHUS_IE}),
    ("identifier=urn:oid:9.9.9|019062", set()),  # a system this server does not know
    (f"identifier={systems.YDERNUMMER}|19062,{systems.SKS}|2529", {PRACTITIONER, EYE_HOSPITAL}),
    (f"identifier={systems.YDERNUMMER}|19062&identifier={systems.SKS}|2529", set()),  # AND
    (f"_id={FOOT_CLINIC},not-a-code", {FOOT_CLINIC}),
    ("_id=not-a-code", set()),
])
def test_identifier_and_id(client, register, reader, query, expected):
    assert _found(client, reader, query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    (f"partof={EYE_OWNER}", {EYE_HOSPITAL}),
    (f"partof=Organization/{EYE_HOSPITAL}", {EYE_DEPARTMENT}),
    (f"partof:below={EYE_OWNER}", {EYE_HOSPITAL, EYE_DEPARTMENT, EYE_SECTION}),
    (f"partof:below=http://example.org/fhir/Organization/{EYE_HOSPITAL}",
     {EYE_DEPARTMENT, EYE_SECTION}),
    (f"partof:below={EYE_SECTION}", set()),
    (f"partof:above={EYE_SECTION}", {EYE_OWNER, EYE_HOSPITAL, EYE_DEPARTMENT}),
    (f"partof:above={EYE_OWNER}", set()),
    ("partof:below=123451000016001", set()),  # no such unit: nothing below it
    ("partof:above=123451000016001", set()),
    (f"partof:below={EYE_OWNER}&name=afsnit", {EYE_SECTION}),
])
def test_the_hierarchy(client, register, reader, query, expected):
    assert _found(client, reader, query) == expected


@pytest.mark.parametrize(("query", "expected"), [
    (f"type={systems.EER_ORGANIZATION_TYPE}|IE", {
        AARHUS_IE, PRIVATE_IE, PRIVATE_OWNER, PRACTICE_OWNER, EYE_OWNER, "306011000016003"}),
    (f"type={systems.MCSD_TYPES}|facility&address-postalcode=8000", {EXISTING_SI}),
    ("type=42665001", {EXISTING_SI}),
    (f"type={systems.SNOMED}|42665001,{systems.SNOMED}|547011000005103",
     {EXISTING_SI, PRIVATE_SI}),
    ("address-postalcode=823", {PRIVATE_SI}),  # three digits: starts with
    ("address-postalcode:exact=823", set()),
    ("address-postalcode=9700", {PRIVATE_OWNER, FOOT_CLINIC, FOOT_THERAPIST}),
    ("address-city=aarhus", {AARHUS_IE, EXISTING_SI}),  # "Aarhus C": starts a word
    ("address-city:exact=Aarhus", set()),
    ("address-city:exact=Aarhus%20C", {AARHUS_IE, EXISTING_SI}),
    ("address-city:contains=rhus", {AARHUS_IE, EXISTING_SI}),
    ("address-city=Odense", set()),
])
def test_type_and_address(client, register, reader, query, expected):
    assert _found(client, reader, query) == expected


def test_active_and_the_default_of_every_unit(client, register, reader):
    assert len(_found(client, reader, "_count=500")) == EVERY_UNIT
    assert len(_found(client, reader, "active=true")) == EVERY_UNIT
    assert _found(client, reader, "active=false") == set()


def test_include_and_revinclude(client, register, reader):
    bundle = _search(client, reader, f"_id={FOOT_THERAPIST},{FOOT_CLINIC}"
                     "&_include=Organization:partof&_revinclude=Location:organization")
    assert set(bundle_ids(bundle)) == {f"Organization/{FOOT_THERAPIST}",
                                       f"Organization/{FOOT_CLINIC}"}
    assert set(bundle_ids(bundle, "include")) == {
        f"Organization/{PRIVATE_OWNER}",  # the clinic's parent (the therapist's is a match)
        f"Location/{FOOT_CLINIC}",  # the clinic's Location (the therapist has none)
    }
    assert bundle["total"] == 2
    located = _search(client, reader, f"_id={PRACTICE}&_include=Location:organization",
                      "Location")
    assert bundle_ids(located) == [f"Location/{PRACTICE}"]
    assert bundle_ids(located, "include") == [f"Organization/{PRACTICE}"]


def test_sort_count_total_and_summary(client, register, reader):
    by_name = _search(client, reader, "_sort=name&_count=500")
    names = [e["resource"]["name"].casefold() for e in by_name["entry"]]
    assert len(names) == EVERY_UNIT
    by_id = [e.split("/")[1] for e in bundle_ids(_search(client, reader, "_sort=_id&_count=500"))]
    assert by_id == sorted(by_id, key=lambda code: (len(code), code))
    by_change = _search(client, reader, "_sort=_lastUpdated&_count=500")
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in by_change["entry"]]
    assert stamps == sorted(stamps)
    counted = _search(client, reader, "type=42665001&_summary=count")
    assert counted["total"] == 1 and "entry" not in counted
    assert _search(client, reader, "_count=0")["total"] == EVERY_UNIT
    untotalled = _search(client, reader, "_total=none&_count=1")
    assert "total" not in untotalled and len(untotalled["entry"]) == 1


def test_paging_returns_every_match_once_in_order(client, register, reader):
    for sort in ("name", "_lastUpdated", "_id"):
        url, seen, totals = f"/fhir/Organization?_count=3&_sort={sort}", [], set()
        while url:
            response = client.get(url.replace("http://localhost", ""), headers=reader)
            assert response.status_code == 200, response.get_json()
            bundle = response.get_json()
            totals.add(bundle["total"])
            seen += bundle_ids(bundle)
            url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"),
                       None)
        assert len(seen) == len(set(seen)) == EVERY_UNIT and totals == {EVERY_UNIT}, sort


def test_post_search_is_the_get_search(client, register, reader):
    query = {"name": "roskilde", "_count": "2", "_include": "Organization:partof"}
    by_get = _search(client, reader, "name=roskilde&_count=2&_include=Organization:partof")
    response = client.post("/fhir/Organization/_search", data=query, headers=reader)
    assert response.status_code == 200, response.get_json()
    by_post = response.get_json()
    assert by_post["entry"] == by_get["entry"] and by_post["total"] == by_get["total"] == 4
    following = next(link["url"] for link in by_post["link"] if link["relation"] == "next")
    page_two = client.get(following.replace("http://localhost", ""), headers=reader)
    assert page_two.status_code == 200  # a POSTed search pages by GET
    as_json = client.post("/fhir/Organization/_search", json=query, headers=reader)
    assert as_json.status_code == 400  # a search's body is a form


def test_ndjson_streams_every_match(client, register, reader):
    response = client.get("/fhir/Organization?_format=ndjson&partof:below=" + EYE_OWNER,
                          headers=reader)
    assert response.status_code == 200
    assert response.content_type == "application/fhir+ndjson"
    lines = [json.loads(line) for line in response.get_data().splitlines()]
    assert {r["id"] for r in lines} == {EYE_HOSPITAL, EYE_DEPARTMENT, EYE_SECTION}
    located = client.get("/fhir/Location?_format=ndjson", headers=reader)
    assert {json.loads(line)["resourceType"] for line in located.get_data().splitlines()} \
        == {"Location"}


def test_lenient_by_default_and_strict_when_asked(client, register, reader):
    lenient = _search(client, reader, "name=roskilde&colour=blue&_elements=name")
    assert len(bundle_ids(lenient)) == 4  # the unknown ones ignored ...
    [outcome] = [e["resource"] for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome["issue"][0]["diagnostics"]  # ... and named
    self_link = lenient["link"][0]["url"]
    assert "name=roskilde" in self_link and "colour" not in self_link
    strict = client.get("/fhir/Organization?name=roskilde&colour=blue",
                        headers={**reader, "Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert strict.get_json()["issue"][0]["expression"] == ["colour"]


def test_formats_and_tokens(client, register, reader):
    assert client.get("/fhir/Organization?_format=json", headers=reader).status_code == 200
    assert client.get("/fhir/Organization", headers={
        **reader, "Accept": "application/fhir+json"}).status_code == 200
    assert client.get("/fhir/Organization?_format=xml", headers=reader).status_code == 400
    assert client.get("/fhir/Organization", headers={
        **reader, "Accept": "application/fhir+xml"}).status_code == 406
    anonymous = client.get("/fhir/Organization")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["issue"][0]["code"] == "login"
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    assert client.get("/fhir/Organization", headers={
        "Authorization": "Bearer nonsense"}).status_code == 401


def test_a_municipality_token_is_refused(client, register, session):
    _, token = create_client(session, "kommune", cvr=AARHUS_CVR, roles=["municipality"],
                             municipality_code="0751")
    response = client.get("/fhir/Organization", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["code"] == "forbidden"


def test_locations_and_their_parameters(client, register, reader):
    every = _found(client, reader, "_count=500", "Location")
    # Every institution (SI) has one; the real extracts' units have no address of their own.
    assert every == {EXISTING_SI, PRIVATE_SI, FOOT_CLINIC, PRACTICE, EYE_HOSPITAL,
                     "306021000016007"}
    assert _found(client, reader, "status=active,inactive", "Location") == every
    assert _found(client, reader, "status=suspended", "Location") == set()
    assert _found(client, reader, "address-postalcode=970", "Location") == {FOOT_CLINIC}
    assert _found(client, reader, f"identifier={PRACTITIONER}", "Location") == set()
    assert _found(client, reader, f"type={systems.MCSD_TYPES}|facility", "Location") == every

"""The register's units as FHIR Organizations and Locations: identifiers, types, addresses,
validity, the Location and its position."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pyproj import Transformer

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.fhir import systems
from tests.applications.helpers import AARHUS_CVR, AARHUS_IE, EXISTING_SI
from tests.fhir.conftest import (
    EYE_DEPARTMENT,
    EYE_HOSPITAL,
    FOOT_CLINIC,
    FOOT_THERAPIST,
    PRACTITIONER,
    PRIVATE_OWNER,
)

# MedCom's EER Organization's SOR identifier, as shared/data/sor/medcom-eer/
# eer_fhir_org_bundle.json has it (all 1,999 alike; its "identier" is MedCom's spelling).
MEDCOM_SOR_IDENTIFIER = {
    "use": "official",
    "type": {"coding": [{
        "system": "http://medcomehmi.dk/ig/terminology/CodeSystem/"
                  "eer-sor-organization-identier-type",
        "code": "SORID", "display": "SOR Identifier"}]},
    "system": "urn:oid:1.2.208.176.1.1",
}
# ... and its CVR identifier: a system and a value, no use.
MEDCOM_CVR_KEYS = {"system", "value"}


def _get(client, path, headers):
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.content_type == "application/fhir+json; charset=utf-8"
    return response.get_json()


def _identifiers(resource):
    return {i["system"]: i for i in resource.get("identifier", [])}


def _types(resource):
    return {(c["system"], c["code"]) for t in resource["type"] for c in t["coding"]}


def test_an_owner_as_medcom_and_dk_core_have_it(client, register, reader):
    owner = _get(client, f"/fhir/Organization/{PRIVATE_OWNER}", reader)
    assert owner["id"] == PRIVATE_OWNER and owner["name"] == "Baadsgaard Fodterapi"
    found = _identifiers(owner)
    assert found[systems.SOR] == {**MEDCOM_SOR_IDENTIFIER, "value": PRIVATE_OWNER}
    assert found[systems.CVR] == {"system": "http://cvr.dk", "value": "35095748"}
    assert set(found[systems.CVR]) == MEDCOM_CVR_KEYS
    assert found[systems.GLN] == {"use": "official", "system": "https://www.gs1.org/gln",
                                  "value": "5790002401473"}
    assert _types(owner) == {
        (systems.SNOMED, "550891000005100"),
        (systems.EER_ORGANIZATION_TYPE, "IE"),
        (systems.MCSD_TYPES, "jurisdiction"),
    }
    assert owner["active"] is True and "partOf" not in owner
    assert owner["meta"]["versionId"] == "1"
    assert systems.MCSD_JURISDICTION_ORGANIZATION in owner["meta"]["profile"]


def test_a_unit_shows_what_it_inherits_but_no_inherited_gln(client, register, reader):
    unit = _get(client, f"/fhir/Organization/{FOOT_THERAPIST}", reader)
    assert set(_identifiers(unit)) == {systems.SOR}  # the GLN is its owner's: left out
    assert unit["partOf"] == {"reference": f"Organization/{FOOT_CLINIC}"}
    telecom = {(t["system"], t["value"]) for t in unit["telecom"]}
    assert ("phone", "29439846") in telecom  # the owner's phone, inherited
    assert ("email", "baadsgaardfodterapi@gmail.com") in telecom  # the clinic's
    [address] = unit["address"]
    assert address["type"] == "both" and address["line"] == ["Østergade 70"]
    assert address["postalCode"] == "9700" and address["city"] == "Brønderslev"
    extensions = {e["url"]: e["valueCodeableConcept"]["coding"][0] for e in address["extension"]}
    assert extensions[systems.MUNICIPALITY_EXTENSION]["code"] == "0810"
    assert extensions[systems.REGION_EXTENSION]["code"] == "DK-81"
    assert (systems.SNOMED, "255203001") in _types(unit)


def test_ydernummer_zero_padded_and_shak_in_the_sks_system(client, register, reader):
    practitioner = _get(client, f"/fhir/Organization/{PRACTITIONER}", reader)
    assert _identifiers(practitioner)[systems.YDERNUMMER]["value"] == "019062"
    department = _get(client, f"/fhir/Organization/{EYE_DEPARTMENT}", reader)
    assert _identifiers(department)[systems.SKS]["value"] == "252901"
    hospital = _get(client, f"/fhir/Organization/{EYE_HOSPITAL}", reader)
    assert _identifiers(hospital)[systems.SKS]["value"] == "2529"
    assert (systems.MCSD_TYPES, "facility") in _types(hospital)
    snomed = [c for t in hospital["type"] for c in t["coding"] if c["system"] == systems.SNOMED]
    assert snomed == [{"system": systems.SNOMED, "code": "22232009", "display": "hospital"}]


def test_a_municipality_and_a_region_carry_dk_cores_codes(client, register, reader):
    aarhus = _get(client, f"/fhir/Organization/{AARHUS_IE}", reader)
    found = _identifiers(aarhus)
    assert found[systems.KOMMUNEKODE]["value"] == "0751"
    assert found[systems.CVR]["value"] == AARHUS_CVR
    region = ids.make_sor_code(221)
    service.create_organisation(register, region, {
        "level": "IE", "name": "Region Midtjylland", "entity_type": "550881000005103",
        "cvr": "29190925", "p_number": "1003388394",
        "postal_address": {"street": "Skottenborg 26", "postal_code": "8800",
                           "city": "Viborg", "municipality_code": "0791",
                           "region_code": "1082"},
    }, source="staff", actor="test")
    found = _identifiers(_get(client, f"/fhir/Organization/{region}", reader))
    assert found[systems.REGIONSKODE]["value"] == "DK-82"
    assert found[systems.P_NUMBER]["value"] == "1003388394"
    assert systems.KOMMUNEKODE not in found  # a region is not a municipality


def test_a_closed_unit_is_inactive_with_its_dates(client, register, reader):
    closing = date.today() - timedelta(days=3)
    service.close_organisation(register, EXISTING_SI, closing, source="staff", actor="test")
    closed = _get(client, f"/fhir/Organization/{EXISTING_SI}", reader)
    assert closed["active"] is False and closed["meta"]["versionId"] == "2"
    [validity] = [e for e in closed["extension"] if e["url"] == systems.VALIDITY_EXTENSION]
    assert validity["valuePeriod"] == {"start": "2010-01-01",
                                       "end": (closing - timedelta(days=1)).isoformat()}
    location = _get(client, f"/fhir/Location/{EXISTING_SI}", reader)
    assert location["status"] == "inactive"


def test_a_future_unit_is_not_active_yet(client, register, reader):
    code = ids.make_sor_code(222)
    service.create_organisation(register, code, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Fremtiden",
        "entity_type": "42665001", "valid_from": date.today() + timedelta(days=30),
    }, source="staff", actor="test")
    assert _get(client, f"/fhir/Organization/{code}", reader)["active"] is False


def test_the_facilitys_location_and_its_position(client, register, reader):
    location = _get(client, f"/fhir/Location/{FOOT_CLINIC}", reader)
    assert location["managingOrganization"] == {"reference": f"Organization/{FOOT_CLINIC}"}
    assert location["status"] == "active" and location["mode"] == "instance"
    assert location["address"]["type"] == "physical"
    assert location["physicalType"]["coding"][0]["code"] == "si"
    assert {(c["system"], c["code"]) for t in location["type"] for c in t["coding"]} >= {
        (systems.MCSD_TYPES, "facility"), (systems.SNOMED, "554061000005105")}
    assert systems.MCSD_FACILITY_LOCATION in location["meta"]["profile"]
    position = location["position"]
    # Østergade 70 in Brønderslev (the town's centre is at 57.27 N, 9.94 E), from the
    # export's ETRS89 / UTM32 coordinates E 557481.680, N 6347032.450 ...
    assert position["latitude"] == pytest.approx(57.27, abs=0.02)
    assert position["longitude"] == pytest.approx(9.94, abs=0.02)
    # ... and back to them, to the centimetre (PROJ both ways).
    back = Transformer.from_crs("EPSG:4326", "EPSG:25832", always_xy=True)
    easting, northing = back.transform(position["longitude"], position["latitude"])
    assert easting == pytest.approx(557481.680, abs=0.05)
    assert northing == pytest.approx(6347032.450, abs=0.05)


def test_a_unit_has_a_location_only_with_its_own_visiting_address(client, register, reader):
    assert client.get(f"/fhir/Location/{FOOT_THERAPIST}", headers=reader).status_code == 404
    code = ids.make_sor_code(223)
    service.create_organisation(register, code, {
        "level": "OE", "parent_sor_code": FOOT_CLINIC, "name": "Fodklinik, filial",
        "entity_type": "554061000005105",
        "visiting_address": {"street": "Algade 1", "postal_code": "9700",
                             "city": "Brønderslev"},
    }, source="staff", actor="test")
    location = _get(client, f"/fhir/Location/{code}", reader)
    assert location["partOf"] == {"reference": f"Location/{FOOT_CLINIC}"}
    assert location["address"]["line"] == ["Algade 1"] and "position" not in location
    assert location["physicalType"]["coding"][0]["code"] == "bu"
    organization = _get(client, f"/fhir/Organization/{code}", reader)
    kinds = {a["type"]: a["postalCode"] for a in organization["address"]}
    assert kinds == {"postal": "9700", "physical": "9700"}  # inherited postal, own visiting


def test_unknown_ids_are_404_outcomes(client, register, reader):
    for path in ("/fhir/Organization/123451000016001", "/fhir/Organization/not-a-code",
                 "/fhir/Location/" + PRIVATE_OWNER, "/fhir/Patient/1"):
        response = client.get(path, headers=reader)
        assert response.status_code == 404, path
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "not-found"

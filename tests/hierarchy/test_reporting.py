"""Resolve, SHAK type-ahead and validation of a report's institution code, over HTTP."""

from __future__ import annotations

from datetime import date

import pytest

from hierarchy import service
from hierarchy.shak_import import import_shak_file
from hierarchy.sor_import import import_sor_files
from sorregistry.accounts.clients import create_client
from tests.conftest import fixture_path


@pytest.fixture
def auth(session) -> dict[str, str]:
    import_sor_files(session, [fixture_path("ONE_SYGEHUS.xml"), fixture_path("ONE_PRAKSIS.xml")],
                     actor="test")
    import_shak_file(session, fixture_path("shak_sample.TXT"), actor="test")
    _, token = create_client(session, "form", cvr="35095748", roles=["reporter"])
    return {"Authorization": f"Bearer {token}"}


def test_resolve_sor_code(client, auth):
    body = client.get("/api/v1/resolve?code=347831000016005", headers=auth).get_json()
    assert body["kind"] == "sor"
    assert body["interpretations"][0]["organisations"][0]["name"] == (
        "Roskilde Øjenklinik, beh. afsnit")


def test_resolve_ydernummer_without_zeros(client, auth):
    body = client.get("/api/v1/resolve?code=19062", headers=auth).get_json()
    assert body["kind"] == "ydernummer"
    found = next(i for i in body["interpretations"] if i["kind"] == "ydernummer")
    assert found["normalised"] == "019062"
    assert [o["sor_code"] for o in found["organisations"]] == ["8341000016002"]


def test_resolve_shak_code_names_its_carriers(client, auth):
    body = client.get("/api/v1/resolve?code=2529010", headers=auth).get_json()
    assert body["kind"] == "shak"
    assert body["interpretations"][0]["organisations"][0]["sor_code"] == "347831000016005"


def test_resolve_unknown_is_404_and_malformed_is_422(client, auth):
    unknown = client.get("/api/v1/resolve?code=999991000016002", headers=auth)
    assert unknown.status_code == 404 and "SOR code" in unknown.get_json()["message"]
    malformed = client.get("/api/v1/resolve?code=12AB-", headers=auth)
    assert malformed.status_code == 422
    assert "neither a SOR code" in malformed.get_json()["message"]


def test_shak_hospitals_by_code_and_name(client, auth):
    by_code = client.get("/api/v1/shak/hospitals?q=130", headers=auth).get_json()
    assert by_code["items"] and all(i["code"].startswith("130") for i in by_code["items"])
    rigshospitalet = next(i for i in by_code["items"] if i["code"] == "1301")
    assert rigshospitalet["name"] == "Rigshospitalet" and rigshospitalet["kind"] == "hospital"
    by_name = client.get("/api/v1/shak/hospitals?q=RIGSHOSP", headers=auth).get_json()
    assert "1301" in {i["code"] for i in by_name["items"]}


def test_shak_departments_limited_to_the_hospital(client, auth):
    body = client.get("/api/v1/shak/departments?hospital=1301&limit=100",
                      headers=auth).get_json()
    assert body["total"] > 0
    assert all(i["hospital"] == "1301" and i["kind"] != "hospital" for i in body["items"])
    bad = client.get("/api/v1/shak/departments?hospital=13", headers=auth)
    assert bad.status_code == 422


def _validate(client, auth, **body):
    response = client.post("/api/v1/reporting-unit/validate", json=body, headers=auth)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    return [f["code"] for f in result["errors"]], [f["code"] for f in result["warnings"]]


def test_validate_exactly_one_code(client, auth):
    assert _validate(client, auth, sor_code="347831000016005", shak_code="2529")[0] == [
        "both_codes"]
    assert _validate(client, auth)[0] == ["no_code"]


def test_validate_known_and_active(client, auth, session):
    assert _validate(client, auth, sor_code="347831000016005",
                     period_start="2026-10-01", period_end="2026-10-31") == ([], [])
    assert _validate(client, auth, sor_code="999991000016002")[0] == ["unknown"]
    assert _validate(client, auth, sor_code="12345")[0] == ["malformed"]
    service.change_organisation(session, "347831000016005", {"valid_to": date(2026, 10, 15)},
                                source="staff", actor="sds")
    errors, warnings = _validate(client, auth, sor_code="347831000016005",
                                 period_start="2026-10-01", period_end="2026-10-31")
    assert errors == [] and warnings == ["closes_in_period"]
    errors, _ = _validate(client, auth, sor_code="347831000016005",
                          period_start="2026-11-01", period_end="2026-11-30")
    assert errors == ["closed"]


def test_validate_shak_code_against_the_register(client, auth):
    assert _validate(client, auth, shak_code="1301", period_start="2010-01-01",
                     period_end="2010-01-31") == ([], [])
    errors, _ = _validate(client, auth, shak_code="1301", period_start="1970-01-01",
                          period_end="1970-01-31")
    assert errors == ["not_yet_valid"]
    assert _validate(client, auth, shak_code="1234")[0] == ["unknown"]


def test_validate_refuses_a_bad_body(client, auth):
    response = client.post("/api/v1/reporting-unit/validate",
                           json={"period_start": "not a date"}, headers=auth)
    assert response.status_code == 422
    assert "period_start" in response.get_json()["errors"]["json"]

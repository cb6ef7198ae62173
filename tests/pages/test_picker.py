"""The picker's page and its session-authenticated JSON: lists with column filters, the
SHAK type-ahead and reporting-unit validation."""

from __future__ import annotations

import pytest

from hierarchy.shak_import import import_shak_file
from tests.applications.helpers import EXISTING_SI, PRIVATE_SI
from tests.conftest import fixture_path
from tests.pages.helpers import add_user, csrf_token, login


@pytest.fixture
def reporter(client, people):
    login(client, people["reporter"].email)
    return client


def test_picker_page_has_every_list_and_a_filter_on_every_column(reporter):
    html = reporter.get("/picker").get_data(as_text=True)
    for name in ("Mit CVR – SI", "Mit CVR – Alle", "Statslig", "Regional", "Kommunal",
                 "Privat", "Valider"):
        assert name in html
    for column in ("sor_code", "name", "level", "entity_type", "ydernummer", "shak",
                   "postal_code"):
        assert f'data-filter="{column}"' in html
    assert 'id="sor_code"' in html and 'id="shak_hospital"' in html
    assert "SOR-kode eller SHAK-kode, ikke begge." in html


def test_my_cvr_all_uses_the_cvr_of_the_account(reporter):
    body = reporter.get("/picker/api/lists/my-cvr-all?name=søndergården").get_json()
    assert [item["sor_code"] for item in body["items"]] == [EXISTING_SI]
    item = body["items"][0]
    assert item["level"] == "SI" and item["entity_type_name"] == "plejehjem"
    assert item["postal_code"] == "8000" and body["total"] == 1
    # The private practice belongs to another CVR: not in "Mit CVR".
    everything = reporter.get("/picker/api/lists/my-cvr-all").get_json()
    assert PRIVATE_SI not in [item["sor_code"] for item in everything["items"]]
    # The CVR is never a parameter.
    forged = reporter.get("/picker/api/lists/my-cvr-all?cvr=25313763").get_json()
    assert forged == everything


def test_names_as_typed_and_suggestions(reporter):
    """Every spelling of Søndergården finds it; a typo finds nothing and suggests it."""
    answers = [reporter.get(f"/picker/api/lists/my-cvr-all?name={typed}").get_json()
               for typed in ("søndergården", "sondergarden", "soendergaarden", "SØNDERGÅRDEN")]
    assert all(answer == answers[0] for answer in answers)
    assert [item["sor_code"] for item in answers[0]["items"]] == [EXISTING_SI]
    assert answers[0]["suggestions"] == []
    typo = reporter.get("/picker/api/lists/my-cvr-all?name=sondergaden").get_json()
    assert typo["total"] == 0 and typo["suggestions"][0] == "sondergarden"


def test_ownership_list_with_column_filters(reporter):
    body = reporter.get("/picker/api/lists/privat?ydernummer=12345&level=SI").get_json()
    assert [item["sor_code"] for item in body["items"]] == [PRIVATE_SI]
    none = reporter.get("/picker/api/lists/privat?postal_code=8000").get_json()
    assert none["items"] == [] and none["total"] == 0
    bad = reporter.get("/picker/api/lists/privat?postal_code=8&level=XX")
    assert bad.status_code == 422 and "level" in bad.get_json()["errors"]


def test_my_cvr_without_a_cvr_on_the_account(client, session, people):
    add_user(session, "uden@example.dk", "Uden CVR", ["reporter"])
    login(client, "uden@example.dk")
    assert client.get("/picker/api/lists/my-cvr-si").status_code == 403
    assert "Din konto har intet CVR-nummer" in client.get("/picker").get_data(as_text=True)


def test_shak_type_ahead(reporter, session):
    import_shak_file(session, fixture_path("shak_sample.TXT"), actor="test")
    hospitals = reporter.get("/picker/api/shak/hospitals?q=rigshosp").get_json()
    assert "1301" in [item["code"] for item in hospitals["items"]]
    departments = reporter.get("/picker/api/shak/departments?hospital=1301").get_json()
    assert departments["items"]
    assert {item["hospital"] for item in departments["items"]} == {"1301"}
    assert reporter.get("/picker/api/shak/departments?hospital=13").status_code == 422


def _validate(client, **body):
    token = csrf_token(client.get("/picker").get_data(as_text=True))
    return client.post("/picker/api/validate", json=body, headers={"X-CSRFToken": token})


def test_validate_sor_or_shak_not_both(reporter):
    both = _validate(reporter, sor_code=EXISTING_SI, shak_code="1301").get_json()
    assert [e["code"] for e in both["errors"]] == ["both_codes"]
    assert "ikke begge" in both["errors"][0]["message"]
    good = _validate(reporter, sor_code=EXISTING_SI, period_start="2024-01-01",
                     period_end="2024-01-31").get_json()
    assert good["errors"] == [] and good["organisation"]["sor_code"] == EXISTING_SI
    assert _validate(reporter, sor_code=EXISTING_SI, period_start="jan").status_code == 422


def test_picker_json_needs_a_login(client, people):
    assert client.get("/picker/api/lists/statslig").status_code == 401
    assert client.get("/picker/api/shak/hospitals").status_code == 401

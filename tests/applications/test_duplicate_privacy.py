"""Duplicate warnings tell a municipality that another one applied, never what it applied.

Another municipality's application answers 404 to a municipality (tests/applications/
test_workflow.py); its duplicate candidates must not tell more than that: that one
exists. Staff see every candidate. Drafts are nobody's claim: another municipality's
draft is no candidate at all.
"""

from __future__ import annotations

import json

import pytest

from applications import service
from applications.views import actor_for
from tests.applications.helpers import (
    ODENSE,
    ODENSE_CVR,
    bearer,
    build_register,
    new_nursing_home,
)
from tests.pages.conftest import FreshGlobalsClient
from tests.pages.helpers import csrf_token, login, make_users

# Aarhus' application; Odense applies for something much like it (the same ydernummer,
# a similar name in the same postcode).
AARHUS_OWN = new_nursing_home(institution_name="Plejecenter Grænsehuset",
                              ydernummer="654321",
                              address={"street": "Skellet 1", "postal_code": "8000",
                                       "city": "Aarhus C"},
                              phone="87 11 11 11")
ODENSE_OWN = new_nursing_home(institution_name="Plejecentret Grænsehuset",
                              ydernummer="654321", contact_email="sor@odense.dk",
                              address={"street": "Skellet 3", "postal_code": "8000",
                                       "city": "Aarhus C"})
SECRETS = ("Skellet 1", "Plejecenter Grænsehuset", "87 11 11 11", "ANS-")


@pytest.fixture
def world(session):
    build_register(session)
    return {
        "aarhus": bearer(session, "municipality", name="Aarhus"),
        "odense": bearer(session, "municipality", cvr=ODENSE_CVR, municipality=ODENSE,
                         name="Odense"),
        "sds": bearer(session, "sds", cvr="29190909", name="SDS"),
    }


def _create(client, headers, body):
    response = client.post("/api/v1/applications", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _validate(client, headers, application):
    response = client.post(f"/api/v1/applications/{application['id']}/validate",
                           headers=headers)
    assert response.status_code == 200, response.get_json()
    return {w["code"]: w for w in response.get_json()["warnings"]}


def test_a_municipality_learns_only_that_another_applied(client, world):
    theirs = _create(client, world["aarhus"], AARHUS_OWN)
    assert client.post(f"/api/v1/applications/{theirs['id']}/submit",
                       headers=world["aarhus"]).status_code == 200
    mine = _create(client, world["odense"], ODENSE_OWN)

    warnings = _validate(client, world["odense"], mine)

    for code in ("duplicate_ydernummer", "similar_name"):
        assert warnings[code]["elsewhere"] is True
        assert "another municipality has an open application" in warnings[code]["message"]
        assert warnings[code].get("candidates", []) == []
    shown = json.dumps(warnings, ensure_ascii=False)
    assert not [secret for secret in SECRETS if secret in shown]
    assert f"\"id\": {theirs['id']}" not in shown and theirs["reference"] not in shown
    # ... just as reading it says nothing.
    assert client.get(f"/api/v1/applications/{theirs['id']}",
                      headers=world["odense"]).status_code == 404


def test_staff_see_every_candidate(client, world):
    theirs = _create(client, world["aarhus"], AARHUS_OWN)
    client.post(f"/api/v1/applications/{theirs['id']}/submit", headers=world["aarhus"])
    mine = _create(client, world["odense"], ODENSE_OWN)

    warnings = _validate(client, world["sds"], mine)

    for code in ("duplicate_ydernummer", "similar_name"):
        [candidate] = warnings[code]["candidates"]
        assert (candidate["reference"], candidate["institution_name"]) == (
            theirs["reference"], "Plejecenter Grænsehuset")
        assert candidate["address"]["street"] == "Skellet 1"
        assert "elsewhere" not in warnings[code]


def test_another_municipalitys_draft_is_no_candidate(client, world):
    _create(client, world["aarhus"], AARHUS_OWN)  # a draft, never sent
    mine = _create(client, world["odense"], ODENSE_OWN)

    for reader in ("odense", "sds"):
        warnings = _validate(client, world[reader], mine)
        assert "duplicate_ydernummer" not in warnings, reader
        assert "similar_name" not in warnings, reader


def test_a_municipalitys_own_draft_still_warns(client, world):
    first = _create(client, world["odense"], ODENSE_OWN)
    second = _create(client, world["odense"], ODENSE_OWN)
    warnings = _validate(client, world["odense"], second)
    [candidate] = warnings["duplicate_ydernummer"]["candidates"]
    assert candidate["reference"] == first["reference"] and candidate["status"] == "draft"


def test_the_form_shows_no_other_municipalitys_data(app, session):
    """The page's "Valider" reads the same findings as the API: Odense's form."""
    build_register(session)
    people = make_users(session)
    aarhus = service.create_application(session, actor_for(people["aarhus"]), AARHUS_OWN,
                                        source="web")
    service.submit_application(session, actor_for(people["aarhus"]), aarhus.id)
    session.commit()
    app.test_client_class = FreshGlobalsClient
    odense = app.test_client()
    login(odense, people["odense"].email)
    new = "/municipality/applications/new"
    values = {name: "" for name in service.EDITABLE_FIELDS}
    values.update(kind="new", contact_email="sor@odense.dk",
                  institution_name="Plejecentret Grænsehuset", street="Skellet 3",
                  postal_code="8000", city="Aarhus C", phone="66 00 00 00",
                  institution_type=ODENSE_OWN["institution_type"], ownership="kommunal",
                  ydernummer="654321")
    page = odense.get(new).get_data(as_text=True)
    response = odense.post(new, data={**values, "action": "validate",
                                      "csrf_token": csrf_token(page)})
    assert response.status_code == 303
    shown = odense.get(response.headers["Location"]).get_data(as_text=True)
    assert "lignende navn" in shown  # the warning is there ...
    assert aarhus.reference not in shown  # ... and nothing of Aarhus' application
    assert "Skellet 1" not in shown and "87 11 11 11" not in shown

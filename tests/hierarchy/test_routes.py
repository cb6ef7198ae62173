from __future__ import annotations

import pytest

from hierarchy.sor_import import import_sor_file
from sorregistry.accounts.clients import create_client
from tests.conftest import fixture_path


@pytest.fixture
def auth(session) -> dict[str, str]:
    _, token = create_client(session, "form", cvr="35095748", roles=["reporter"])
    return {"Authorization": f"Bearer {token}"}


def test_organisation_with_effective_values(client, session, auth):
    import_sor_file(session, fixture_path("Sor_small.xml"), actor="test")
    response = client.get("/api/v1/organisations/698491000016009", headers=auth)
    assert response.status_code == 200
    item = response.get_json()
    assert item["level"] == "OE" and item["ownership"] == "privat"
    assert item["cvr"] == "35095748"
    assert item["institution_sor_code"] == "698481000016007"
    assert item["owner_sor_code"] == "698471000016005"
    assert item["address"]["city"] == "Brønderslev"
    assert item["gln"] == "5790002401473"
    assert "postal_address" in item["inherited"] and "gln" in item["inherited"]
    assert item["entity_type"]["code"] == "255203001"
    assert "Brønderslev".encode() in response.data  # Danish letters, not \\u escapes


def test_unknown_and_malformed_codes(client, auth):
    unknown = client.get("/api/v1/organisations/123451000016001", headers=auth)
    assert unknown.status_code == 404
    assert unknown.get_json()["code"] == 404
    malformed = client.get("/api/v1/organisations/12345", headers=auth)
    assert malformed.status_code == 422
    body = malformed.get_json()
    assert body["status"] == "Unprocessable Entity" and "sor_code" in body["errors"]


def test_history(client, session, auth):
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="nightly")
    response = client.get("/api/v1/organisations/347811000016004/history", headers=auth)
    assert response.status_code == 200
    versions = response.get_json()["versions"]
    assert len(versions) == 1 and versions[0]["actor"] == "nightly"
    assert versions[0]["snapshot"]["shak"] == "2529"


def test_start_page_in_danish_and_english(client, session):
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
    danish = client.get("/")
    assert danish.status_code == 200
    assert "Sundhedsinstitutioner" in danish.get_data(as_text=True)
    english = client.get("/?lang=en")
    assert "Health institutions" in english.get_data(as_text=True)


def test_unknown_page_is_html_and_unknown_api_path_is_json(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.get_json()["code"] == 404


def test_openapi_document(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/organisations/{sor_code}" in response.get_json()["paths"]


def test_item_needs_a_token(client):
    assert client.get("/api/v1/organisations/123451000016001").status_code == 401


def test_interactive_docs_are_served_without_a_cdn(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert b"/api/docs/assets/swagger-ui-bundle.js" in page.data
    with client.get("/api/docs/assets/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200


def test_openapi_declares_bearer_and_describes_fields(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    organisation = spec["components"]["schemas"]["Organisation"]["properties"]
    assert all("description" in prop for prop in organisation.values())
    assert " / " in organisation["ydernummer"]["description"]  # English / Danish
    for path in ("/api/v1/lookups/my-cvr/all", "/api/v1/resolve", "/api/v1/shak/hospitals",
                 "/api/v1/reporting-unit/validate"):
        assert path in spec["paths"]


def test_nul_bytes_are_refused_not_a_server_error(client, auth):
    query = client.get("/api/v1/shak/hospitals?q=ab%00c", headers=auth)
    assert query.status_code == 400 and "NUL" in query.get_json()["message"]
    body = client.post("/api/v1/reporting-unit/validate", headers=auth,
                       data='{"sor_code": "1\\u0000"}', content_type="application/json")
    assert body.status_code == 400


def test_openapi_declares_the_caching_headers(client):
    """What a client may rely on to cache: ETag and Cache-Control on every lookup, 304 for a
    current If-None-Match, and X-Cache on the lookups the service keeps answers of."""
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in ("/api/v1/organisations", "/api/v1/lookups/my-cvr/si", "/api/v1/lookups/my-cvr/all",
                 "/api/v1/resolve", "/api/v1/shak/hospitals", "/api/v1/shak/departments"):
        responses = paths[path]["get"]["responses"]
        assert {"ETag", "Cache-Control"} <= set(responses["200"]["headers"]), path
        assert "304" in responses, path
        cached = not path.startswith("/api/v1/shak")
        assert ("X-Cache" in responses["200"]["headers"]) == cached, path
    ownership = next(v for k, v in paths.items() if k.startswith("/api/v1/lookups/ownership"))
    assert ownership["get"]["responses"]["200"]["headers"]["X-Cache"]["schema"]["enum"] == [
        "hit", "miss"]


def test_answers_carry_the_documented_caching_headers(client, auth):
    first = client.get("/api/v1/shak/hospitals?q=rig", headers=auth)
    assert first.status_code == 200 and first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=300, must-revalidate"
    again = client.get("/api/v1/shak/hospitals?q=rig",
                       headers={**auth, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""

"""Bad input gets an OperationOutcome with a 4xx, never a 500, and changes nothing:
malformed values, unknown modifiers, oversized pages, forged page tokens - by hand, and a
hypothesis walk over the parameters (schemathesis speaks OpenAPI, not FHIR)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hierarchy.fhir.parameters import PARAMETERS, RESULT_PARAMETERS
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from sorregistry.ratelimit import limiter
from sorregistry.ratelimit_storage import DatabaseStorage
from tests.fhir.conftest import EYE_OWNER, FOOT_CLINIC
from tests.support.fhir import ValidatingClient


def _refused(response, status=400):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    return body


@pytest.mark.parametrize("query", [
    "_lastUpdated=2020-13", "_lastUpdated=yesterday", "_lastUpdated=gt", "_lastUpdated=2020-02-30",
    "_lastUpdated=2020-01-01T25:00Z", "_lastUpdated=0000", "_lastUpdated=ne2020",
    "_lastUpdated=ap2020", "_lastUpdated=xx2020", "_lastUpdated=2020-01-01T10:00+25:00",
    "_lastUpdated=2020,2021", "_count=100000", "_count=-1", "_count=1.5", "_count=ten",
    "_count=501", "_total=maybe", "_summary=true", "_sort=-name", "_sort=name,_id",
    "_sort=address", "_include=Organization:endpoint", "_include:iterate=Organization:partof",
    "_revinclude=PractitionerRole:organization", "name:missing=x", "name:text=x",
    "identifier:of-type=x", "name=a,b", "name=a&name=b", "active=maybe", "active:not=true",
    "partof=Patient/1", f"partof={EYE_OWNER},{FOOT_CLINIC}", "partof:child=1",
    "identifier=urn:oid:1.2.208.176.1.4|", "type=http://snomed.info/sct|", "_id=" + ",".join(
        ["x"] * 51), "name=" + "a" * 101, "_format=xml", "_format=text/turtle",
    "_count=5&_count=6", "_cursor=abc",
])
def test_a_bad_search_is_400(client, register, reader, query):
    _refused(client.get(f"/fhir/Organization?{query}", headers=reader))


@pytest.mark.parametrize("query", ["status=gone", "partof:below=1", "organization=Patient/1"])
def test_a_bad_location_search_is_400(client, register, reader, query):
    _refused(client.get(f"/fhir/Location?{query}", headers=reader))


def test_an_organization_parameter_is_unknown_to_locations(client, register, reader):
    strict = {**reader, "Prefer": "handling=strict"}
    _refused(client.get("/fhir/Location?address-city=Aarhus", headers=strict))
    lenient = client.get("/fhir/Location?address-city=Aarhus", headers=reader).get_json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"


def _next(bundle):
    return next(link["url"] for link in bundle["link"] if link["relation"] == "next")


def _token(url):
    return parse_qs(urlsplit(url).query)["_cursor"][0]


def test_forged_and_foreign_page_tokens_are_400(client, register, reader):
    first = client.get("/fhir/Organization?_count=2", headers=reader).get_json()
    token = _token(_next(first))
    payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["p"] = data["p"][:-2] + "AA"  # another keyset position, same signature
    altered = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    for forged in (f"{altered}.{signature}", token[:-3] + "xyz", "not.a.token", "....",
                   "%00", token + token):
        _refused(client.get(f"/fhir/Organization?_count=2&_cursor={quote(forged)}",
                            headers=reader))
    # A true token, sent with another search (or another page size) than its own.
    _refused(client.get(f"/fhir/Organization?_count=3&_cursor={token}", headers=reader))
    _refused(client.get(f"/fhir/Location?_count=2&_cursor={token}", headers=reader))
    _refused(client.get(f"/fhir/Organization/_history?_count=2&_cursor={token}",
                        headers=reader))
    # ... and with its own, it works.
    again = client.get(f"/fhir/Organization?_count=2&_cursor={token}", headers=reader)
    assert again.status_code == 200


def test_bad_history_parameters_are_400(client, register, reader):
    for query in ("_since=soon", "_count=0", "_count=501", "_since=2020&_since=2021",
                  "_cursor=forged"):
        _refused(client.get(f"/fhir/Organization/_history?{query}", headers=reader))
    strict = {**reader, "Prefer": "handling=strict"}
    _refused(client.get("/fhir/Organization/_history?_at=2020", headers=strict))
    lenient = client.get("/fhir/Organization/_history?_at=2020&_count=1", headers=reader)
    assert lenient.status_code == 200


def test_methods_bodies_and_bytes_the_directory_does_not_take(client, register, reader):
    _refused(client.put(f"/fhir/Organization/{FOOT_CLINIC}", json={}, headers=reader), 405)
    _refused(client.delete(f"/fhir/Organization/{FOOT_CLINIC}", headers=reader), 405)
    _refused(client.post("/fhir/Organization", json={"resourceType": "Organization"},
                         headers=reader), 405)
    _refused(client.post("/fhir/Organization/_search", data=b"<xml/>", headers={
        **reader, "Content-Type": "application/xml"}), 415)
    _refused(client.get("/fhir/Organization?name=a%00b", headers=reader))
    _refused(client.get("/fhir/Organization/_history/abc", headers=reader), 404)
    _refused(client.get(f"/fhir/Organization/{FOOT_CLINIC}/_history/abc", headers=reader), 404)
    _refused(client.get(f"/fhir/Organization/{FOOT_CLINIC}/_history/9", headers=reader), 404)


NAMES = sorted({*PARAMETERS["Organization"], *RESULT_PARAMETERS, "unknown", "_pretty"})
MODIFIERS = ["", ":contains", ":exact", ":below", ":above", ":missing", ":not", ":iterate"]
VALUES = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=40),
    st.sampled_from(["ge2020-01-01", "lt2099", "eq2024-02-29T10:00:00.123+02:00", "0", "500",
                     "true", "false", "Organization/" + EYE_OWNER, EYE_OWNER, "a|b", "\\,",
                     "|019062", "urn:oid:1.2.208.176.1.4|1037", "name", "_lastUpdated",
                     "Organization:partof", "Location:organization", "ndjson", "json"]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(MODIFIERS), VALUES),
                max_size=4))
def test_any_parameters_get_an_answer_or_a_400_never_a_500(client, register, reader, pairs):
    query = "&".join(f"{quote(name + modifier)}={quote(value)}"
                     for name, modifier, value in pairs)
    response = client.get(f"/fhir/Organization?{query}", headers=reader)
    assert response.status_code in (200, 400), (query, response.get_data(as_text=True)[:300])
    if response.status_code == 400:
        _refused(response)


def test_a_client_over_its_rate_limit_gets_a_429_operation_outcome(fresh_database):
    """/fhir is a declared API: one budget per client with /api/v1 (sorregistry.ratelimit),
    its refusal an OperationOutcome (throttled) with Retry-After."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "RATELIMIT_ENABLED": True, "RATELIMIT_API": "3 per hour"})
    app.test_client_class = ValidatingClient
    try:
        with app.app_context():
            _, token = create_client(db.session, "greedy", cvr="35095748", roles=["reporter"])
            db.session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        client = app.test_client()
        assert [client.get("/fhir/Organization?name=x", headers=headers).status_code
                for _ in range(3)] == [200] * 3
        refused = client.get("/fhir/Organization?name=x", headers=headers)
        body = _refused(refused, 429)
        assert body["issue"][0]["code"] == "throttled"
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        assert client.get("/api/v1/shak/hospitals?q=a", headers=headers).status_code == 429
    finally:
        storage = limiter(app).storage
        if isinstance(storage, DatabaseStorage):
            storage.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

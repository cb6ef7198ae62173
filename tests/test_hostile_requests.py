"""Hostile requests an outside probe found answered with 500s or in the wrong order.

Each gets a clear 4xx and changes nothing, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import pytest

from applications.models import Application
from tests.applications.helpers import AARHUS, bearer, build_register, new_nursing_home
from tests.pages.conftest import FreshGlobalsClient
from tests.pages.helpers import csrf_token, login, make_users

DEEP = b'{"kind": ' + b"[" * 2000 + b"]" * 2000 + b"}"
LONE_SURROGATE = b'{"kind": "new", "institution_name": "Plejecenter \\ud800"}'
HUGE_INTEGER = b'{"kind": "new", "phone": ' + b"9" * 5000 + b"}"


@pytest.fixture
def tokens(session):
    build_register(session)
    return {
        "aarhus": bearer(session, "municipality", municipality=AARHUS, name="aarhus"),
        "reporter": bearer(session, "reporter", name="reporter"),
        "sds": bearer(session, "sds", name="sds"),
    }


def _count(session) -> int:
    return session.query(Application).count()


@pytest.mark.parametrize("body", [DEEP, LONE_SURROGATE, HUGE_INTEGER],
                         ids=["nested-2000", "lone-surrogate", "5000-digits"])
@pytest.mark.parametrize("path", ["/api/v1/applications", "/api/v1/reporting-unit/validate"])
def test_json_the_service_cannot_store_is_a_400(client, session, tokens, path, body):
    before = _count(session)
    headers = {**tokens["aarhus" if path.endswith("applications") else "reporter"],
               "Content-Type": "application/json"}
    answer = client.post(path, data=body, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json["code"] == 400 and answer.json["message"]
    assert _count(session) == before


def test_a_body_that_is_not_json_is_a_415(client, session, tokens):
    before = _count(session)
    answer = client.post("/api/v1/applications", data="kind=new",
                         headers={**tokens["aarhus"], "Content-Type": "text/plain"})
    assert answer.status_code == 415 and "application/json" in answer.json["message"]
    assert _count(session) == before


def test_authentication_comes_before_validation(client, session, tokens):
    bad_body = {"kind": "neither", "ownership": 7}
    assert client.post("/api/v1/applications", json=bad_body).status_code == 401
    forged = client.post("/api/v1/applications", json=bad_body,
                         headers={"Authorization": "Bearer sor_forged"})
    assert forged.status_code == 401
    # A reporter may not apply: 403, not the body's 422.
    assert client.post("/api/v1/applications", json=bad_body,
                       headers=tokens["reporter"]).status_code == 403
    # A reporter may not decide: 403 before the reason's 422.
    assert client.post("/api/v1/applications/1/reject", json={},
                       headers=tokens["reporter"]).status_code == 403
    # With the right role the body's rules apply.
    assert client.post("/api/v1/applications", json=bad_body,
                       headers=tokens["aarhus"]).status_code == 422


def test_a_valid_body_still_works(client, session, tokens):
    made = client.post("/api/v1/applications", json=new_nursing_home(),
                       headers=tokens["aarhus"])
    assert made.status_code == 201


@pytest.fixture
def pages(app, session):
    build_register(session)
    make_users(session)
    app.test_client_class = FreshGlobalsClient
    return app.test_client()


@pytest.mark.parametrize("path", [
    "/staff/applications/99999999999999999999",
    "/staff/applications/9223372036854775808",
    "/staff/mail/99999999999999999999",
    "/staff/mail/99999999999999999999/raw",
    "/staff/outbox/99999999999999999999",
    "/municipality/applications/99999999999999999999",
    "/api/v1/outbox/99999999999999999999",
])
def test_ids_beyond_64_bits_are_no_page(pages, path):
    login(pages, "sagsbehandler@sundhedsdata.dk" if path.startswith(("/staff", "/api"))
          else "sor@aarhus.dk")
    assert pages.get(path).status_code == 404


def test_nul_in_the_login_form_is_a_400_not_a_500(pages, session):
    answer = login(pages, "sor@aarhus.dk\x00", password="x\x00y")
    assert answer.status_code == 400


@pytest.mark.parametrize("path", [
    "/picker/api/lists/privat?name=a%00b",
    "/picker/api/shak/hospitals?q=a%00b",
    "/picker?name=a%00b",
])
def test_nul_in_a_page_query_is_a_400(pages, path):
    login(pages, "indberetter@aarhus.dk")
    assert pages.get(path).status_code == 400


@pytest.mark.parametrize("query", [b"code=a%00b", b"code=%2500%00", b"code=a\x00b"],
                         ids=["encoded", "encoded-after-an-encoded-percent", "raw"])
def test_nul_in_an_api_query_is_a_400_encoded_or_raw(client, tokens, query):
    # The guard looks for %00 and a raw NUL in the query as sent, not in a decoded copy.
    answer = client.get("/api/v1/resolve", headers=tokens["reporter"],
                        environ_overrides={"QUERY_STRING": query.decode("latin-1")})
    assert answer.status_code == 400 and "NUL" in answer.json["message"]


def test_an_encoded_percent_before_zeros_is_no_nul(client, tokens):
    answer = client.get("/api/v1/resolve?code=%2500", headers=tokens["reporter"])
    assert answer.status_code == 422  # "%00" as text: not a code, but no NUL either


@pytest.mark.parametrize("query", [
    "limit=" + "9" * 5000, "&".join(["level=XX"] * 1000), "limit=x&limit=1",
    "name_match=%ff%fe", "active_on=2026-02-30",
], ids=["huge-integer", "a-bad-key-a-thousand-times", "repeated-plain-key-first-refused",
        "no-utf-8", "no-such-day"])
def test_a_lookups_query_its_fields_refuse_is_a_422_with_webargs_messages(client, tokens, query):
    # The flat query load (sorregistry.api._FlatQuery) leaves whatever a field refuses to
    # webargs: the answer is its 422 with the field's message, never a 500.
    answer = client.get(f"/api/v1/lookups/ownership/privat?{query}",
                        headers=tokens["reporter"])
    assert answer.status_code == 422, answer.json
    assert set(answer.json["errors"]["query"]) <= {"limit", "level", "name_match", "active_on"}


@pytest.mark.parametrize("path", ["/api/v1/resolve", "/api/v1/lookups/ownership/privat"])
def test_raw_bytes_that_are_no_utf8_in_a_query_are_read_escaped_not_a_500(client, tokens, path):
    # A client that sends bytes past ASCII unescaped: werkzeug's args raised
    # UnicodeDecodeError (a 500); they are read as their %-escapes, as werkzeug reads an
    # escaped byte it cannot decode, and the lookup refuses the code or name it got.
    query = b"code=\xff\xfe" if path.endswith("resolve") else b"name_match=\xff"
    answer = client.get(path, headers=tokens["reporter"],
                        environ_overrides={"QUERY_STRING": query.decode("latin-1")})
    assert answer.status_code == 422, answer.get_data(as_text=True)
    if path.endswith("resolve"):
        assert "%FF%FE" in answer.json["message"]


def test_nul_in_the_municipality_form_is_a_400_and_stores_nothing(pages, session):
    login(pages, "sor@aarhus.dk")
    before = _count(session)
    form = pages.get("/municipality/applications/new").get_data(as_text=True)
    answer = pages.post("/municipality/applications/new", data={
        "csrf_token": csrf_token(form), "kind": "new", "institution_name": "Pleje\x00hjem"})
    assert answer.status_code == 400
    assert _count(session) == before

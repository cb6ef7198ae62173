"""The outbox API: staff (sds) only; list, one mail with its attempts, retry."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from notifications import service
from sorregistry.accounts.clients import create_client, identity_for_token
from tests.notifications.conftest import approve

OPERATIONS = [
    ("GET", "/api/v1/outbox"),
    ("GET", "/api/v1/outbox/1"),
    ("POST", "/api/v1/outbox/1/retry"),
]


@pytest.fixture
def tokens(session) -> dict[str, str]:
    return {
        role: create_client(
            session, f"{role} client", cvr="35095748", roles=[role],
            municipality_code="0751" if role == "municipality" else None,
        )[1]
        for role in ("sds", "reporter", "municipality")
    }


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def failed(session):
    """Two mails enqueued; the first failed for good (one attempt allowed)."""
    first, second = approve(session)
    policy = service.Policy(max_attempts=1)
    outgoing = service.claim(session, worker="w1", limit=1, policy=policy)[0]
    assert outgoing.id == first.id
    service.record_failure(session, outgoing, "421 try later", worker="w1", policy=policy)
    return first, second


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_without_a_token_401(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", ["reporter", "municipality"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_only_staff_see_the_outbox(client, tokens, failed, role, method, path):
    response = client.open(path, method=method, headers=_auth(tokens[role]))
    assert response.status_code == 403
    assert response.get_json()["message"] == "this needs the role sds"


def test_staff_list_the_outbox_newest_first(client, tokens, failed):
    first, second = failed
    response = client.get("/api/v1/outbox", headers=_auth(tokens["sds"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 2 and body["next"] is None
    assert [item["id"] for item in body["items"]] == [second.id, first.id]
    item = body["items"][1]
    assert item["status"] == "failed" and item["attempts"] == 1
    assert item["last_error"] == "421 try later"
    assert item["subject"].startswith("SOR-kode tildelt: Plejehjemmet Ærøskøbing Å")
    assert item["reference"] == "A-2026-0042" and item["application_id"] == 42
    assert "body_html" not in item


def test_staff_filter_by_status_and_page(client, tokens, failed, session):
    only_failed = client.get("/api/v1/outbox?status=failed", headers=_auth(tokens["sds"]))
    assert [i["id"] for i in only_failed.get_json()["items"]] == [failed[0].id]
    assert only_failed.get_json()["total"] == 1
    approve(session, reference="A-2026-0043")
    seen: list[int] = []
    url = "/api/v1/outbox?limit=3"
    while url:
        page = client.get(url, headers=_auth(tokens["sds"])).get_json()
        assert page["total"] == 4
        seen += [item["id"] for item in page["items"]]
        url = f"/api/v1/outbox?limit=3&cursor={page['next']}" if page["next"] else None
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 4


@pytest.mark.parametrize("query", ["status=lost", "limit=0", "limit=501", "cursor=abc",
                                   "cursor=0", "cursor=99999999999999999999"])
def test_bad_list_arguments_422(client, tokens, query):
    response = client.get(f"/api/v1/outbox?{query}", headers=_auth(tokens["sds"]))
    assert response.status_code == 422


def test_one_mail_with_its_attempts(client, tokens, failed):
    response = client.get(f"/api/v1/outbox/{failed[0].id}", headers=_auth(tokens["sds"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["message_id"] == failed[0].message_id
    assert "900000011000016001" in body["body_text"] and body["body_html"].startswith("<!DOCTYPE")
    assert [(a["number"], a["worker"], a["outcome"], a["error"]) for a in body["attempt_log"]] == [
        (1, "w1", "error", "421 try later")
    ]


@pytest.mark.parametrize("outbox_id", ["999999", str(2**63), "0"])
def test_unknown_mail_404(client, tokens, outbox_id):
    for method, path in (("GET", f"/api/v1/outbox/{outbox_id}"),
                         ("POST", f"/api/v1/outbox/{outbox_id}/retry")):
        assert client.open(path, method=method, headers=_auth(tokens["sds"])).status_code == 404


def test_retry_puts_a_failed_mail_back_in_the_queue(client, tokens, failed):
    first, second = failed
    response = client.post(f"/api/v1/outbox/{first.id}/retry", headers=_auth(tokens["sds"]))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued" and body["attempts"] == 0
    assert body["last_error"] == "421 try later"  # kept for the record
    assert [(a["outcome"], a["worker"]) for a in body["attempt_log"]] == [
        ("error", "w1"), ("retried", f"staff: sds client (client {_client_id(tokens)})"),
    ]
    listed = client.get("/api/v1/outbox?status=failed", headers=_auth(tokens["sds"]))
    assert listed.get_json()["total"] == 0
    # Only a failed mail can be retried.
    again = client.post(f"/api/v1/outbox/{first.id}/retry", headers=_auth(tokens["sds"]))
    assert again.status_code == 409
    queued = client.post(f"/api/v1/outbox/{second.id}/retry", headers=_auth(tokens["sds"]))
    assert queued.status_code == 409 and "is queued" in queued.get_json()["message"]


def _client_id(tokens) -> int:
    return identity_for_token(tokens["sds"]).id


def test_the_outbox_operations_conform_to_their_schema(app, tokens, failed):
    """Schemathesis over the outbox's operations with a staff token (the suite-wide
    conformance test uses a reporter, who only ever gets 403 here)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = _auth(tokens["sds"])
    operations = [
        result.ok() for result in schema.get_all_operations()
        if result.ok().path.startswith("/api/v1/outbox")
    ]
    assert len(operations) == 3
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers=headers)

        try:
            check()
        except Exception as exc:  # name the operation in the failure
            raise AssertionError(f"{operation.label}: {exc}") from exc

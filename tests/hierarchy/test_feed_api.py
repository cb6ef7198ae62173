"""GET /api/v1/changes: pages, cursors, refusals (on SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import time

import pytest

from hierarchy import service
from hierarchy.feed.cursor import CURSOR_LENGTH, encode_cursor
from hierarchy.models import FeedState
from hierarchy.sor_import import import_sor_files
from sorregistry.accounts.clients import create_client
from tests.conftest import fixture_path

FILES = [fixture_path(name) for name in ("ONE_SYGEHUS.xml", "ONE_PRAKSIS.xml",
                                         "Sor_small.xml")]


def _bearer(session, *roles: str) -> dict[str, str]:
    extra = {"municipality_code": "0751"} if "municipality" in roles else {}
    _, token = create_client(session, "feed", cvr="29190909", roles=list(roles), **extra)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def reporter(session) -> dict[str, str]:
    import_sor_files(session, FILES, actor="test")
    session.commit()
    return _bearer(session, "reporter")


def _key(session) -> bytes:
    return bytes.fromhex(session.query(FeedState).one().cursor_key)


def test_the_feed_is_read_page_by_page_and_an_empty_page_keeps_its_cursor(
        client, session, reporter):
    everything = client.get("/api/v1/changes?limit=1000", headers=reporter).get_json()
    assert everything["more"] is False and len(everything["items"]) >= 10
    positions = [item["position"] for item in everything["items"]]
    assert positions == sorted(set(positions))

    pages, cursor = [], None
    while True:
        url = "/api/v1/changes?limit=3" + (f"&after={cursor}" if cursor else "")
        page = client.get(url, headers=reporter).get_json()
        pages.append(page)
        cursor = page["next"]
        if not page["more"]:
            break
    assert [item for page in pages for item in page["items"]] == everything["items"]
    assert len(pages) >= 4 and all(len(page["items"]) == 3 for page in pages[:-1])
    assert len(cursor) == CURSOR_LENGTH

    empty = client.get(f"/api/v1/changes?after={cursor}", headers=reporter).get_json()
    assert empty == {"items": [], "next": cursor, "more": False}
    # A change arrives: the same cursor reads it, and only it.
    service.change_organisation(session, positions and everything["items"][0]["sor_code"],
                                {"name": "Omdøbt"}, source="staff", actor="t")
    session.commit()
    fresh = client.get(f"/api/v1/changes?after={cursor}", headers=reporter).get_json()
    assert [(i["change"], i["changed_fields"], i["organisation"]["name"])
            for i in fresh["items"]] == [("changed", ["name"], "Omdøbt")]
    assert fresh["items"][0]["position"] > positions[-1]


def test_an_entry_shows_what_the_organisation_item_shows(client, reporter):
    items = client.get("/api/v1/changes?limit=1000", headers=reporter).get_json()["items"]
    entry = items[-1]
    assert set(entry) >= {"position", "sor_code", "change", "recorded_at", "source",
                          "reference", "changed_fields", "organisation", "valid_from",
                          "valid_to", "inherited", "took_effect_on"}
    shown = client.get(f"/api/v1/organisations/{entry['sor_code']}",
                       headers=reporter).get_json()
    assert entry["organisation"] == shown
    assert entry["recorded_at"].endswith("+00:00")


@pytest.mark.parametrize("cursor, reason", [
    ("", "cut short"),
    ("AQAAAAAAAAAB", "cut short"),
    ("AQAAAAAAAAANSJZqVGoqkFc0bfDBAAAA", "too long"),
    ("!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "not base64url"),
    ("ææææææææææææææææææææææææææææ", "not base64url"),
    ("AgAAAAAAAAANSJZqVGoqkFc0bfDB", "unknown cursor format"),
])
def test_a_cursor_not_whole_is_a_400_that_says_why(client, reporter, cursor, reason):
    response = client.get("/api/v1/changes", query_string={"after": cursor}, headers=reporter)
    assert response.status_code == 400
    body = response.get_json()
    assert reason in body["errors"]["after"][0]


def test_a_forged_cursor_is_a_400_never_a_restart(client, session, reporter):
    key = _key(session)
    genuine = encode_cursor(3, key)
    raw = bytearray(base64.urlsafe_b64decode(genuine + "="))
    raw[8] = 0  # another position, the signature kept
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    elsewhere = encode_cursor(3, b"another register's key, not ours")
    for cursor in (forged, elsewhere):
        response = client.get(f"/api/v1/changes?after={cursor}", headers=reporter)
        assert response.status_code == 400
        assert "signature does not match" in response.get_json()["message"]
    assert client.get(f"/api/v1/changes?after={genuine}", headers=reporter).status_code == 200


def test_a_cursor_past_the_register_is_refused(client, session, reporter):
    ahead = encode_cursor(10**9, _key(session))
    response = client.get(f"/api/v1/changes?after={ahead}", headers=reporter)
    assert response.status_code == 400
    assert "past this register's last" in response.get_json()["message"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-5", "limit=x",
                                   "wait=31", "wait=-1", "wait=nan", "wait=inf", "wait=x"])
def test_limit_and_wait_out_of_range_are_422(client, reporter, query):
    response = client.get(f"/api/v1/changes?{query}", headers=reporter)
    assert response.status_code == 422
    assert query.split("=")[0] in response.get_json()["errors"]["query"]


def test_the_feed_is_for_reporters_and_staff(client, session, reporter):
    assert client.get("/api/v1/changes").status_code == 401
    municipality = _bearer(session, "municipality")
    assert client.get("/api/v1/changes", headers=municipality).status_code == 403
    staff = _bearer(session, "sds")
    assert client.get("/api/v1/changes", headers=staff).status_code == 200


def test_waiting_on_a_transaction_of_its_own_returns_at_once(client, reporter):
    # The tests' session is one connection in a transaction: nothing else can commit on
    # it while the request holds it, so waiting could only time out.
    last = client.get("/api/v1/changes?limit=1000", headers=reporter).get_json()["next"]
    started = time.monotonic()
    page = client.get(f"/api/v1/changes?after={last}&wait=30", headers=reporter).get_json()
    assert page["items"] == [] and time.monotonic() - started < 5


def test_a_page_read_again_is_a_304_until_its_span_moves(client, session, reporter):
    # The ETag names the page's span (hierarchy.feed.routes._etag), not its bytes' digest.
    url = "/api/v1/changes?limit=3"
    first = client.get(url, headers=reporter)
    again = client.get(url, headers={**reporter, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    later = client.get(f"{url}&after={first.get_json()['next']}", headers=reporter)
    assert later.headers["ETag"] != first.headers["ETag"]
    # The last page: an entry arriving moves its span, and with it its ETag.
    everything = client.get("/api/v1/changes?limit=1000", headers=reporter)
    service.change_organisation(session, everything.get_json()["items"][0]["sor_code"],
                                {"phone": "12345678"}, source="staff", actor="t")
    session.commit()
    moved = client.get("/api/v1/changes?limit=1000",
                       headers={**reporter, "If-None-Match": everything.headers["ETag"]})
    assert moved.status_code == 200 and moved.headers["ETag"] != everything.headers["ETag"]
    assert len(moved.get_json()["items"]) > len(everything.get_json()["items"])

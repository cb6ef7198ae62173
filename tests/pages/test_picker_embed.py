"""The embeddable picker (issue 15, item 5) through the test client: who may frame it,
the picker token an embedding site's server asks for, and what the token opens.
The browser side (a page of another origin frames it and hears the choice; an origin
not listed cannot frame it) is in test_browser_embed.py."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from hierarchy import embed
from sorregistry.config import ConfigurationError, from_environment
from tests.applications.helpers import AARHUS_CVR, EXISTING_SI, PRIVATE_CVR, bearer
from tests.pages.helpers import login

SEI = "https://sei.example.dk"
OTHER = "https://evil.example.net"


@pytest.fixture
def origins(app):
    app.config["PICKER_ORIGINS"] = (SEI, "http://127.0.0.1:8001")
    return app


def _token(client, headers, origin=SEI):
    return client.post("/api/v1/picker/tokens", json={"origin": origin}, headers=headers)


def _frame_policy(answer) -> str:
    policy = answer.headers["Content-Security-Policy"]
    return next(part for part in policy.split("; ") if part.startswith("frame-ancestors"))


def test_a_listed_origin_may_frame_the_embedded_picker_and_nothing_else(client, origins):
    answer = client.get(f"/picker?embed=1&origin={SEI}")
    assert answer.status_code == 200
    assert _frame_policy(answer) == f"frame-ancestors 'self' {SEI}"  # that one origin
    assert "X-Frame-Options" not in answer.headers
    html = answer.get_data(as_text=True)
    assert f'data-embed-origin="{SEI}"' in html
    assert 'data-list="kommunal"' in html
    assert "pages-nav" not in html and 'id="validate"' not in html  # no site navigation
    assert "Set-Cookie" not in answer.headers  # no session made for a frame


@pytest.mark.parametrize("query", [
    f"embed=1&origin={OTHER}", "embed=1&origin=", "embed=1&origin=*", "embed=1&origin=null",
    f"embed=1&origin={SEI}/path", f"embed=1&origin={SEI}%20{OTHER}",
])
def test_an_origin_not_listed_gets_400_and_no_framing(client, origins, query):
    answer = client.get(f"/picker?{query}")
    assert answer.status_code == 400
    assert _frame_policy(answer) == "frame-ancestors 'none'"
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_the_rest_of_the_site_keeps_frame_ancestors_none(client, origins, people):
    login(client, people["reporter"].email)
    for path in ("/picker", "/login", "/"):
        answer = client.get(path)
        assert _frame_policy(answer) == "frame-ancestors 'none'", path
        assert answer.headers["X-Frame-Options"] == "DENY", path


def test_without_origin_every_listed_origin_may_frame_it(client, origins):
    answer = client.get("/picker?embed=1")
    assert answer.status_code == 200
    assert _frame_policy(answer) == f"frame-ancestors 'self' {SEI} http://127.0.0.1:8001"
    html = answer.get_data(as_text=True)
    # The script posts to its parent's origin only when it is one of these.
    assert f"""data-embed-origins='["{SEI}", "http://127.0.0.1:8001"]'""" in html
    assert "data-embed-origin=" not in html


@pytest.mark.parametrize("query", ["embed=1", f"embed=1&origin={SEI}"])
def test_no_origins_configured_no_embedding(client, query):
    answer = client.get(f"/picker?{query}")
    assert answer.status_code == 400
    assert _frame_policy(answer) == "frame-ancestors 'none'"


def test_a_client_gets_a_token_that_opens_the_lists_with_its_cvr(client, session, origins,
                                                               people):
    answer = _token(client, bearer(session, "reporter", cvr=AARHUS_CVR))
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["expires_in"] == embed.TOKEN_SECONDS
    assert body["url"].endswith(f"/picker?embed=1&origin={SEI}#token={body['token']}")
    fresh = client.application.test_client()  # no cookie: only the token
    headers = {"Authorization": f"Bearer {body['token']}"}
    mine = fresh.get("/picker/api/lists/my-cvr-all", headers=headers)
    assert mine.status_code == 200
    assert [item["sor_code"] for item in mine.get_json()["items"]] == [EXISTING_SI]
    assert fresh.get("/picker/api/lists/kommunal", headers=headers).get_json()["total"] >= 1


def test_the_token_opens_only_the_lists(client, session, origins, people):
    token = _token(client, bearer(session, "reporter")).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    fresh = client.application.test_client()
    assert fresh.get("/picker/api/shak/hospitals", headers=headers).status_code == 401
    assert fresh.get("/picker", headers=headers).status_code == 302  # to the login
    # Not an API credential either.
    assert fresh.get("/api/v1/lookups/ownership/privat", headers=headers).status_code == 401


@pytest.mark.parametrize("origin", [OTHER, "*", "not an origin", ""])
def test_a_token_for_an_origin_not_listed_is_refused(client, session, origins, origin):
    answer = _token(client, bearer(session, "reporter"), origin)
    assert answer.status_code == 422
    assert "origin" in str(answer.get_json()["errors"])


def test_a_token_needs_an_api_client(client, origins):
    assert client.post("/api/v1/picker/tokens", json={"origin": SEI}).status_code == 401


def test_forged_expired_and_unlisted_tokens_open_nothing(client, session, origins, app,
                                                         people):
    fresh = client.application.test_client()

    def lists(token: str) -> int:
        return fresh.get("/picker/api/lists/privat",
                         headers={"Authorization": f"Bearer {token}"}).status_code

    assert lists("x") == 401
    assert fresh.get("/picker/api/lists/privat").status_code == 401
    forged = URLSafeTimedSerializer("another key", salt="sor-picker-embed").dumps(
        {"c": "x", "v": PRIVATE_CVR, "o": SEI})
    assert lists(forged) == 401
    with app.test_request_context():
        good = embed.issue_token("client", PRIVATE_CVR, SEI)
        expired = _expired(app.config["SECRET_KEY"])
    assert lists(good) == 200
    assert lists(expired) == 401
    app.config["PICKER_ORIGINS"] = ("http://127.0.0.1:8001",)  # SEI taken off the list
    assert lists(good) == 401


def _expired(secret: str) -> str:
    """A token signed TOKEN_SECONDS + 1 seconds ago."""

    serializer = URLSafeTimedSerializer(secret, salt="sor-picker-embed")
    signer = serializer.make_signer()
    signer.get_timestamp = lambda: int(time.time()) - embed.TOKEN_SECONDS - 1  # type: ignore
    payload = serializer.dump_payload({"c": "client", "v": None, "o": SEI})
    return signer.sign(payload).decode()


@pytest.mark.parametrize("value", ["*", "https://sei.example.dk/form", "sei.example.dk",
                                   "javascript:alert(1)", "https://user@sei.example.dk"])
def test_the_origins_setting_takes_origins_only(value):
    with pytest.raises(ConfigurationError, match="SOR_PICKER_ORIGINS"):
        from_environment({"SOR_PICKER_ORIGINS": value})


def test_the_origins_setting_is_written_as_browsers_send_origins():
    read = from_environment({"SOR_PICKER_ORIGINS": "HTTPS://SEI.example.dk:443 "
                                                   "http://127.0.0.1:8001/"})
    assert read["PICKER_ORIGINS"] == (SEI, "http://127.0.0.1:8001")

"""People log in with the national identity: OpenID Connect against a real provider.

The service's side runs in Flask's test client; the browser's side at the provider (its
own login and consent pages) is a ``requests`` session of the test's: what a browser
would post there. Local login is off (``SOR_LOCAL_LOGIN=0``) unless a test says so.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.oidc.core import CodeIDToken
from joserfc.errors import InvalidClaimError, MissingClaimError
from joserfc.jwk import RSAKey
from sqlalchemy import select

from sorregistry.accounts import oidc, roles
from sorregistry.accounts.models import LoginSession, User
from sorregistry.audit import AuditEvent
from tests.applications.helpers import AARHUS, AARHUS_CVR, EXISTING_SI
from tests.identity.conftest import SDS_CVR, identity_settings, start_provider
from tests.pages.helpers import add_user, csrf_token
from tests.pages.helpers import login as local_login
from tests.support.oidc_provider import log_in_at_provider, service_client

PKJWT_KEY = RSAKey.generate_key(2048, parameters={"kid": "sor-client-1", "alg": "RS256"})


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """The module's provider also knows the service as a private_key_jwt client."""
    jwks = {"keys": [PKJWT_KEY.as_dict(private=False)]}
    running = start_provider(tmp_path_factory.mktemp("oidc-login"), clients=[
        service_client("http://localhost", auth="private_key_jwt", jwks=jwks)])
    yield running
    running.stop()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def start(client, next_: str | None = None) -> str:
    """Start the flow here; the provider's authorization URL the browser is sent to."""
    answer = client.get("/login/oidc" + (f"?next={next_}" if next_ else ""))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return answer.headers["Location"]


def log_in(client, login: str, next_: str | None = None):
    """The whole flow for *login*: the service's answer to the callback."""
    callback = log_in_at_provider(requests.Session(), start(client, next_), login)
    return client.get(_path(callback))


@pytest.fixture
def aarhus_by_cvr(session):
    """SDS staff: everyone acting for Aarhus Kommune's CVR applies as municipality 0751."""
    return roles.grant_role(session, role="municipality", cvr=AARHUS_CVR,
                            municipality_code=AARHUS, granted_by="test")


def test_the_flow_asks_for_pkce_state_and_nonce(client, provider):
    query = parse_qs(urlsplit(start(client)).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["nonce"][0]
    assert query["client_id"] == ["sor"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["http://localhost/login/oidc/callback"]
    assert "openid" in query["scope"][0].split()


def test_a_person_logs_in_and_lands_on_the_municipality_page(client, session, register,
                                                              aarhus_by_cvr, provider):
    answer = log_in(client, "anne")
    assert answer.status_code == 303 and answer.headers["Location"] == "/municipality/"
    page = client.get("/municipality/").get_data(as_text=True)
    assert "Mine ansøgninger" in page and "Anne Aarhus" in page
    user = session.execute(select(User).where(User.oidc_subject == "anne")).scalar_one()
    assert user.oidc_issuer == provider.issuer and user.password_hash is None
    assert (user.cvr, user.roles, user.municipality_code) == (AARHUS_CVR, ["municipality"],
                                                              AARHUS)
    assert user.organisation == "Aarhus Kommune" and user.email == "anne@aarhus.dk"
    assert user.person_uuid.endswith("5f84398c2e25")
    # Mit CVR – Alle: the units of the CVR from the token.
    listed = client.get("/picker/api/lists/my-cvr-all").get_json()
    assert EXISTING_SI in [item["sor_code"] for item in listed["items"]]
    # An ordinary login session: known to the server, in the audit log, with the ID token.
    row = session.execute(select(LoginSession).where(LoginSession.user_id == user.id)
                          ).scalar_one()
    assert row.ended_at is None and row.id_token and row.id_token.count(".") == 2
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "login")
                            .order_by(AuditEvent.id)).scalars().all()[-1]
    assert event.details["method"] == "oidc" and event.details["cvr"] == AARHUS_CVR


def test_a_second_login_finds_the_same_account(client, session, register, provider):
    assert log_in(client, "anne").status_code == 303
    assert log_in(client.application.test_client(), "anne").status_code == 303
    assert len(session.execute(select(User).where(User.oidc_subject == "anne")
                               ).scalars().all()) == 1


def test_the_next_page_survives_the_trip(client, register, aarhus_by_cvr, provider):
    answer = log_in(client, "anne", next_="/picker")
    assert answer.headers["Location"] == "/picker"
    assert log_in(client.application.test_client(), "anne",
                  next_="//evil.example/").headers["Location"] == "/municipality/"


def test_roles_from_the_role_claim(client, session, provider):
    assert log_in(client, "sara").headers["Location"] == "/staff/"
    user = session.execute(select(User).where(User.oidc_subject == "sara")).scalar_one()
    assert user.roles == ["sds"] and user.cvr == SDS_CVR


def test_a_person_without_a_cvr_sees_the_pages_that_need_none(client, register, provider):
    assert log_in(client, "nocvr").headers["Location"] == "/picker"
    assert "Din konto har intet CVR-nummer" in client.get("/picker").get_data(as_text=True)
    assert client.get("/picker/api/lists/my-cvr-all").status_code == 403
    assert client.get("/municipality/").status_code == 403
    assert client.get("/picker/api/lists/kommunal").status_code == 200


def test_a_malformed_cvr_claim_refuses_the_login(client, session, provider):
    answer = log_in(client, "badcvr")
    assert answer.status_code == 400
    assert "CVR-nummer, som ikke er gyldigt" in answer.get_data(as_text=True)
    assert session.execute(select(User).where(User.oidc_subject == "badcvr")).first() is None


def test_an_email_of_another_account_is_not_taken(client, session, provider):
    add_user(session, "anne@aarhus.dk", "Local Anne", ["sds"])
    log_in(client, "anne")
    user = session.execute(select(User).where(User.oidc_subject == "anne")).scalar_one()
    assert user.email is None and user.roles == []  # no link by email, no sds role


# --- refusals at the callback ---------------------------------------------------------


def _refusal(answer, status: int, text: str) -> None:
    body = answer.get_data(as_text=True)
    assert answer.status_code == status, body
    assert 'id="login-refused"' in body and text in body


def test_a_callback_with_a_wrong_state(client, provider):
    start(client)
    _refusal(client.get("/login/oidc/callback?code=abc&state=not-ours"), 400,
             "forkert eller allerede brugt state")


def test_a_replayed_callback_and_a_replayed_code(client, register, provider):
    callback = log_in_at_provider(requests.Session(), start(client), "anne")
    assert client.get(_path(callback)).status_code == 303
    # The same answer again: its state was used up.
    _refusal(client.get(_path(callback)), 400, "forkert eller allerede brugt state")
    # The code with a fresh state of this browser: the provider refuses a used code.
    fresh = parse_qs(urlsplit(start(client)).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    _refusal(client.get(f"/login/oidc/callback?code={code}&state={fresh}"), 400,
             "afviste login-koden (invalid_grant)")


def test_a_wrong_nonce(client, provider):
    authorization = start(client)
    state = parse_qs(urlsplit(authorization).query)["state"][0]
    with client.session_transaction() as cookie:  # the browser's session says another nonce
        key = next(name for name in cookie if name.endswith(state))
        kept = json.loads(json.dumps(cookie[key]))
        kept["data"]["nonce"] = "not-the-nonce-sent"
        cookie[key] = kept
    callback = log_in_at_provider(requests.Session(), authorization, "anne")
    _refusal(client.get(_path(callback)), 400, "ID-tokenet fra identitetsudbyderen blev afvist")


def test_an_id_token_for_another_client_is_refused():
    """``aud`` must contain this client. Authlib alone accepts an ID token for another
    audience when its ``azp`` names this client; the service's claims options do not."""
    now = int(time.time())
    issued = {"iss": "https://op.example", "sub": "anne", "iat": now, "exp": now + 60,
              "nonce": "n"}
    params = {"nonce": "n", "client_id": "sor"}
    options = oidc.id_token_claims("https://op.example", "sor")
    CodeIDToken({**issued, "aud": "sor"}, {}, options, params).validate()
    CodeIDToken({**issued, "aud": ["sor", "other"], "azp": "sor"}, {}, options,
                params).validate()
    elsewhere = {**issued, "aud": ["other"], "azp": "sor"}
    CodeIDToken(elsewhere, {}, {}, params).validate()  # Authlib's own checks pass it
    with pytest.raises(InvalidClaimError, match="aud"):
        CodeIDToken(elsewhere, {}, options, params).validate()
    with pytest.raises(MissingClaimError, match="aud"):
        CodeIDToken({**issued, "azp": "sor"}, {}, options, params).validate()


def test_the_provider_says_no(client, provider):
    authorization = start(client)
    state = parse_qs(urlsplit(authorization).query)["state"][0]
    _refusal(client.get(f"/login/oidc/callback?error=access_denied&state={state}"), 401,
             "afbrudt hos identitetsudbyderen (access_denied)")


def test_a_deactivated_person_is_refused(client, session, runner, provider):
    assert log_in(client, "anne").status_code == 303
    assert runner.invoke(args=["deactivate-user", "anne"]).exit_code == 0
    assert client.get("/picker").status_code == 302  # the open session is dead
    answer = log_in(client.application.test_client(), "anne")
    assert answer.status_code == 403 and "spærret" in answer.get_data(as_text=True)


# --- the login page, local login, logout ----------------------------------------------


def test_with_local_login_off_only_the_provider_is_offered(client, session):
    page = client.get("/login").get_data(as_text=True)
    assert 'id="login-oidc"' in page and 'name="password"' not in page
    add_user(session, "lokal@example.dk", "Lokal", ["sds"])
    client.application.config["WTF_CSRF_ENABLED"] = False  # the page offers no token
    answer = client.post("/login", data={"email": "lokal@example.dk",
                                         "password": "korrekt hest batteri"})
    assert answer.status_code == 404
    assert session.execute(select(LoginSession)).first() is None


def test_logout_ends_the_session_here_and_at_the_provider(client, session, provider):
    log_in(client, "anne")
    page = client.get("/picker").get_data(as_text=True)
    answer = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert answer.status_code == 303
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{provider.issuer}/session/end"
    query = parse_qs(target.query)
    assert query["post_logout_redirect_uri"] == ["http://localhost/login"]
    assert query["client_id"] == ["sor"] and query["id_token_hint"][0].count(".") == 2
    row = session.execute(select(LoginSession).order_by(LoginSession.id)).scalars().all()[-1]
    assert row.end_reason == "logout" and row.id_token is None
    assert client.get("/picker").status_code == 302


def test_the_pages_may_post_on_to_the_provider(client, provider):
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert f"form-action 'self' {provider.issuer}" in policy


@pytest.fixture
def settings(request, provider, test_issuer):
    """Per test: the module's provider or one of the test's own (``own_provider``, to
    stop); local login on (``local_login_on``); the private_key_jwt client
    (``private_key_file``)."""
    chosen = (request.getfixturevalue("own_provider")
              if "own_provider" in request.fixturenames else provider)
    more = {}
    if "local_login_on" in request.fixturenames:
        more["LOCAL_LOGIN"] = True
    if "private_key_file" in request.fixturenames:
        more.update(OIDC_CLIENT_ID="sor-pkjwt", OIDC_CLIENT_AUTH="private_key_jwt",
                    OIDC_PRIVATE_KEY_FILE=str(request.getfixturevalue("private_key_file")),
                    OIDC_CLIENT_SECRET=None)
    return identity_settings(chosen, test_issuer.issuer, **more)


@pytest.fixture
def local_login_on() -> None:
    """Local passwords beside the provider (SOR_LOCAL_LOGIN=1)."""


@pytest.fixture
def private_key_file(tmp_path):
    path = tmp_path / "client-key.pem"
    path.write_bytes(PKJWT_KEY.as_pem(private=True))
    return path


@pytest.fixture
def own_provider(tmp_path):
    running = start_provider(tmp_path)
    yield running
    running.stop()


def test_the_client_may_authenticate_with_private_key_jwt(private_key_file, client, provider):
    assert log_in(client, "sara").headers["Location"] == "/staff/"


def test_with_the_provider_down_the_page_says_so_and_local_login_works(
        own_provider, local_login_on, client, session):
    assert 'id="oidc-down"' not in client.get("/login").get_data(as_text=True)
    own_provider.stop()
    client.application.extensions["sor.oidc"].checked_at = None  # the next probe, now
    page = client.get("/login").get_data(as_text=True)
    assert "Identitetsudbyderen kan ikke nås lige nu; prøv igen om lidt." in page
    assert page.count('id="oidc-down"') == 1
    # The button leads back here rather than to a dead provider.
    assert client.get("/login/oidc").headers["Location"] == "/login"
    add_user(session, "lokal@example.dk", "Lokal", ["sds"])
    assert local_login(client, "lokal@example.dk").headers["Location"] == "/staff/"

"""Systems call the API with OAuth 2.0 access tokens (RFC 9068 JWTs).

The happy paths use tokens the real provider (oidc-provider) issues with the
client-credentials grant; the refusals use tokens the test mints where the provider
cannot be made to produce them, signed with the keys of an issuer the test controls and
serves on 127.0.0.1 (``TestIssuer``). Every refusal is a 401 with an RFC 6750 challenge
saying why, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import pytest

from sorregistry.accounts import access_tokens
from sorregistry.accounts.clients import create_client
from sorregistry.accounts.models import ApiClient
from tests.applications.helpers import AARHUS, AARHUS_CVR, EXISTING_SI, new_nursing_home
from tests.identity.conftest import identity_settings, start_provider
from tests.support.oidc_provider import CVR_CLAIM, b64


def _get(client, token: str, url: str = "/api/v1/lookups/my-cvr/all"):
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def _refused(response, why: str) -> str:
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="sor", error="invalid_token"'), challenge
    assert why in challenge, challenge
    assert response.json["code"] == 401 and why in response.json["message"]
    return challenge


def test_a_system_gets_a_token_with_client_credentials_and_lists_its_cvr(
        client, provider, register):
    token = provider.client_credentials("sei-aarhus", "sor:lookup")
    header, _, _ = token.partition(".")
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["typ"] == "at+jwt"
    answer = _get(client, token)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    codes = {item["sor_code"] for item in answer.json["items"]}
    assert EXISTING_SI in codes
    assert {item["cvr"] for item in answer.json["items"]} == {AARHUS_CVR}
    # Mit CVR takes the CVR from the token, never from the request.
    assert client.get("/api/v1/lookups/my-cvr/all?cvr=29189919", headers={
        "Authorization": f"Bearer {token}"}).status_code == 422


def test_a_system_is_recorded_once_as_a_client_and_can_be_revoked(
        app, client, session, provider, register, runner):
    token = provider.client_credentials("sei-aarhus", "sor:lookup")
    assert _get(client, token).status_code == 200
    assert _get(client, provider.client_credentials("sei-aarhus", "sor:lookup")
                ).status_code == 200
    rows = session.query(ApiClient).filter_by(oidc_subject="sei-aarhus").all()
    assert len(rows) == 1 and rows[0].token_digest is None and rows[0].oidc_issuer == \
        provider.issuer
    listing = runner.invoke(args=["list-clients"])
    assert f"token of {provider.issuer}" in listing.output
    assert runner.invoke(args=["revoke-client", str(rows[0].id)]).exit_code == 0
    access_tokens.forget(app)  # as a worker does after IDENTITY_SECONDS
    _refused(_get(client, token), "revoked")


def test_the_scopes_give_the_roles_and_no_more(client, provider, register):
    lookup_only = provider.client_credentials("sei-aarhus", "sor:lookup")
    answer = client.post("/api/v1/applications", json=new_nursing_home(),
                         headers={"Authorization": f"Bearer {lookup_only}"})
    assert answer.status_code == 403
    challenge = answer.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="sor:apply' in challenge


def test_the_same_rules_for_a_system_with_an_access_token(client, session, provider, register):
    """A municipality's system (sor:apply, the kommunekode from its token) applies; SDS's
    system approves; the municipality's system may not approve, and sees its own only."""
    system = provider.client_credentials("aarhus-system", "sor:lookup sor:apply")
    sds = provider.client_credentials("sds-system", "sor:lookup sor:staff")
    made = client.post("/api/v1/applications", json=new_nursing_home(),
                       headers={"Authorization": f"Bearer {system}"})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.json["municipality_code"] == AARHUS
    number = made.json["id"]
    own = {"Authorization": f"Bearer {system}"}
    assert client.post(f"/api/v1/applications/{number}/submit", headers=own).status_code == 200
    assert client.post(f"/api/v1/applications/{number}/approve",
                       headers=own).status_code == 403
    # Another municipality's own-token client does not see it (404, not 403).
    _, odense = create_client(session, "Odense", cvr="29189919", roles=["municipality"],
                              municipality_code="0461")
    assert client.get(f"/api/v1/applications/{number}",
                      headers={"Authorization": f"Bearer {odense}"}).status_code == 404
    approved = client.post(f"/api/v1/applications/{number}/approve",
                           headers={"Authorization": f"Bearer {sds}"})
    assert approved.status_code == 200, approved.get_data(as_text=True)


def test_the_service_s_own_tokens_keep_working_beside(client, session, register):
    _, token = create_client(session, "SEI", cvr=AARHUS_CVR, roles=["reporter"])
    assert _get(client, token).status_code == 200
    assert _get(client, "sor_not-a-token").headers["WWW-Authenticate"] == \
        'Bearer realm="sor", error="invalid_token", error_description="the bearer token is ' \
        'not valid"'


def test_no_token_is_a_bare_challenge_and_two_tokens_a_bad_request(client):
    assert client.get("/api/v1/lookups/my-cvr/all").headers["WWW-Authenticate"] == \
        'Bearer realm="sor"'
    answer = client.get("/api/v1/lookups/my-cvr/all",
                        headers={"Authorization": "Bearer one two"})
    assert answer.status_code == 400
    assert 'error="invalid_request"' in answer.headers["WWW-Authenticate"]


# --- refusals -------------------------------------------------------------------------


def test_a_token_from_another_issuer(client, provider, tmp_path, register):
    other = start_provider(tmp_path)
    try:
        token = other.client_credentials("sei-aarhus", "sor:lookup")
    finally:
        other.stop()
    _refused(_get(client, token), "issuer is not accepted")


def test_a_token_for_another_audience(client, test_issuer, register):
    key = test_issuer.keys[0]
    token = test_issuer.mint(key, test_issuer.claims(aud="https://other.example/api"))
    _refused(_get(client, token), "not for this service (aud)")


def test_an_expired_token(client, test_issuer, register):
    now = int(time.time())
    token = test_issuer.mint(test_issuer.keys[0],
                             test_issuer.claims(iat=now - 600, exp=now - 120))
    _refused(_get(client, token), "has expired")


def test_a_token_within_the_leeway_is_accepted(client, test_issuer, register):
    now = int(time.time())
    token = test_issuer.mint(test_issuer.keys[0], test_issuer.claims(exp=now - 10))
    assert _get(client, token).status_code == 200


def test_a_token_not_yet_valid(client, test_issuer, register):
    now = int(time.time())
    token = test_issuer.mint(test_issuer.keys[0], test_issuer.claims(nbf=now + 600))
    _refused(_get(client, token), "not valid yet (nbf)")


def test_a_token_without_exp(client, test_issuer, register):
    token = test_issuer.mint(test_issuer.keys[0], test_issuer.claims(exp=None))
    _refused(_get(client, token), "lacks the claim exp")


def test_alg_none(client, test_issuer, register):
    claims = test_issuer.claims()
    token = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': 'test-1'})}.{b64(claims)}."
    _refused(_get(client, token), "algorithm none is not accepted")


def test_hs256_signed_with_the_public_key_as_the_secret(client, test_issuer, register):
    """The classic key confusion: the issuer's public key (anyone can fetch it) used as an
    HMAC secret. Made by hand: joserfc itself refuses to build such a key."""
    public_pem = test_issuer.keys[0].as_pem(private=False)
    signing_input = (f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'test-1'})}."
                     f"{b64(test_issuer.claims())}")
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    _refused(_get(client, f"{signing_input}.{b64(signature)}"),
             "algorithm HS256 is not accepted")


def test_a_tampered_payload(client, test_issuer, register):
    token = test_issuer.mint(test_issuer.keys[0], test_issuer.claims())
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "sor:lookup sor:staff"
    _refused(_get(client, f"{header}.{b64(claims)}.{signature}"), "signature does not verify")


def test_an_id_token_is_no_access_token(client, test_issuer, register):
    token = test_issuer.mint(test_issuer.keys[0], test_issuer.claims(), typ="JWT")
    _refused(_get(client, token), "typ at+jwt")


def test_an_unknown_kid_is_refused_after_one_refresh_of_the_keys(client, test_issuer, register):
    fetches = test_issuer.jwks_fetches
    known = test_issuer.mint(test_issuer.keys[0], test_issuer.claims())
    assert _get(client, known).status_code == 200  # the keys are fetched once
    assert test_issuer.jwks_fetches == fetches + 1
    stranger = test_issuer.new_key("not-published", publish=False)
    token = test_issuer.mint(stranger, test_issuer.claims())
    _refused(_get(client, token), "no signing key with kid not-published")
    assert test_issuer.jwks_fetches == fetches + 2  # one refresh for the unknown kid
    # A stream of made-up kids makes no more fetches (one refresh a minute at most) ...
    for _ in range(3):
        _refused(_get(client, token), "no signing key")
    assert test_issuer.jwks_fetches == fetches + 2
    # ... and a known key is not fetched again either: never a fetch per request.
    assert _get(client, known).status_code == 200
    assert test_issuer.jwks_fetches == fetches + 2


def test_a_rotated_key_is_found_by_the_refresh(client, test_issuer, register):
    assert _get(client, test_issuer.mint(test_issuer.keys[0], test_issuer.claims())
                ).status_code == 200
    # A kid of its own each time: the issuer lives for the module and the keys cached per
    # worker, so a second run (the other back end) would meet the first run's key by name.
    rotated = test_issuer.new_key(f"test-rotated-{secrets.token_hex(4)}")
    assert _get(client, test_issuer.mint(rotated, test_issuer.claims())).status_code == 200


def test_a_malformed_cvr_claim_refuses_the_token(client, test_issuer, register):
    token = test_issuer.mint(test_issuer.keys[0], test_issuer.claims(**{CVR_CLAIM: "12345678"}))
    _refused(_get(client, token), "not a valid CVR number")


def test_a_token_of_garbage_in_the_jws_shape(client, register):
    for token in ("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",  # the payload is no JSON
                  f"{b64({'alg': 'RS256', 'typ': 'at+jwt'})}.{b64(b'[1]')}.c2ln",
                  f"{b64({'alg': 'RS256', 'typ': 'at+jwt'})}.{b64({'iss': 7})}.c2ln",
                  "a.b.c.d.e"):
        answer = _get(client, token)
        assert answer.status_code == 401, (token, answer.get_data(as_text=True))


# --- the issuer down ------------------------------------------------------------------


@pytest.fixture
def own_provider(tmp_path):
    running = start_provider(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def settings(request, provider, test_issuer):
    """The provider of the module, or a provider of the test's own to stop."""
    if "own_provider" in request.fixturenames:
        return identity_settings(request.getfixturevalue("own_provider"))
    return identity_settings(provider, test_issuer.issuer)


def test_with_the_provider_down_cached_keys_keep_working(own_provider, client, register):
    token = own_provider.client_credentials("sei-aarhus", "sor:lookup")
    assert _get(client, token).status_code == 200
    own_provider.stop()
    assert _get(client, token).status_code == 200
    # A token naming a key the service never saw cannot be checked now: 401, not 500.
    header = b64({"alg": "RS256", "typ": "at+jwt", "kid": "unknown-kid"})
    _, payload, signature = token.split(".")
    _refused(_get(client, f"{header}.{payload}.{signature}"),
             "no signing key with kid unknown-kid")

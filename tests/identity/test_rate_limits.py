"""The rate limits (``sorregistry.ratelimit``) hold for the identity provider's callers too.

A system calling with access tokens is one caller however many tokens it gets (the
client the tokens were issued to: one budget); a token refused counts for its address,
as any invalid token does; the end of a login at the identity provider (the callback)
counts per address, as the password form's POSTs do. Counted in memory here: the
database counters have their own tests (tests/test_ratelimit.py).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from sorregistry.accounts.models import ApiClient
from tests.identity.conftest import identity_settings
from tests.support.oidc_provider import log_in_at_provider

LIMITS = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URL": "memory://",
          "RATELIMIT_API": "3 per hour", "RATELIMIT_ANONYMOUS": "2 per hour",
          "RATELIMIT_LOGIN_ADDRESS": "2 per minute"}
MY_CVR = "/api/v1/lookups/my-cvr/all"


@pytest.fixture
def settings(provider, test_issuer):
    return identity_settings(provider, test_issuer.issuer, **LIMITS)


def _get(client, token: str):
    return client.get(MY_CVR, headers={"Authorization": f"Bearer {token}"})


def _too_many(answer) -> None:
    assert answer.status_code == 429, answer.get_data(as_text=True)
    assert int(answer.headers["Retry-After"]) >= 1


def test_a_system_is_one_budget_however_many_tokens_it_gets(client, provider, register):
    first = provider.client_credentials("sei-aarhus", "sor:lookup")
    second = provider.client_credentials("sei-aarhus", "sor:lookup")
    assert first != second
    assert [_get(client, token).status_code for token in (first, second, first)] == [200] * 3
    answer = _get(client, second)
    _too_many(answer)
    assert "for this client" in answer.json["message"]
    # Another system has a budget of its own.
    assert _get(client, provider.client_credentials("sds-system", "sor:lookup")
                ).status_code == 200


def test_the_client_is_the_token_s_client_id_not_its_subject(
        client, session, test_issuer, register):
    """Tokens a system gets on behalf of different people (``sub``) are one client."""
    key = test_issuer.keys[0]
    tokens = [test_issuer.mint(key, test_issuer.claims(sub=person, client_id="sei-test"))
              for person in ("person-a", "person-b", "person-c", "person-d")]
    assert [_get(client, token).status_code for token in tokens[:3]] == [200] * 3
    _too_many(_get(client, tokens[3]))
    recorded = session.scalars(select(ApiClient).where(
        ApiClient.oidc_issuer == test_issuer.issuer)).all()
    assert [(row.oidc_subject, row.name) for row in recorded] == [("sei-test", "sei-test")]


def test_a_refused_access_token_counts_for_its_address(client, provider, test_issuer,
                                                       register):
    expired = test_issuer.mint(test_issuer.keys[0], test_issuer.claims(exp=1, iat=0))
    assert [_get(client, expired).status_code for _ in range(2)] == [401, 401]
    _too_many(_get(client, expired))
    # A valid token is counted for its client, not for the address that was refused.
    assert _get(client, provider.client_credentials("sei-aarhus", "sor:lookup")
                ).status_code == 200


def test_the_login_callback_counts_per_address(client, provider, register):
    for _ in range(3):  # starting a login is not counted
        assert client.get("/login/oidc").status_code == 302
    for _ in range(2):
        assert client.get("/login/oidc/callback?code=x&state=not-ours").status_code == 400
    answer = client.get("/login/oidc/callback?code=x&state=not-ours")
    _too_many(answer)
    assert "For mange forsøg" in answer.get_data(as_text=True)
    assert client.get("/login").status_code == 200  # the page itself is not limited
    # Another address logs in through the provider as usual.
    other = {"REMOTE_ADDR": "127.0.0.2"}
    authorization = client.get("/login/oidc", environ_base=other).headers["Location"]
    assert parse_qs(urlsplit(authorization).query)["state"]
    callback = urlsplit(log_in_at_provider(requests.Session(), authorization, "anne"))
    answer = client.get(f"{callback.path}?{callback.query}", environ_base=other)
    assert answer.status_code == 303, answer.get_data(as_text=True)

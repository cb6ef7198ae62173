"""The roles SDS staff grant (grant-role, list-grants, revoke-grant), the one rule that
settles every identity's roles, and oidc-check against the real provider."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from sorregistry.accounts import roles
from sorregistry.accounts.models import LoginSession, RoleGrant, User
from sorregistry.audit import AuditEvent
from tests.applications.helpers import AARHUS, AARHUS_CVR, ODENSE
from tests.identity.conftest import identity_settings
from tests.support.oidc_provider import log_in_at_provider


def _log_in(client, login: str):
    authorization = client.get("/login/oidc").headers["Location"]
    callback = log_in_at_provider(requests.Session(), authorization, login)
    return client.get(callback.removeprefix("http://localhost"))


def test_settle_is_the_one_rule():
    assert roles.settle(["municipality", "reporter"], "751") == roles.Standing(
        ("municipality", "reporter"), AARHUS)
    # Without a valid kommunekode there is no municipality; a code only with the role.
    assert roles.settle(["municipality"], None).roles == ()
    assert roles.settle(["municipality"], "9999").roles == ()
    assert roles.settle(["reporter"], AARHUS) == roles.Standing(("reporter",), None)
    assert roles.settle(["admin", "sds"], None).roles == ("sds",)


def test_grant_role_by_subject_and_by_cvr(runner, session, provider):
    by_subject = runner.invoke(args=["grant-role", "--oidc-subject", "sara", "--role", "sds"])
    assert by_subject.exit_code == 0, by_subject.output
    assert f"subject sara ({provider.issuer}) may act as sds" in by_subject.output
    by_cvr = runner.invoke(args=["grant-role", "--cvr", AARHUS_CVR, "--role", "municipality",
                                 "--municipality-code", "751"])
    assert by_cvr.exit_code == 0 and "kommunekode 0751" in by_cvr.output
    listing = runner.invoke(args=["list-grants"]).output
    assert "subject sara" in listing and f"CVR {AARHUS_CVR}" in listing
    actions = session.execute(select(AuditEvent.action)).scalars().all()
    assert actions.count("role_granted") == 2


@pytest.mark.parametrize("args, why", [
    (["--role", "sds"], "either --oidc-subject or --cvr"),
    (["--cvr", AARHUS_CVR, "--oidc-subject", "x", "--role", "sds"], "not both"),
    (["--cvr", "12345678", "--role", "reporter"], "12345678"),
    (["--cvr", AARHUS_CVR, "--role", "municipality"], "needs --municipality-code"),
    (["--cvr", AARHUS_CVR, "--role", "municipality", "--municipality-code", "9999"], "9999"),
    (["--cvr", AARHUS_CVR, "--role", "reporter", "--municipality-code", "0751"],
     "municipality role only"),
])
def test_grant_role_refuses_bad_input_and_changes_nothing(runner, session, args, why):
    answer = runner.invoke(args=["grant-role", *args])
    assert answer.exit_code != 0 and why in answer.output, answer.output
    assert session.execute(select(RoleGrant)).first() is None


def test_one_kommunekode_per_cvr_and_no_duplicates(runner, session):
    first = ["grant-role", "--cvr", AARHUS_CVR, "--role", "municipality",
             "--municipality-code", AARHUS]
    assert runner.invoke(args=first).exit_code == 0
    again = runner.invoke(args=first)
    assert again.exit_code == 1 and "gives that role already" in again.output
    other = runner.invoke(args=[*first[:-1], ODENSE])
    assert other.exit_code == 1 and "kommunekode 0751" in other.output


def test_a_grant_takes_effect_at_the_next_login_and_its_revocation_at_once(
        client, session, runner, register, provider):
    assert _log_in(client, "anne").headers["Location"] == "/picker"  # no role yet
    runner.invoke(args=["grant-role", "--cvr", AARHUS_CVR, "--role", "municipality",
                        "--municipality-code", AARHUS])
    assert client.get("/municipality/").status_code == 403  # until the next login
    again = client.application.test_client()
    assert _log_in(again, "anne").headers["Location"] == "/municipality/"
    grant = session.execute(select(RoleGrant)).scalar_one()
    revoked = runner.invoke(args=["revoke-grant", str(grant.id)])
    assert revoked.exit_code == 0 and "1 person(s) logged out" in revoked.output
    assert again.get("/municipality/").status_code == 302  # logged out: to /login
    ends = session.execute(select(LoginSession.end_reason)).scalars().all()
    assert "grant_revoked" in ends
    assert runner.invoke(args=["revoke-grant", str(grant.id)]).exit_code == 1
    assert runner.invoke(args=["revoke-grant", "999"]).exit_code == 1
    assert "revoked" in runner.invoke(args=["list-grants", "--all"]).output


def test_a_person_s_own_grant_wins_over_the_cvr_s(session, client, register, provider):
    roles.grant_role(session, role="municipality", cvr=AARHUS_CVR, municipality_code=AARHUS)
    roles.grant_role(session, role="municipality", subject="anne", issuer=provider.issuer,
                     municipality_code=ODENSE)
    _log_in(client, "anne")
    user = session.execute(select(User).where(User.oidc_subject == "anne")).scalar_one()
    assert user.municipality_code == ODENSE


def test_people_from_the_provider_in_the_user_commands(runner, client, register, provider):
    _log_in(client, "anne")
    listing = runner.invoke(args=["list-users"]).output
    assert "anne@aarhus.dk" in listing
    refused = runner.invoke(args=["set-password", "anne", "--password-stdin"],
                            input="en lang adgangskode\n")
    assert refused.exit_code == 1 and "no password" in refused.output


# --- oidc-check -----------------------------------------------------------------------


def test_oidc_check_says_what_the_provider_offers(runner, provider, test_issuer):
    answer = runner.invoke(args=["oidc-check"])
    assert answer.exit_code == 0, answer.output
    for line in (f"{provider.issuer}/.well-known/openid-configuration, issuer matches",
                 f"end_session_endpoint: {provider.issuer}/session/end",
                 "client sor authenticates (client_secret_basic; a made-up code is refused: "
                 "invalid_grant)",
                 f"{test_issuer.issuer}: signing keys test-1 (RSA RS256)",
                 "The identity configuration works."):
        assert line in answer.output


@pytest.fixture
def settings(request, provider, test_issuer):
    if "wrong_secret" in request.fixturenames:
        return identity_settings(provider, "http://127.0.0.1:9/", OIDC_CLIENT_SECRET="wrong")
    return identity_settings(provider, test_issuer.issuer)


@pytest.fixture
def wrong_secret() -> None:
    """A client secret the provider does not know, and an API issuer that is not there."""


def test_oidc_check_finds_a_wrong_secret_and_an_issuer_down(wrong_secret, runner):
    answer = runner.invoke(args=["oidc-check"])
    assert answer.exit_code == 1
    assert "PROBLEM: the provider refuses client sor" in answer.output
    assert "PROBLEM: http://127.0.0.1:9/: no discovery document" in answer.output
    assert "2 problem(s)." in answer.output

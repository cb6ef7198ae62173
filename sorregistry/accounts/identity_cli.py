"""The commands for the national identity: role grants, and checking the configuration.

``grant-role`` / ``list-grants`` / ``revoke-grant`` keep the roles SDS staff give to
people who log in with the identity provider (``roles``); ``oidc-check`` prints what the
identity provider's discovery document and JWKS say, and whether this service's
configuration works with them - including the client's own authentication at the token
endpoint, tried with a code that cannot exist (``invalid_grant`` means the provider
accepted the client, ``invalid_client`` that it did not).
"""

from __future__ import annotations

import sys
from typing import Any

import click
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app
from flask.cli import with_appcontext

from sorregistry import audit
from sorregistry.accounts import access_tokens, oidc_client, roles
from sorregistry.accounts.models import RoleGrant
from sorregistry.commands import echo_listing, fail, format_time
from sorregistry.config import ConfigurationError
from sorregistry.extensions import db
from sorregistry.security import ROLES


def _target(grant: RoleGrant) -> str:
    return f"subject {grant.oidc_subject} ({grant.oidc_issuer})" if grant.oidc_subject \
        else f"CVR {grant.cvr}"


@click.command("grant-role")
@click.option("--oidc-subject", default=None,
              help="The identity provider's subject (sub) of one person.")
@click.option("--issuer", default=None, help="The subject's issuer (default SOR_OIDC_ISSUER).")
@click.option("--cvr", default=None, help="Everyone acting for this CVR number.")
@click.option("--role", required=True, type=click.Choice(list(ROLES)))
@click.option("--municipality-code", default=None, help="Kommunekode, for the municipality role.")
@with_appcontext
def grant_role_command(oidc_subject: str | None, issuer: str | None, cvr: str | None,
                       role: str, municipality_code: str | None) -> None:
    """Give ROLE to a person from the identity provider (--oidc-subject) or to everyone
    acting for a CVR (--cvr). It takes effect at their next login."""
    actor = audit.Actor.system()
    try:
        grant = roles.grant_role(
            db.session, role=role, subject=oidc_subject,
            issuer=issuer or current_app.config.get("OIDC_ISSUER"), cvr=cvr,
            municipality_code=municipality_code, granted_by=actor.name)
        audit.record(db.session, "role_granted", actor, target=_target(grant)[:120],
                     municipality_code=grant.municipality_code,
                     details={"grant": grant.id, "role": grant.role})
        db.session.commit()
    except roles.GrantError as exc:
        fail(exc)
    click.echo(f"Grant {grant.id}: {_target(grant)} may act as {grant.role}"
               + (f" for kommunekode {grant.municipality_code}" if grant.municipality_code
                  else "")
               + ", from their next login.")


@click.command("list-grants")
@click.option("--all", "all_", is_flag=True, help="Show revoked grants too.")
@with_appcontext
def list_grants_command(all_: bool) -> None:
    """List the role grants (times in UTC); revoked ones with --all."""
    echo_listing(
        roles.list_grants(db.session), show_all=all_,
        shown_by_default=lambda grant: grant.revoked_at is None,
        headers=["id", "to", "role", "kommunekode", "granted", "by", "revoked"],
        row=lambda g: [str(g.id), _target(g), g.role, g.municipality_code or "-",
                       format_time(g.created_at), g.granted_by or "-",
                       format_time(g.revoked_at)],
        nothing="No role grants.", hidden="revoked",
    )


@click.command("revoke-grant")
@click.argument("grant_id", metavar="ID", type=int)
@with_appcontext
def revoke_grant_command(grant_id: int) -> None:
    """Revoke grant ID (see list-grants); the people it covered are logged out now."""
    try:
        grant, people = roles.revoke_grant(db.session, grant_id)
        audit.record(db.session, "role_revoked", audit.Actor.system(),
                     target=_target(grant)[:120], municipality_code=grant.municipality_code,
                     details={"grant": grant.id, "role": grant.role, "logged_out": people})
        db.session.commit()
    except roles.GrantError as exc:
        fail(exc)
    click.echo(f"Grant {grant.id} ({_target(grant)}, {grant.role}) revoked; "
               f"{people} person(s) logged out.")


class _Report:
    """Lines of ``oidc-check``: facts, and problems (which make the exit status 1)."""

    def __init__(self) -> None:
        self.problems = 0

    def fact(self, text: str) -> None:
        click.echo(f"  {text}")

    def ok(self, text: str) -> None:
        click.echo(f"  ok: {text}")

    def problem(self, text: str) -> None:
        self.problems += 1
        click.echo(f"  PROBLEM: {text}")


def _check_people(report: _Report, config: Any) -> None:
    issuer = config.get("OIDC_ISSUER")
    click.echo(f"People's login (SOR_OIDC_ISSUER): {issuer or 'not configured'}")
    if not issuer:
        report.fact("local passwords only" if config.get("LOCAL_LOGIN", True)
                    else "PROBLEM: SOR_LOCAL_LOGIN=0 and no issuer")
        return
    try:
        document = access_tokens.discover(issuer)
        keys = access_tokens.fetch_signing_keys(issuer)
    except access_tokens.KeysUnavailable as exc:
        report.problem(f"discovery or JWKS: {exc}")
        return
    report.ok(f"discovery document {oidc_client.discovery_url(issuer)}, issuer matches")
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint",
                 "end_session_endpoint", "jwks_uri"):
        report.fact(f"{name}: {document.get(name) or '-'}")
    report.fact("signing keys: " + ", ".join(f"{kid} ({key.key_type} {key.alg or '-'})"
                                             for kid, key in keys.items()))
    if "S256" not in (document.get("code_challenge_methods_supported") or []):
        report.problem("the provider does not announce PKCE S256")
    method = config.get("OIDC_CLIENT_AUTH") or "client_secret_basic"
    if method not in (document.get("token_endpoint_auth_methods_supported")
                      or ["client_secret_basic"]):
        report.problem(f"the provider does not announce {method} (SOR_OIDC_CLIENT_AUTH)")
    if not document.get("end_session_endpoint"):
        report.fact("no end_session_endpoint: logging out ends the session here only")
    supported = set(document.get("claims_supported") or [])
    for setting in ("OIDC_CLAIMS_CVR", "OIDC_CLAIMS_NAME", "OIDC_CLAIMS_ROLES"):
        claim = config.get(setting)
        if claim and supported and claim not in supported:
            report.fact(f"the provider does not list the claim {claim} (SOR_{setting})")
    _check_client(report, config, document)
    redirect = config.get("OIDC_REDIRECT_URI") or "https://<this host>/login/oidc/callback"
    report.fact(f"register the redirect URI {redirect} and the post-logout URI "
                f"{config.get('OIDC_POST_LOGOUT_REDIRECT_URI') or 'https://<this host>/login'}")


def _check_client(report: _Report, config: Any, document: dict[str, Any]) -> None:
    """Authenticate as the client at the token endpoint with a code that cannot exist."""
    try:
        secret, extra = oidc_client.client_credentials(config)
    except ConfigurationError as exc:
        report.problem(str(exc))
        return
    method = config.get("OIDC_CLIENT_AUTH") or "client_secret_basic"
    client = OAuth2Session(client_id=config.get("OIDC_CLIENT_ID"), client_secret=secret,
                           token_endpoint_auth_method=method,
                           default_timeout=oidc_client.REQUEST_TIMEOUT)
    for auth in extra.get("client_auth_methods", []):
        client.register_client_auth_method(auth)
    try:
        client.fetch_token(document["token_endpoint"], grant_type="authorization_code",
                           code="sor-oidc-check", redirect_uri="https://invalid.example/",
                           code_verifier="x" * 43)
    except AuthlibBaseError as exc:
        if exc.error == "invalid_client":
            report.problem(f"the provider refuses client {config.get('OIDC_CLIENT_ID')} "
                           f"({exc.description or exc.error})")
        else:
            report.ok(f"client {config.get('OIDC_CLIENT_ID')} authenticates ({method}; a "
                      f"made-up code is refused: {exc.error})")
        return
    except (requests.RequestException, KeyError, ValueError) as exc:
        report.problem(f"token endpoint: {exc}")
        return
    report.problem("the provider accepted a made-up code")


def _check_systems(report: _Report, config: Any) -> None:
    issuers = tuple(config.get("API_ISSUERS") or ())
    click.echo("Systems' access tokens (SOR_API_ISSUERS): "
               + (" ".join(issuers) if issuers else "not configured"))
    if issuers and not config.get("API_AUDIENCE"):
        report.problem("SOR_API_ISSUERS needs SOR_API_AUDIENCE")
    elif issuers:
        report.fact(f"audience: {config['API_AUDIENCE']}; CVR claim: {config['API_CVR_CLAIM']}; "
                    f"kommunekode claim: {config.get('API_MUNICIPALITY_CLAIM') or '-'}")
    for issuer in issuers:
        try:
            keys = access_tokens.fetch_signing_keys(issuer)
        except access_tokens.KeysUnavailable as exc:
            report.problem(f"{issuer}: {exc}")
            continue
        report.ok(f"{issuer}: signing keys " + ", ".join(
            f"{kid} ({key.key_type} {key.alg or '-'})" for kid, key in keys.items()))


@click.command("oidc-check")
@with_appcontext
def oidc_check_command() -> None:
    """Print what the identity provider's discovery document and keys say, and whether
    this configuration works with them (exit status 1 when it does not)."""
    report = _Report()
    config = current_app.config
    _check_people(report, config)
    _check_systems(report, config)
    if report.problems:
        click.echo(f"{report.problems} problem(s).", err=True)
        sys.exit(1)
    click.echo("The identity configuration works.")


COMMANDS = (grant_role_command, list_grants_command, revoke_grant_command, oidc_check_command)

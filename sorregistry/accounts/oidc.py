"""People log in with the national identity: OpenID Connect's authorization code flow.

``/login/oidc`` starts it: Authlib's Flask client sends the browser to the provider
with a fresh ``state``, ``nonce`` and PKCE ``code_challenge`` (S256), and keeps state,
nonce and verifier in the (signed) session cookie. ``/login/oidc/callback`` ends it: the
``state`` must be one this browser started (and is used up), the code is exchanged with
the verifier and the client's authentication, and the ID token is checked - signature
with the provider's JWKS, ``iss`` the configured issuer, ``aud`` this client, ``exp`` and
``iat`` with ``SOR_OIDC_LEEWAY_SECONDS`` of skew (at most five minutes), and the
``nonce``. The UserInfo endpoint's claims join the ID token's (its ``sub`` must be the
same): a provider may put the person's claims in either.

Every refusal - a wrong or replayed ``state``, a code the provider refuses (replayed,
expired, another client's), an ID token that fails a check, a provider that cannot be
reached - is a page that says what happened and offers to start again; never a 500, and
nothing is written but the audit log's ``login_failed``.

**Who the person is** comes from the claims (``SOR_OIDC_CLAIMS_*``, defaults from
NemLog-in's profile for professionals): their name, email, the CVR of the organisation
they act for, the organisation's name and their persistent UUID. Their account is found
by the provider's (issuer, subject) - made at the first login, without a password - and
updated at every login, with the roles and kommunekode that ``roles`` settles from the
role claim and SDS staff's grants. An email another account has already is not taken
(accounts are never linked by email: that is how one provider's user takes over
another's account). A CVR claim that is not a valid CVR refuses the login; no CVR claim
at all is a person who sees the pages that need none.

The login is then an ordinary login session (``sessions``: logout, idle and absolute
lifetime, the audit log), which also keeps the ID token for RP-initiated logout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError
from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_user
from joserfc.errors import JoseError
from sqlalchemy import select
from werkzeug.wrappers import Response

from hierarchy import identifiers as ids
from sorregistry import audit
from sorregistry.accounts import oidc_client, roles
from sorregistry.accounts import sessions as login_sessions
from sorregistry.accounts.models import User
from sorregistry.accounts.users import user_actor
from sorregistry.accounts.views import home_for
from sorregistry.database import DbSession, write_step
from sorregistry.extensions import db
from sorregistry.i18n import _
from sorregistry.models import utcnow
from sorregistry.ratelimit import login_callback
from sorregistry.security import safe_next

bp = Blueprint("oidc", __name__)
_NEXT = "oidc_next"


class LoginRefused(Exception):
    """The login cannot go on; the message is the page's (in the page's language)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Person:
    """What the provider says of the person (the claims, read through the mapping)."""

    issuer: str
    subject: str
    name: str
    email: str | None
    cvr: str | None
    organisation: str | None
    person_uuid: str | None
    claimed_roles: frozenset[str]
    claimed_municipality: str | None


def _text(claims: dict[str, Any], name: str | None, limit: int) -> str | None:
    value = claims.get(name) if name else None
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _claimed_roles(claims: dict[str, Any], config: Any) -> frozenset[str]:
    """The roles the role claim names (``SOR_OIDC_CLAIMS_ROLES``, its values mapped by
    ``SOR_OIDC_CLAIMS_ROLE_VALUES``); none when no role claim is configured."""
    name = config.get("OIDC_CLAIMS_ROLES")
    if not name:
        return frozenset()
    value = claims.get(name)
    values = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    mapping: dict[str, tuple[str, ...]] = config["OIDC_CLAIMS_ROLE_VALUES"]
    return frozenset(role for role, names in mapping.items()
                     if any(str(v) in names for v in values))


def person_from_claims(issuer: str, claims: dict[str, Any]) -> Person:
    """Read the claims through the configured mapping; refuses a malformed CVR."""
    config = current_app.config
    subject = str(claims["sub"])
    cvr = _text(claims, config["OIDC_CLAIMS_CVR"], 20)
    if cvr is not None:
        try:
            cvr = ids.validate_cvr(cvr)
        except ids.IdentifierError:
            raise LoginRefused(_("Identitetsudbyderen sendte et CVR-nummer, som ikke er "
                                 "gyldigt; kontakt din administrator.")) from None
    name = (_text(claims, config["OIDC_CLAIMS_NAME"], 200)
            or " ".join(filter(None, (_text(claims, "given_name", 100),
                                      _text(claims, "family_name", 100))))
            or subject[:200])
    email = _text(claims, config["OIDC_CLAIMS_EMAIL"], 254)
    return Person(
        issuer=issuer, subject=subject, name=name,
        email=email.lower() if email and "@" in email else None,
        cvr=cvr, organisation=_text(claims, config["OIDC_CLAIMS_ORGANISATION"], 200),
        person_uuid=_text(claims, config["OIDC_CLAIMS_PERSON_UUID"], 255),
        claimed_roles=_claimed_roles(claims, config),
        claimed_municipality=_text(claims, config.get("OIDC_CLAIMS_MUNICIPALITY"), 4),
    )


def link_person(work: DbSession, person: Person) -> User:
    """The account of *person*, made at their first login and brought up to date with
    the claims and grants at every login. Flushes."""
    user = work.execute(select(User).where(User.oidc_issuer == person.issuer,
                                           User.oidc_subject == person.subject)
                        ).scalar_one_or_none()
    if user is None:
        user = User(oidc_issuer=person.issuer, oidc_subject=person.subject, email=None,
                    password_hash=None, active=True, failed_logins=0, roles=[],
                    name=person.name)
        work.add(user)
    if person.email and person.email != user.email:
        taken = work.execute(select(User.id).where(User.email == person.email)).first()
        user.email = None if taken else person.email
    standing = roles.person_standing(
        work, issuer=person.issuer, subject=person.subject, cvr=person.cvr,
        claimed_roles=person.claimed_roles, claimed_municipality=person.claimed_municipality)
    user.name = person.name
    user.cvr = person.cvr
    user.organisation = person.organisation
    user.person_uuid = person.person_uuid
    user.roles = list(standing.roles)
    user.municipality_code = standing.municipality_code
    user.last_login_at = utcnow()
    work.flush()
    return user


def _claims(token: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims joined by the UserInfo endpoint's (same ``sub``)."""
    userinfo = token.get("userinfo")
    if not userinfo or not userinfo.get("sub"):
        raise LoginRefused(_("Identitetsudbyderen sendte intet ID-token; login er afvist."))
    claims = dict(userinfo)
    provider = oidc_client.state()
    assert provider is not None
    if oidc_client.metadata().get("userinfo_endpoint"):
        extra = dict(provider.client.userinfo(token=token))
        if extra.get("sub") != claims["sub"]:
            raise LoginRefused(_("Identitetsudbyderens oplysninger om personen passer ikke "
                                 "til ID-tokenet; login er afvist."))
        claims = {**extra, **claims}
    return claims


def _down() -> str:
    return _("Identitetsudbyderen kan ikke nås lige nu; prøv igen om lidt.")


def id_token_claims(issuer: str, client_id: str) -> dict[str, dict[str, Any]]:
    """What the ID token's claims must be (Authlib's ``claims_options``): ``iss`` the
    issuer, ``aud`` containing this client - Authlib itself only asks that ``azp``, when
    ``aud`` names others, be this client (OpenID Connect Core 3.1.3.7, step 3, wants
    ``aud`` to contain it) -, and ``exp`` and ``sub`` present."""
    return {"iss": {"essential": True, "values": [issuer]},
            "aud": {"essential": True, "values": [client_id]},
            "exp": {"essential": True}, "sub": {"essential": True}}


def _exchange() -> dict[str, Any]:
    """Check the callback and exchange its code: the token response, its ``userinfo``
    the checked ID token's claims. Raises LoginRefused with what the person should read."""
    provider = oidc_client.state()
    assert provider is not None
    if request.args.get("error"):
        raise LoginRefused(_("Login blev afbrudt hos identitetsudbyderen (%(error)s).",
                             error=request.args.get("error", "")[:100]), 401)
    leeway = int(current_app.config["OIDC_LEEWAY_SECONDS"])
    try:
        token: dict[str, Any] = provider.client.authorize_access_token(
            leeway=leeway, claims_options=id_token_claims(provider.issuer,
                                                          str(provider.client.client_id)))
        return {**token, "claims": _claims(token)}
    except MismatchingStateError:
        raise LoginRefused(_("Svaret fra identitetsudbyderen hører ikke til et login, der er "
                             "startet her (forkert eller allerede brugt state).")) from None
    except JoseError as exc:
        raise LoginRefused(_("ID-tokenet fra identitetsudbyderen blev afvist (%(why)s).",
                             why=exc.description or exc.error)) from None
    except AuthlibBaseError as exc:
        raise LoginRefused(_("Identitetsudbyderen afviste login-koden (%(why)s); den kan "
                             "være brugt før eller udløbet.",
                             why=exc.error or exc.description or "")) from None
    except (requests.RequestException, ValueError, oidc_client.ProviderDown):
        oidc_client.mark_down()
        raise LoginRefused(_down(), 503) from None


@bp.get("/login/oidc")
def start() -> Response:
    """Send the browser to the identity provider (a GET: the page's form-action needs
    no exception for the provider)."""
    provider = oidc_client.state()
    if provider is None:
        abort(404)
    try:
        oidc_client.metadata()
        if not oidc_client.reachable():  # the document may be known from before it went
            raise oidc_client.ProviderDown("the provider does not answer")
    except oidc_client.ProviderDown:
        return redirect(url_for("login.login"), code=303)
    session[_NEXT] = safe_next(request.args.get("next"))
    response: Response = provider.client.authorize_redirect(oidc_client.redirect_uri())
    return response


def _refused(refusal: LoginRefused) -> tuple[str, int]:
    with write_step(db.session) as work:
        audit.record(work, "login_failed", audit.Actor("user", None, "identity provider"),
                     details={"method": "oidc", "reason": str(refusal)[:200]})
    return render_template("pages/login_refused.html", message=str(refusal)), refusal.status


@bp.get("/login/oidc/callback")
@login_callback
def callback() -> Response | tuple[str, int]:
    """End the flow: check everything (see the docstring), then log the person in."""
    provider = oidc_client.state()
    if provider is None:
        abort(404)
    target = session.pop(_NEXT, None)
    try:
        token = _exchange()
        person = person_from_claims(provider.issuer, token["claims"])
    except LoginRefused as refusal:
        return _refused(refusal)
    with write_step(db.session) as work:
        user = link_person(work, person)
        if not user.active:
            audit.record(work, "login_failed", user_actor(user),
                         details={"method": "oidc", "reason": "inactive"})
            sid = None
        else:
            sid = login_sessions.start(work, user, address=request.remote_addr,
                                       id_token=token.get("id_token"))
            audit.record(work, "login", user_actor(user),
                         details={"method": "oidc", "issuer": person.issuer,
                                  "cvr": person.cvr, "roles": user.roles})
    if sid is None:
        return render_template("pages/login_refused.html", message=_(
            "Din konto er spærret i SOR; kontakt Sundhedsdatastyrelsen.")), 403
    session.clear()  # nothing from before the login survives into it
    login_user(user)
    session[login_sessions.SESSION_KEY] = sid
    return redirect(safe_next(target) or home_for(user), code=303)

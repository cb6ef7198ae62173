"""Systems calling the API with an identity provider's access tokens (OAuth 2.0, JWT).

The token resolver :func:`identity_for_access_token` accepts a JWT access token in the
profile of RFC 9068 from one of the issuers in ``SOR_API_ISSUERS``, and refuses anything
else of that shape with the reason (``security.InvalidToken``, which becomes the
``WWW-Authenticate`` challenge's ``error_description``). It checks, in this order:

1. the header: a compact JWS (a JWE, five parts, is refused), ``typ`` ``at+jwt`` (RFC 9068
   section 4: an ID token or any other JWT of the same issuer is no access token), ``alg``
   one of ``SOR_API_ALGORITHMS`` - asymmetric only, so ``none`` and HS256 "signed" with
   the issuer's public key as the secret are refused before any key is touched;
2. ``iss`` (read before the signature, only to choose the keys) one of the issuers;
3. the signature, with the issuer's key of the header's ``kid``, whose type must suit the
   algorithm (and whose own ``alg``, when the JWKS states one, must be it);
4. the claims: ``iss`` again, ``aud`` containing ``SOR_API_AUDIENCE``, ``exp`` (required),
   ``nbf`` and ``iat`` when present, with ``SOR_API_LEEWAY_SECONDS`` of clock skew (at most
   five minutes), and ``sub``;
5. the CVR claim (``SOR_API_CVR_CLAIM``; a malformed CVR refuses the token) and the
   scopes, which give the roles (``security.ROLE_SCOPES``), settled by ``roles``.

**Keys** come from each issuer's discovery document (``/.well-known/openid-configuration``,
else RFC 8414's ``/.well-known/oauth-authorization-server``), whose ``issuer`` must be the
configured one, and its ``jwks_uri``. They are fetched at the first token of an issuer and
kept (:class:`IssuerKeys`), never fetched per request: again when they are older than
``KEYS_MAX_AGE``, and once for a token whose ``kid`` is unknown (a rotated key) - at most
once per ``UNKNOWN_KID_REFRESH`` per issuer, so a stream of made-up ``kid`` values cannot
make the service hammer the provider. A failed fetch keeps the keys in hand: with the
provider down, tokens it signed before keep working until they expire. Symmetric keys in
a JWKS are ignored (a published secret is no secret).

**The client**: a system is the OAuth client the token was issued to - RFC 9068's
``client_id`` claim, else ``sub`` (which, for the client-credentials grant, is the client
itself) - so that all the tokens a client gets are one caller: one budget of the rate
limits (``sorregistry.ratelimit`` counts per ``Identity.id``), one sender of applications.
Each (issuer, client) is recorded once as an API client (``models.ApiClient``, no token of
ours; ``oidc_subject`` holds the client's identifier), so that it has an id - nobody
approves an application they sent in - a name in the audit log, and can be revoked with
``sorregistry revoke-client``; grants to a system name that identifier. What a system
may do is cached per worker for ``IDENTITY_SECONDS`` like the service's own tokens: a
revoked client is refused within that time.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, current_app
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key, KeySet
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hierarchy import identifiers as ids
from sorregistry.accounts import roles
from sorregistry.accounts.models import ApiClient
from sorregistry.database import DbSession, write_step
from sorregistry.extensions import db
from sorregistry.security import ROLE_SCOPES, Identity, InvalidToken

KEYS_MAX_AGE = 3600.0
UNKNOWN_KID_REFRESH = 60.0
# A failed first fetch is tried again after this long, not on every request meanwhile.
RETRY_AFTER_FAILURE = 10.0
FETCH_TIMEOUT = 5.0
MAX_DOCUMENT = 1024 * 1024
IDENTITY_SECONDS = 60.0
_IDENTITY_MAX = 10_000
_ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
_SCOPE_ROLES = {scope: role for role, scope in ROLE_SCOPES.items()}
_KEYS = "sor.issuer_keys"
_IDENTITIES = "sor.access_token_identities"


class KeysUnavailable(Exception):
    """An issuer's discovery document or JWKS could not be had; the message says why."""


def _get_json(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=FETCH_TIMEOUT,
                            headers={"Accept": "application/json"}, stream=True)
    with response:
        if response.status_code != 200:
            raise KeysUnavailable(f"{url} answered {response.status_code}")
        body = response.raw.read(MAX_DOCUMENT + 1, decode_content=True)
    if len(body) > MAX_DOCUMENT:
        raise KeysUnavailable(f"{url} sent more than {MAX_DOCUMENT} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise KeysUnavailable(f"{url} sent no JSON") from None
    if not isinstance(document, dict):
        raise KeysUnavailable(f"{url} sent no JSON object")
    return document


def discover(issuer: str) -> dict[str, Any]:
    """The issuer's discovery document (OpenID Connect Discovery, else RFC 8414); its
    ``issuer`` must be *issuer* exactly (OpenID Connect Discovery 1.0, section 4.3)."""
    base = issuer.rstrip("/")
    failures = []
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        try:
            document = _get_json(base + path)
        except (requests.RequestException, KeysUnavailable) as exc:
            failures.append(str(exc))
            continue
        if document.get("issuer") != issuer:
            raise KeysUnavailable(f"the discovery document at {base + path} names the issuer "
                                  f"{document.get('issuer')!r}, not {issuer!r}")
        return document
    raise KeysUnavailable("no discovery document: " + "; ".join(failures))


def fetch_signing_keys(issuer: str) -> dict[str, Key]:
    """The issuer's public signing keys by ``kid``, from its discovery's ``jwks_uri``."""
    jwks_uri = discover(issuer).get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise KeysUnavailable(f"the discovery document of {issuer} names no jwks_uri")
    try:
        document = _get_json(jwks_uri)
    except requests.RequestException as exc:
        raise KeysUnavailable(f"{jwks_uri}: {exc}") from None
    usable = [key for key in document.get("keys") or []
              if isinstance(key, dict) and key.get("kty") in ("RSA", "EC", "OKP")
              and key.get("use", "sig") == "sig" and "d" not in key]
    if not usable:
        raise KeysUnavailable(f"{jwks_uri} holds no public signing key")
    try:
        keys = KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError) as exc:
        raise KeysUnavailable(f"{jwks_uri}: {exc}") from None
    return {str(key.kid): key for key in keys}


@dataclass
class IssuerKeys:
    """One issuer's signing keys as this worker holds them (see the module's docstring)."""

    issuer: str
    keys: dict[str, Key] = field(default_factory=dict)
    fetched_at: float | None = None
    failed_at: float | None = None
    refreshed_for_kid_at: float | None = None
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key(self, kid: str | None, now: float) -> Key:
        """The key of *kid* (the only key when the token names none)."""
        with self.lock:
            if self.fetched_at is None:
                if self.failed_at is not None and now - self.failed_at < RETRY_AFTER_FAILURE:
                    raise InvalidToken(f"the signing keys of {self.issuer} are not available")
                self._fetch(now, keep_old=False)
            elif now - self.fetched_at >= KEYS_MAX_AGE:
                self._fetch(now, keep_old=True)
            found = self._find(kid)
            if found is None and (self.refreshed_for_kid_at is None
                                  or now - self.refreshed_for_kid_at >= UNKNOWN_KID_REFRESH):
                self.refreshed_for_kid_at = now
                self._fetch(now, keep_old=True)
                found = self._find(kid)
        if found is None:
            raise InvalidToken(f"{self.issuer} has no signing key "
                               + (f"with kid {kid}" if kid else "without a kid"))
        return found

    def _find(self, kid: str | None) -> Key | None:
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    def _fetch(self, now: float, *, keep_old: bool) -> None:
        self.fetches += 1
        try:
            self.keys = fetch_signing_keys(self.issuer)
        except KeysUnavailable as exc:
            current_app.logger.warning("signing keys of %s not fetched: %s", self.issuer, exc)
            self.failed_at = now
            if not keep_old:
                raise InvalidToken(f"the signing keys of {self.issuer} are not available") \
                    from None
            return
        self.fetched_at = now
        self.failed_at = None


def issuer_keys(app: Flask, issuer: str) -> IssuerKeys:
    """This worker's keys of *issuer* (made empty on first use; fetched when needed)."""
    registry: dict[str, IssuerKeys] = app.extensions.setdefault(_KEYS, {})
    keys = registry.get(issuer)
    if keys is None:
        keys = registry.setdefault(issuer, IssuerKeys(issuer))
    return keys


def _segment(text: str) -> dict[str, Any] | None:
    """A base64url JSON object segment of a JWS, or None."""
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: dict[str, Any]
    issuer: str


def _parse(token: str, issuers: tuple[str, ...], algorithms: tuple[str, ...]) -> _Parsed | None:
    """The header and the (unverified) issuer of a token of the JWS shape; None for a
    token of another kind (the service's own tokens)."""
    parts = token.split(".")
    header = _segment(parts[0]) if len(parts) in (3, 5) else None
    if header is None or "alg" not in header:
        return None
    if len(parts) == 5:
        raise InvalidToken("an encrypted token (JWE) is not accepted")
    alg = header.get("alg")
    if alg not in algorithms:
        raise InvalidToken(f"the signing algorithm {alg} is not accepted")
    if str(header.get("typ", "")).lower() not in _ACCESS_TOKEN_TYPES:
        raise InvalidToken("not an access token (RFC 9068: typ at+jwt)")
    payload = _segment(parts[1])
    if payload is None:
        raise InvalidToken("the token's payload is not a JSON object")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or issuer not in issuers:
        raise InvalidToken("the token's issuer is not accepted here")
    return _Parsed(header, issuer)


def _claims_problem(error: JoseError) -> str:
    if isinstance(error, ExpiredTokenError):
        return "the token has expired"
    if isinstance(error, MissingClaimError):
        return f"the token lacks the claim {getattr(error, 'claim', error.description)}"
    if isinstance(error, InvalidClaimError):
        claim = str(getattr(error, "claim", ""))
        return {"aud": "the token is not for this service (aud)",
                "nbf": "the token is not valid yet (nbf)",
                "iat": "the token was issued in the future (iat)",
                "iss": "the token's issuer is not accepted here"}.get(
            claim, f"the token's claim {claim or error.description} is not valid")
    return "the token's claims are not valid"


def verify(token: str) -> tuple[str, dict[str, Any]] | None:
    """The issuer and the verified claims of an access token; None when the token is not
    of the JWS shape at all. Raises InvalidToken with the reason."""
    config = current_app.config
    issuers: tuple[str, ...] = tuple(config.get("API_ISSUERS") or ())
    audience = config.get("API_AUDIENCE")
    if not issuers or not audience:
        return None
    algorithms: tuple[str, ...] = tuple(config["API_ALGORITHMS"])
    parsed = _parse(token, issuers, algorithms)
    if parsed is None:
        return None
    alg = str(parsed.header["alg"])
    kid = parsed.header.get("kid")
    key = issuer_keys(current_app, parsed.issuer).key(
        str(kid) if kid is not None else None, time.monotonic())
    stated = key.alg
    if stated and stated != alg:
        raise InvalidToken(f"the key {kid} is for {stated}, not {alg}")
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except BadSignatureError:
        raise InvalidToken("the token's signature does not verify") from None
    except JoseError as exc:
        raise InvalidToken(f"the token cannot be verified: {exc.error}") from None
    registry = JWTClaimsRegistry(
        leeway=int(config["API_LEEWAY_SECONDS"]),
        iss={"essential": True, "value": parsed.issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        raise InvalidToken(_claims_problem(exc)) from None
    return parsed.issuer, decoded.claims


def _scope_roles(claims: dict[str, Any]) -> set[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    words = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else []
    return {_SCOPE_ROLES[word] for word in words if isinstance(word, str) and word in _SCOPE_ROLES}


def _cvr(claims: dict[str, Any], claim: str) -> str | None:
    value = claims.get(claim)
    if value in (None, ""):
        return None
    try:
        return ids.validate_cvr(str(value))
    except ids.IdentifierError:
        raise InvalidToken(f"the token's CVR claim {claim} is not a valid CVR number") from None


def client_for_subject(session: DbSession, issuer: str, subject: str,
                       name: str) -> ApiClient:
    """The API client of an access token's (issuer, subject), recorded at its first call.
    Commits that first record itself (write_step); two first calls at once make one."""
    query = select(ApiClient).where(ApiClient.oidc_issuer == issuer,
                                    ApiClient.oidc_subject == subject)
    client = session.execute(query).scalar_one_or_none()
    if client is not None:
        return client
    try:
        with write_step(session) as work:
            work.add(ApiClient(name=name[:200], cvr=None, roles=[], oidc_issuer=issuer,
                               oidc_subject=subject, token_digest=None))
    except IntegrityError:
        pass  # another worker recorded it first
    return session.execute(query).scalar_one()


def client_of(claims: dict[str, Any]) -> str:
    """The client a verified token was issued to: ``client_id`` (RFC 9068 section 2.2),
    else ``sub``."""
    client_id = claims.get("client_id")
    return client_id if isinstance(client_id, str) and client_id else str(claims["sub"])


def identity_for_access_token(token: str) -> Identity | None:
    """The identity of a system's access token; None for a token that is not a JWT (the
    service's own tokens); InvalidToken, with the reason, for a JWT refused."""
    verified = verify(token)
    if verified is None:
        return None
    issuer, claims = verified
    config = current_app.config
    subject = client_of(claims)
    cvr = _cvr(claims, config["API_CVR_CLAIM"])
    scope_roles = frozenset(_scope_roles(claims))
    municipality_claim = config.get("API_MUNICIPALITY_CLAIM")
    claimed_code = claims.get(municipality_claim) if municipality_claim else None
    key = (issuer, subject, cvr, scope_roles, str(claimed_code) if claimed_code else None)
    cache: dict[tuple[Any, ...], tuple[float, Identity | None]] = \
        current_app.extensions.setdefault(_IDENTITIES, {})
    now = time.monotonic()
    cached = cache.get(key)
    if cached is not None and cached[0] > now:
        identity = cached[1]
    else:
        identity = _identity(issuer, subject, claims, cvr, scope_roles, key[4])
        if len(cache) >= _IDENTITY_MAX:
            cache.clear()
        cache[key] = (now + IDENTITY_SECONDS, identity)
    if identity is None:
        raise InvalidToken("the client of this token has been revoked")
    return identity


def _identity(issuer: str, subject: str, claims: dict[str, Any], cvr: str | None,
              scope_roles: frozenset[str], claimed_code: str | None) -> Identity | None:
    client = client_for_subject(db.session, issuer, subject, subject)
    if client.revoked_at is not None:
        return None
    standing = roles.system_standing(db.session, issuer=issuer, subject=subject, cvr=cvr,
                                     scope_roles=scope_roles,
                                     claimed_municipality=claimed_code)
    return Identity(id=client.id, name=client.name, cvr=cvr, roles=standing.roles,
                    municipality_code=standing.municipality_code, issuer=issuer,
                    subject=subject)


def forget(app: Flask) -> None:
    """Drop this worker's cached identities (after revoking a client, in tests)."""
    app.extensions.pop(_IDENTITIES, None)

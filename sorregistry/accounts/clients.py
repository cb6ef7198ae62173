"""API clients: making, listing and revoking them, and the identity behind a token.

A client is a machine (a reporting form, a municipality's system). Its token is
shown once, when made, and stored only as a SHA-256 digest: a database leak
reveals no usable token. :func:`identity_for_token` is the token resolver this
feature gives ``sorregistry.security`` (which decides what the roles allow).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime

from sqlalchemy import select, update

from hierarchy import identifiers as ids
from sorregistry.accounts.models import ApiClient
from sorregistry.database import DbSession, rowcount
from sorregistry.errors import DomainError
from sorregistry.extensions import db
from sorregistry.models import utcnow
from sorregistry.security import ROLES, Identity

TOKEN_PREFIX = "sor_"
# The identity of a client, as the requests see it.
ClientIdentity = Identity


class ClientError(DomainError, ValueError):
    """A client (or person) cannot be made or changed as asked; the message says why."""


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_client(
    session: DbSession,
    name: str,
    *,
    cvr: str,
    roles: list[str],
    municipality_code: str | None = None,
) -> tuple[ApiClient, str]:
    """Make a client; returns it and its token (the only time the token is seen)."""
    if not name.strip():
        raise ClientError("a client needs a name")
    try:
        cvr = ids.validate_cvr(cvr)
    except ids.IdentifierError as exc:
        raise ClientError(str(exc)) from None
    municipality_code = check_roles(roles, municipality_code, who="client")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(
        name=name.strip(),
        cvr=cvr,
        roles=sorted(set(roles)),
        municipality_code=municipality_code,
        token_digest=digest_token(token),
    )
    session.add(client)
    session.flush()
    return client, token


def check_roles(roles: list[str], municipality_code: str | None, *, who: str) -> str | None:
    """Known roles, and a kommunekode exactly when one of them is ``municipality``.

    The same rule for API clients and people (*who* names which, in the
    messages); returns the kommunekode normalised. Raises :class:`ClientError`.
    """
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise ClientError(
            f"unknown role {', '.join(unknown)}; roles are {', '.join(ROLES)}"
            if unknown
            else f"a {who} needs a role: {', '.join(ROLES)}"
        )
    if "municipality" in roles:
        if not municipality_code:
            raise ClientError(f"a municipality {who} needs --municipality-code (kommunekode)")
        try:
            return ids.validate_kommunekode(municipality_code)
        except ids.IdentifierError as exc:
            raise ClientError(str(exc)) from None
    if municipality_code:
        raise ClientError(f"--municipality-code is for municipality {who}s only")
    return None


def list_clients(session: DbSession) -> list[ApiClient]:
    """Every client, revoked ones too, oldest first; the caller decides what to show."""
    return list(session.execute(select(ApiClient).order_by(ApiClient.id)).scalars())


def revoke_client(session: DbSession, client_id: int, *, now: datetime | None = None) -> ApiClient:
    """Mark a client revoked, so that :func:`client_for_token` refuses its token.

    Revoking is for good (a client that should work again gets a new one, with a
    new token), so an unknown or already revoked client is an error rather than
    a silent success that could hide a typo in the id. Set in SQL on a row not
    yet revoked, so two operators revoking at once cannot overwrite the first
    time. Worker processes that saw the token in the last ``IDENTITY_SECONDS``
    keep accepting it until their cache entry runs out; this process's cache is
    no help to them, so it is left alone. Flushes; the caller commits.
    """
    client = session.get(ApiClient, client_id)
    if client is None:
        raise ClientError(f"there is no API client with id {client_id}")
    revoked = rowcount(session.execute(
        update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    ))
    session.refresh(client)
    if not revoked:
        raise ClientError(
            f"API client {client.id} '{client.name}' was revoked already"
            + (f", at {client.revoked_at:%Y-%m-%d %H:%M} UTC" if client.revoked_at else "")
        )
    return client


def client_for_token(session: DbSession, token: str) -> ApiClient | None:
    client = session.execute(
        select(ApiClient).where(ApiClient.token_digest == digest_token(token))
    ).scalar_one_or_none()
    if client is None or client.revoked_at is not None:
        return None
    return client


# Token digest -> (expiry, identity). Lookups are called while a person types,
# so a token is checked against the database at most once a minute per worker;
# a revoked token stops working within that minute.
_IDENTITIES: dict[str, tuple[float, ClientIdentity]] = {}
IDENTITY_SECONDS = 60.0
_IDENTITY_MAX = 10_000


def identity_for_token(token: str) -> Identity | None:
    """The identity of the client whose token this is; None for an unknown or revoked one.

    Cached per worker for ``IDENTITY_SECONDS``: lookups are called while a person
    types, so a token is checked against the database at most once a minute.
    """
    digest = digest_token(token)
    now = time.monotonic()
    cached = _IDENTITIES.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    client = client_for_token(db.session, token)
    if client is None:
        _IDENTITIES.pop(digest, None)
        return None
    identity = Identity(
        id=client.id,
        name=client.name,
        cvr=client.cvr,
        roles=tuple(client.roles),
        municipality_code=client.municipality_code,
    )
    if len(_IDENTITIES) >= _IDENTITY_MAX:
        _IDENTITIES.clear()
    _IDENTITIES[digest] = (now + IDENTITY_SECONDS, identity)
    return identity


def forget_identities() -> None:
    """Drop every cached identity (after revoking a client, in tests)."""
    _IDENTITIES.clear()

"""API clients and bearer-token authentication.

A client is a machine (a reporting form, a municipality's system) or a
person's session token. Its token is shown once, when made, and stored only
as a SHA-256 digest: a database leak reveals no usable token. Roles:
``reporter`` (lookups), ``municipality`` (its own applications), ``sds``
(staff: everything). The CVR that "Mit CVR" lookups use is the client's,
never a request parameter.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import g, request
from flask_smorest import abort
from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow

ROLES = ("reporter", "municipality", "sds")
TOKEN_PREFIX = "sor_"
F = TypeVar("F", bound=Callable[..., Any])


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    cvr: Mapped[str] = mapped_column(String(8), index=True)
    roles: Mapped[list[str]] = mapped_column(JsonDocument)
    municipality_code: Mapped[str | None] = mapped_column(String(4))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


class ClientError(ValueError):
    """A client cannot be made or revoked as asked; the message says why."""


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_client(
    session: Session,
    name: str,
    *,
    cvr: str,
    roles: list[str],
    municipality_code: str | None = None,
) -> tuple[ApiClient, str]:
    """Make a client; returns it and its token (the only time the token is seen)."""
    from hierarchy import identifiers as ids

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
    from hierarchy import identifiers as ids

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


def list_clients(session: Session) -> list[ApiClient]:
    """Every client, revoked ones too, oldest first; the caller decides what to show."""
    return list(session.execute(select(ApiClient).order_by(ApiClient.id)).scalars())


def revoke_client(session: Session, client_id: int, *, now: datetime | None = None) -> ApiClient:
    """Mark a client revoked, so that :func:`client_for_token` refuses its token.

    Revoking is for good (a client that should work again gets a new one, with a
    new token), so an unknown or already revoked client is an error rather than
    a silent success that could hide a typo in the id. Set in SQL on a row not
    yet revoked, so two operators revoking at once cannot overwrite the first
    time. Worker processes that saw the token in the last ``_IDENTITY_SECONDS``
    keep accepting it until their cache entry runs out; this process's cache is
    no help to them, so it is left alone. Flushes; the caller commits.
    """
    client = session.get(ApiClient, client_id)
    if client is None:
        raise ClientError(f"there is no API client with id {client_id}")
    revoked = session.execute(
        update(ApiClient)
        .where(ApiClient.id == client_id, ApiClient.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    ).rowcount
    session.refresh(client)
    if not revoked:
        raise ClientError(
            f"API client {client.id} '{client.name}' was revoked already"
            + (f", at {client.revoked_at:%Y-%m-%d %H:%M} UTC" if client.revoked_at else "")
        )
    return client


def client_for_token(session: Session, token: str) -> ApiClient | None:
    client = session.execute(
        select(ApiClient).where(ApiClient.token_digest == digest_token(token))
    ).scalar_one_or_none()
    if client is None or client.revoked_at is not None:
        return None
    return client


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who is calling: what a request needs of its client, detached from any session."""

    id: int
    name: str
    cvr: str
    roles: tuple[str, ...]
    municipality_code: str | None

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


# Token digest -> (expiry, identity). Lookups are called while a person types,
# so a token is checked against the database at most once a minute per worker;
# a revoked token stops working within that minute.
_IDENTITIES: dict[str, tuple[float, ClientIdentity]] = {}
_IDENTITY_SECONDS = 60.0
_IDENTITY_MAX = 10_000


def _identity(token: str) -> ClientIdentity | None:
    from sorregistry.extensions import db

    digest = digest_token(token)
    now = time.monotonic()
    cached = _IDENTITIES.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    client = client_for_token(db.session, token)
    if client is None:
        _IDENTITIES.pop(digest, None)
        return None
    identity = ClientIdentity(
        id=client.id,
        name=client.name,
        cvr=client.cvr,
        roles=tuple(client.roles),
        municipality_code=client.municipality_code,
    )
    if len(_IDENTITIES) >= _IDENTITY_MAX:
        _IDENTITIES.clear()
    _IDENTITIES[digest] = (now + _IDENTITY_SECONDS, identity)
    return identity


def forget_identities() -> None:
    """Drop every cached identity (after revoking a client, in tests)."""
    _IDENTITIES.clear()


_REQUEST_CLIENT = "sor.api_client"


def current_client() -> ClientIdentity:
    return g.api_client


def authenticate() -> ClientIdentity:
    """The client of the request's bearer token; 401 without a valid one."""
    known = request.environ.get(_REQUEST_CLIENT)
    if known is not None:  # authenticated already in this request (g can outlive it)
        g.api_client = known
        return known  # type: ignore[no-any-return]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(
            401,
            message="a bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="sor"'},
        )
    client = _identity(token.strip())
    if client is None:
        abort(
            401,
            message="the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="sor", error="invalid_token"'},
        )
    g.api_client = client
    request.environ[_REQUEST_CLIENT] = client
    return client


def require(*roles: str) -> Callable[[F], F]:
    """Let the view run only for a client with one of *roles* (any client if none given)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            client = authenticate()
            if roles and not client.has_role(*roles):
                abort(403, message=f"this needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

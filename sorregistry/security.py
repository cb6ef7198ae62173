"""Who is calling, and what they may do: the one place that decides.

The roles are ``reporter`` (lookups), ``municipality`` (its own applications) and
``sds`` (staff: everything). An API request is authenticated by its bearer token
alone, never by a cookie: :func:`authenticate` asks each token resolver a feature
registered (:func:`add_token_resolver`: the accounts feature's JWT access tokens from
an identity provider and its own opaque tokens) for the :class:`Identity` behind it. A
page request is authenticated by the login session (Flask-Login), and
:func:`role_required` guards it. The CVR that "Mit CVR" lookups use is the identity's,
never a request parameter.

Refusals say which scheme failed and why, as RFC 6750 asks: no token at all is a bare
``Bearer realm="sor"`` challenge; a token no resolver accepts is ``error="invalid_token"``
with the resolver's reason (:class:`InvalidToken`) as ``error_description``; a caller
without the role is 403 ``error="insufficient_scope"`` naming the OAuth scopes that
carry the role (:data:`ROLE_SCOPES`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, jsonify, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException, default_exceptions

from sorregistry.extensions import login_manager
from sorregistry.request_id import current_request

ROLES = ("reporter", "municipality", "sds")
# The OAuth 2 scope that gives each role to a system calling with an access token.
ROLE_SCOPES = {"reporter": "sor:lookup", "municipality": "sor:apply", "sds": "sor:staff"}
F = TypeVar("F", bound=Callable[..., Any])
_REALM = 'Bearer realm="sor"'
# RFC 6750 section 3: error_description is printable ASCII without '"' and '\\'.
_DESCRIPTION = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')
_WHITESPACE = re.compile(r'\s')


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: what a request needs of its caller, detached from any session."""

    id: int
    name: str
    cvr: str | None
    roles: tuple[str, ...]
    municipality_code: str | None
    # Who vouches for it: None for the service's own tokens, else the identity
    # provider that issued the access token, and the subject (client) it names.
    issuer: str | None = None
    subject: str | None = None

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


class InvalidToken(Exception):
    """A resolver recognised the token as its kind and refuses it; the message says why
    (it becomes the challenge's ``error_description``, so it names no secret)."""


# A bearer token -> its identity, or None when this resolver does not know the kind of
# token; raises InvalidToken for a token of its kind that it refuses.
TokenResolver = Callable[[str], Identity | None]
_RESOLVERS = "sor.token_resolvers"
_REQUEST_IDENTITY = "sor.identity"


def add_token_resolver(app: Flask, resolver: TokenResolver) -> None:
    """Let *resolver* tell who a bearer token belongs to (asked in registration order)."""
    app.extensions.setdefault(_RESOLVERS, []).append(resolver)


def authenticate() -> Identity:
    """The caller of the request's bearer token; 401 without a valid one."""
    # The request itself, once (each read through the proxy looks it up again).
    req = current_request()
    known: Identity | None = req.environ.get(_REQUEST_IDENTITY)
    if known is not None:  # authenticated already in this request (g can outlive it)
        g.api_client = known
        return known
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        refuse(401, message="a bearer token is required (Authorization: Bearer <token>)",
               headers={"WWW-Authenticate": _REALM})
    if _WHITESPACE.search(token):  # a JWT is ~1 kB: no per-character Python loop
        refuse(400, message="the Authorization header holds more than one token",
               headers={"WWW-Authenticate": _challenge("invalid_request",
                                                       "one bearer token, no spaces")})
    identity: Identity | None = None
    reason = "the bearer token is not valid"
    resolvers: list[TokenResolver] = current_app.extensions.get(_RESOLVERS, [])
    try:
        for resolver in resolvers:
            identity = resolver(token)
            if identity is not None:
                break
    except InvalidToken as refused:
        reason = str(refused) or reason
    if identity is None:
        refuse(401, message=reason,
               headers={"WWW-Authenticate": _challenge("invalid_token", reason)})
    g.api_client = identity
    req.environ[_REQUEST_IDENTITY] = identity
    return identity


def request_identity() -> Identity | None:
    """The identity this request authenticated as, if it did (None: not, or not yet)."""
    known: Identity | None = request.environ.get(_REQUEST_IDENTITY)
    return known


def current_client() -> Identity:
    """The identity :func:`authenticate` found for this request."""
    return g.api_client  # type: ignore[no-any-return]


_REQUIRED_ROLES = "_sor_required_roles"


def refuse(status: int, *, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    """Answer *status* with *message* in the API's envelope (``sorregistry.errors``
    renders it; ``headers`` such as WWW-Authenticate go with it)."""
    error: HTTPException = default_exceptions[status]()
    # flask-smorest's convention, which sorregistry.errors reads: werkzeug declares no
    # ``data`` on its exceptions.
    error.data = {  # type: ignore[attr-defined]
        "message": message, **({"headers": headers} if headers else {})}
    try:
        raise error
    finally:
        # The traceback holds this frame; its local would hold the exception back: a
        # reference cycle per refusal, left to the garbage collector (a 0.3 ms pause
        # every ~15 refusals) instead of freed once the error is answered.
        del error


def _challenge(error: str, description: str, **extra: str) -> str:
    """A ``WWW-Authenticate`` value for a refused bearer token (RFC 6750 section 3)."""
    parts = [_REALM, f'error="{error}"',
             f'error_description="{_DESCRIPTION.sub("?", description)[:200]}"']
    parts += [f'{name}="{_DESCRIPTION.sub("?", value)}"' for name, value in extra.items()]
    return ", ".join(parts)


def _check(roles: tuple[str, ...]) -> Identity:
    client = authenticate()
    if roles and not client.has_role(*roles):
        needed = " or ".join(roles)
        scopes = " ".join(ROLE_SCOPES[role] for role in roles if role in ROLE_SCOPES)
        refuse(403, message=f"this needs the role {needed}",
               headers={"WWW-Authenticate": _challenge(
                   "insufficient_scope", f"this needs the role {needed}", scope=scopes)})
    return client


def require(*roles: str) -> Callable[[F], F]:
    """Let the API view run only for a caller with one of *roles* (any caller if none).

    The roles are also kept on the view (``functools.wraps`` carries them out through
    the argument parsers' decorators), so that ``sorregistry.guards`` checks them before
    the arguments are parsed: 401/403 before 422.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _check(roles)
            return view(*args, **kwargs)

        setattr(wrapper, _REQUIRED_ROLES, roles)
        return wrapper  # type: ignore[return-value]

    return decorate


def check_required_roles(view: Callable[..., Any]) -> None:
    """Authenticate the caller of *view* and check its roles, if it requires any."""
    roles = getattr(view, _REQUIRED_ROLES, None)
    if roles is not None:
        _check(roles)


def role_required(*roles: str) -> Callable[[F], F]:
    """A page for logged-in people with one of *roles*: others go to /login, or get 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if roles and not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def json_login_required(view: F) -> F:
    """A page-internal JSON endpoint: the login session authenticates, 401 without it."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return jsonify({"code": 401, "message": "log in first"}), 401
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def safe_next(target: str | None) -> str | None:
    """*target* when it is a path on this site; None for anything that could leave it.

    Refuses absolute URLs, scheme-relative ``//host`` and the ``/\\host`` that
    browsers read as one, and control characters browsers drop silently.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target

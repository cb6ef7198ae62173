"""Who is calling, and what they may do: the one place that decides.

The roles are ``reporter`` (lookups), ``municipality`` (its own applications) and
``sds`` (staff: everything). An API request is authenticated by its bearer token
alone, never by a cookie: :func:`authenticate` asks each token resolver a feature
registered (:func:`add_token_resolver`; the accounts feature's own tokens today) for
the :class:`Identity` behind it. A page request is authenticated by the login session
(Flask-Login), and :func:`role_required` guards it. The CVR that "Mit CVR" lookups use
is the identity's, never a request parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, jsonify, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException, default_exceptions

from sorregistry.extensions import login_manager

ROLES = ("reporter", "municipality", "sds")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: what a request needs of its caller, detached from any session."""

    id: int
    name: str
    cvr: str | None
    roles: tuple[str, ...]
    municipality_code: str | None

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


# A bearer token -> its identity, or None when this resolver does not know it.
TokenResolver = Callable[[str], Identity | None]
_RESOLVERS = "sor.token_resolvers"
_REQUEST_IDENTITY = "sor.identity"


def add_token_resolver(app: Flask, resolver: TokenResolver) -> None:
    """Let *resolver* tell who a bearer token belongs to (asked in registration order)."""
    app.extensions.setdefault(_RESOLVERS, []).append(resolver)


def authenticate() -> Identity:
    """The caller of the request's bearer token; 401 without a valid one."""
    known: Identity | None = request.environ.get(_REQUEST_IDENTITY)
    if known is not None:  # authenticated already in this request (g can outlive it)
        g.api_client = known
        return known
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        refuse(401, message="a bearer token is required (Authorization: Bearer <token>)",
                  headers={"WWW-Authenticate": 'Bearer realm="sor"'})
    identity: Identity | None = None
    resolvers: list[TokenResolver] = current_app.extensions.get(_RESOLVERS, [])
    for resolver in resolvers:
        identity = resolver(token.strip())
        if identity is not None:
            break
    if identity is None:
        refuse(401, message="the bearer token is not valid",
                  headers={"WWW-Authenticate": 'Bearer realm="sor", error="invalid_token"'})
    g.api_client = identity
    request.environ[_REQUEST_IDENTITY] = identity
    return identity


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
    raise error


def _check(roles: tuple[str, ...]) -> Identity:
    client = authenticate()
    if roles and not client.has_role(*roles):
        refuse(403, message=f"this needs the role {' or '.join(roles)}")
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

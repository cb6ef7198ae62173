"""The service as a relying party of the identity provider: Authlib's Flask client.

Configured from ``SOR_OIDC_ISSUER``, ``SOR_OIDC_CLIENT_ID`` and either
``SOR_OIDC_CLIENT_SECRET`` (``client_secret_basic`` or ``client_secret_post``) or
``SOR_OIDC_PRIVATE_KEY_FILE`` (``private_key_jwt``: the client signs a JWT assertion with
its own key, whose public half the provider knows - no shared secret at all). The
provider's endpoints come from its discovery document (``server_metadata_url``), whose
``issuer`` must be the configured one. The flow itself is ``sorregistry.accounts.oidc``.

**Is the provider up?** The login page asks :func:`reachable`, which reads the discovery
document again at most every ``PROBE_SECONDS`` per worker (3 s timeout): when it cannot,
the page says so in one sentence and keeps local login (when on). A failed start of
the flow marks the provider down too. Never a request per page view.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from flask import Flask, current_app, url_for

from sorregistry.config import ConfigurationError

PROBE_SECONDS = 30.0
PROBE_TIMEOUT = 3.0
REQUEST_TIMEOUT = 10.0
CLIENT_NAME = "sor_identity"  # not "oidc": Authlib would read OIDC_* config keys itself
_STATE = "sor.oidc"
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


@dataclass
class ProviderState:
    """This worker's relying party: the Authlib client and what the probe last saw."""

    issuer: str
    client: FlaskOAuth2App
    checked_at: float | None = None
    up: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def client_credentials(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The client's secret (or private key) and the Authlib keyword arguments for its
    token endpoint authentication."""
    method = config.get("OIDC_CLIENT_AUTH") or "client_secret_basic"
    if method not in AUTH_METHODS:
        raise ConfigurationError(
            f"SOR_OIDC_CLIENT_AUTH={method!r} is not one of {', '.join(AUTH_METHODS)}")
    if method == "private_key_jwt":
        path = config.get("OIDC_PRIVATE_KEY_FILE")
        if not path:
            raise ConfigurationError("SOR_OIDC_CLIENT_AUTH=private_key_jwt needs "
                                     "SOR_OIDC_PRIVATE_KEY_FILE (a PEM or JWK private key)")
        try:
            secret = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"SOR_OIDC_PRIVATE_KEY_FILE={path!r}: {exc}") from exc
        return secret, {"client_auth_methods": [PrivateKeyJWT(alg="RS256")]}
    shared = config.get("OIDC_CLIENT_SECRET")
    if not shared:
        raise ConfigurationError(f"SOR_OIDC_CLIENT_AUTH={method} needs SOR_OIDC_CLIENT_SECRET")
    return str(shared), {}


def init_app(app: Flask) -> None:
    """Make the relying party when an issuer is configured (nothing otherwise)."""
    config = app.config
    issuer = config.get("OIDC_ISSUER")
    if not issuer:
        if not config.get("LOCAL_LOGIN", True):
            raise ConfigurationError("SOR_LOCAL_LOGIN=0 needs SOR_OIDC_ISSUER: "
                                     "nobody could log in")
        return
    if not config.get("OIDC_CLIENT_ID"):
        raise ConfigurationError("SOR_OIDC_ISSUER needs SOR_OIDC_CLIENT_ID")
    secret, extra = client_credentials(config)
    oauth = OAuth(app)
    client = oauth.register(
        CLIENT_NAME,
        client_id=config["OIDC_CLIENT_ID"],
        client_secret=secret,
        server_metadata_url=discovery_url(issuer),
        client_kwargs={
            "scope": config.get("OIDC_SCOPES") or "openid",
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": config.get("OIDC_CLIENT_AUTH")
            or "client_secret_basic",
            "default_timeout": REQUEST_TIMEOUT,
        },
        **extra,
    )
    app.extensions[_STATE] = ProviderState(issuer=issuer, client=client)


def state(app: Flask | None = None) -> ProviderState | None:
    """The relying party of *app* (the current one), None when no issuer is configured."""
    found: ProviderState | None = (app or current_app).extensions.get(_STATE)
    return found


def metadata() -> dict[str, Any]:
    """The provider's discovery document (loaded once by Authlib, then kept); raises
    ``ProviderDown`` when it cannot be had or names another issuer."""
    provider = state()
    if provider is None:
        raise ProviderDown("no identity provider is configured")
    try:
        loaded: dict[str, Any] = provider.client.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        mark_down()
        raise ProviderDown(str(exc)) from None
    if loaded.get("issuer") != provider.issuer:
        provider.client.server_metadata.pop("_loaded_at", None)
        mark_down()
        raise ProviderDown(f"the discovery document names the issuer {loaded.get('issuer')!r}")
    return loaded


class ProviderDown(Exception):
    """The identity provider cannot be reached (or answers what it must not)."""


def mark_down() -> None:
    provider = state()
    if provider is not None:
        provider.checked_at = time.monotonic()
        provider.up = False


def reachable() -> bool:
    """Whether the provider answered its discovery document lately (see the docstring)."""
    provider = state()
    if provider is None:
        return False
    now = time.monotonic()
    with provider.lock:
        if provider.checked_at is not None and now - provider.checked_at < PROBE_SECONDS:
            return provider.up
        try:
            response = requests.get(discovery_url(provider.issuer), timeout=PROBE_TIMEOUT)
            provider.up = (response.status_code == 200
                           and response.json().get("issuer") == provider.issuer)
        except (requests.RequestException, ValueError):
            provider.up = False
        provider.checked_at = now
        return provider.up


def login_offer() -> dict[str, bool]:
    """What the login page offers: local login, the identity provider, and whether the
    provider is down."""
    offered = state() is not None
    return {"local_login": bool(current_app.config.get("LOCAL_LOGIN", True)),
            "oidc": offered, "oidc_down": offered and not reachable()}


def redirect_uri() -> str:
    configured = current_app.config.get("OIDC_REDIRECT_URI")
    return str(configured) if configured else url_for("oidc.callback", _external=True)


def post_logout_redirect_uri() -> str:
    configured = current_app.config.get("OIDC_POST_LOGOUT_REDIRECT_URI")
    return str(configured) if configured else url_for("login.login", _external=True)


def logout_url(id_token: str | None) -> str | None:
    """Where to send a person whose login came from the provider, so that logging out
    here ends the provider's session too (RP-initiated logout 1.0); None when the login
    was local or the provider offers no ``end_session_endpoint``."""
    provider = state()
    if provider is None or not id_token:
        return None
    try:
        endpoint = metadata().get("end_session_endpoint")
    except ProviderDown:
        return None
    if not endpoint:
        return None
    query = urlencode({"id_token_hint": id_token, "client_id": provider.client.client_id,
                       "post_logout_redirect_uri": post_logout_redirect_uri()})
    return f"{endpoint}{'&' if urlsplit(str(endpoint)).query else '?'}{query}"

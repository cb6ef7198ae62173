"""Security headers on every answer (Flask-Talisman), for pages and APIs alike.

- ``Content-Security-Policy``: scripts, styles, images and connections from this site
  only, no inline script (the pages load theirs from ``static/``; the one inline script
  of the API documentation carries a per-request nonce), no plugins, forms post only
  here, ``frame-ancestors 'none'``: no other site may frame a page (a staff page with
  its approve button framed by a sibling origin was the probe's click-jacking case).
  A page that may be embedded says so itself (:func:`allow_framing`).
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``;
  ``X-Content-Type-Options: nosniff``; ``Referrer-Policy: strict-origin-when-cross-origin``
  (SOR codes in URLs do not leak to other sites' logs); a ``Permissions-Policy`` that
  turns off what the pages never use.
- With an identity provider (``SOR_OIDC_ISSUER``), ``form-action`` also names its origin:
  logging out posts here and is then sent on to the provider's logout, and browsers hold
  a form's redirects to ``form-action`` too.
- HTTPS: ``Strict-Transport-Security`` and the redirect to HTTPS only where the
  deployment says it has TLS (``SOR_FORCE_HTTPS=1``; behind a proxy that terminates TLS
  the proxy sets HSTS). The session cookie's flags stay ``sorregistry.pages``'.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from flask import Flask, Response, g
from flask_talisman import Talisman

talisman = Talisman()

POLICY: dict[str, str | list[str]] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": ["'self'", "data:"],
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
PERMISSIONS = {"camera": "()", "microphone": "()", "geolocation": "()", "payment": "()",
               "usb": "()", "browsing-topics": "()"}
_FRAMING = "sor.frame_ancestors"


def allow_framing(origins: Sequence[str]) -> None:
    """Let the current answer be framed by *origins* (exact origins, never ``*``)."""
    g.setdefault(_FRAMING, list(origins))


def _framing(response: Response) -> Response:
    origins: list[str] | None = g.get(_FRAMING)
    if origins:
        policy = response.headers.get("Content-Security-Policy", "")
        parts = [part for part in policy.split("; ") if part
                 and not part.startswith("frame-ancestors")]
        parts.append("frame-ancestors " + " ".join(origins))
        response.headers["Content-Security-Policy"] = "; ".join(parts)
        response.headers.pop("X-Frame-Options", None)
    return response


def _policy(app: Flask) -> dict[str, str | list[str]]:
    policy: dict[str, str | list[str]] = dict(POLICY)
    issuer = urlsplit(str(app.config.get("OIDC_ISSUER") or ""))
    if issuer.scheme and issuer.netloc:
        policy["form-action"] = ["'self'", f"{issuer.scheme}://{issuer.netloc}"]
    return policy


def init_app(app: Flask) -> None:
    https = bool(app.config.get("FORCE_HTTPS"))
    # Flask runs after_request functions last-registered first: registered before
    # Talisman's, _framing edits the headers Talisman has set.
    app.after_request(_framing)
    talisman.init_app(
        app,
        force_https=https,
        strict_transport_security=https,
        frame_options="DENY",
        content_security_policy=_policy(app),
        content_security_policy_nonce_in=["script-src"],
        referrer_policy="strict-origin-when-cross-origin",
        permissions_policy=PERMISSIONS,
        # The session cookie's flags are sorregistry.pages' (Secure only with TLS).
        session_cookie_secure=bool(app.config.get("SESSION_COOKIE_SECURE")),
        session_cookie_http_only=True,
        session_cookie_samesite=str(app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"),
    )

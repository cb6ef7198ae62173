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

from flask import Flask, Request, Response, current_app, g
from flask_talisman import Talisman

from sorregistry.request_id import current_request


class _Talisman(Talisman):  # type: ignore[misc]  # flask-talisman ships no types
    """Talisman, with the nonce made when a page uses it and the headers computed once.

    Talisman makes a CSP nonce for every request and renders every header from its policy
    dictionaries for every answer - some 130 microseconds a request, on an API lookup that
    answers in two milliseconds. Here the nonce is made when a template asks for it
    (``csp_nonce()``: only the API documentation's inline script does), and an answer
    without a nonce, from a view without Talisman options of its own, gets the headers
    Talisman rendered for the first such answer (per scheme: HSTS depends on it). The
    headers are the same as before; only a page that uses the nonce pays for it.
    """

    def init_app(self, app: Flask, **options: object) -> None:
        super().init_app(app, **options)
        # The headers per scheme: (name, its lower case, value).
        self._rendered: dict[bool, list[tuple[str, str, str]]] = {}
        app.jinja_env.globals["csp_nonce"] = self._nonce

    def _make_nonce(self) -> None:
        """Made on first use (:meth:`_nonce`), not for every request."""

    def _nonce(self) -> str:
        super()._make_nonce()
        return str(self._get_nonce())

    def _force_https(self) -> Response | None:
        if not self.force_https and not self._own_options(current_request()):
            return None  # nothing to redirect, as Talisman would decide
        answer: Response | None = super()._force_https()
        return answer

    def _set_response_headers(self, response: Response) -> Response:
        req = current_request()
        if getattr(req, "csp_nonce", None) or self._own_options(req):
            answer: Response = super()._set_response_headers(response)
            return answer
        secure = req.is_secure or req.environ.get("HTTP_X_FORWARDED_PROTO") == "https"
        rendered = self._rendered.get(secure)
        if rendered is None:
            blank = Response()
            before = set(blank.headers.keys())
            super()._set_response_headers(blank)
            rendered = self._rendered[secure] = [
                (name, name.lower(), value) for name, value in blank.headers.items()
                if name not in before]
        # Set as Talisman sets them (replacing the answer's own), without a scan of the
        # answer's headers for each: one pass finds which it has, the others are added.
        headers = response.headers
        present = {name.lower() for name, _ in headers}
        for name, lower, value in rendered:
            if lower in present:
                headers[name] = value
            else:
                headers.add(name, value)
        return response

    @staticmethod
    def _own_options(req: Request) -> bool:
        """Whether the view has Talisman options of its own (``@talisman(...)``), known
        per endpoint (views are decorated once, at import)."""
        endpoint = req.endpoint or ""
        own: dict[str, bool] = current_app.extensions.setdefault(_OWN_OPTIONS, {})
        known = own.get(endpoint)
        if known is None:
            view = current_app.view_functions.get(endpoint)
            known = own[endpoint] = bool(getattr(view, "talisman_view_options", None))
        return known


talisman = _Talisman()

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
_OWN_OPTIONS = "sor.talisman.own_options"  # app.extensions: endpoint -> has its own options


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

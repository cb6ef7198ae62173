"""The picker embedded in another site's page (``/picker?embed=1``, issue 15 item 5).

A reporting form on another site (SEI) frames the picker and hears the person's choice:

1. The form's server asks for a picker token with its own API credentials:
   ``POST /api/v1/picker/tokens {"origin": "https://sei.example.dk"}``
   (``hierarchy.embed_routes``; any API client;
   the origin must be one of ``SOR_PICKER_ORIGINS``). The answer holds the token and
   the frame's URL, ``/picker?embed=1&origin=...#token=...``.
2. The form's page frames that URL. The picker page answers with
   ``Content-Security-Policy: frame-ancestors 'self' <that origin>``, so a browser shows
   it only inside a page of that origin (everything else keeps ``frame-ancestors
   'none'`` and ``X-Frame-Options: DENY``); an origin not listed gets 400 and no framing.
   Without ``origin=`` every listed origin may frame it, and the script posts to its
   parent's origin (``location.ancestorOrigins``, else ``document.referrer``) only when
   that is one of them.
3. The page's script reads the token from the fragment (never sent to a server, never
   in a Referer or a log), removes it from the address, and sends it as
   ``Authorization: Bearer`` on the picker's list requests. The choice goes to the
   embedding page with ``postMessage({type: "sor-picker", sor_code, name, level,
   shak?}, origin)``: to exactly the origin the page was made for, never ``*``.

Why a token and not the login session: in a frame of another site the session cookie is
a third-party cookie. ``SameSite=Lax`` (this service's setting, a CSRF defence) is never
sent there; ``SameSite=None; Secure`` would be, but only over TLS, and Safari, Firefox's
total cookie protection and Chrome's third-party cookie controls block or partition it
anyway; and the login page cannot be framed (click-jacking). The embedding site has
already authenticated its user and holds API credentials: it vouches, server-side, for a
short while. The token is signed with the service's secret key (itsdangerous, its own
salt), names the API client, its CVR ("Mit CVR") and the origin, lives
:data:`TOKEN_SECONDS`, and opens only the picker's read-only lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

TOKEN_SECONDS = 30 * 60  # a reporting form filled in at a normal pace
_SALT = "sor-picker-embed"


@dataclass(frozen=True, slots=True)
class EmbedCaller:
    """Who a picker token speaks for: the API client that asked for it."""

    client: str
    cvr: str | None
    origin: str


def allowed_origin(origin: str | None) -> str | None:
    """*origin* when ``SOR_PICKER_ORIGINS`` lists it (compared as browsers write origins)."""
    if not origin:
        return None
    wanted = origin.strip().rstrip("/").lower()
    listed: tuple[str, ...] = current_app.config.get("PICKER_ORIGINS") or ()
    return wanted if wanted in listed else None


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt=_SALT)


def issue_token(client: str, cvr: str | None, origin: str) -> str:
    return _serializer().dumps({"c": client, "v": cvr, "o": origin})


def read_token(token: str) -> EmbedCaller | None:
    """The caller of a valid, unexpired picker token for a still-listed origin; else None."""
    try:
        data: Any = _serializer().loads(token, max_age=TOKEN_SECONDS)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or allowed_origin(str(data.get("o"))) is None:
        return None
    cvr = data.get("v")
    return EmbedCaller(client=str(data.get("c")), cvr=str(cvr) if cvr else None,
                       origin=str(data["o"]))


def request_caller() -> EmbedCaller | None:
    """The picker token's caller of this request (``Authorization: Bearer``), if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return read_token(token.strip())

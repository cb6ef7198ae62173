"""The pages for people: login sessions, CSRF, cookie settings, navigation, language.

``init_app(app)`` sets up what every page shares; each feature then registers its
page blueprints with :func:`register_pages`, naming the menu entries they add. Every
POST to a page must carry the form's ``csrf_token`` (or the ``X-CSRFToken`` header
from the pages' scripts); declared APIs (``sorregistry.api``) are exempt, since no
cookie authenticates them, and never open the cookie session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Request, Response, current_app, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from sorregistry.api import is_api_request
from sorregistry.extensions import csrf, login_manager
from sorregistry.i18n import COOKIE, LANGUAGES, current_language, gettext, lazy_gettext
from sorregistry.request_id import current_request

_PAGES = "sor.page_blueprints"
_NAVIGATION = "sor.navigation"


@dataclass(frozen=True, slots=True)
class MenuEntry:
    """One entry of the pages' menu: shown to people with one of *roles* (everyone
    logged in when empty), in the order of *order*, when its endpoint exists. The
    *label* is Danish, translated when shown (``make translations`` extracts it from
    the second argument of ``MenuEntry(...)``)."""

    endpoint: str
    label: str
    roles: tuple[str, ...] = ()
    order: int = 100


def register_pages(app: Flask, blueprint: Blueprint, *, menu: Iterable[MenuEntry] = ()) -> None:
    """Register a blueprint of pages and its menu entries (a ``?lang=`` on its pages is
    remembered in a cookie)."""
    app.register_blueprint(blueprint)
    app.extensions.setdefault(_PAGES, set()).add(blueprint.name)
    entries: list[MenuEntry] = app.extensions.setdefault(_NAVIGATION, [])
    entries.extend(menu)
    entries.sort(key=lambda entry: entry.order)


def page_blueprints(app: Flask) -> frozenset[str]:
    """The names of the blueprints registered as pages."""
    return frozenset(app.extensions.get(_PAGES, ()))


def init_app(app: Flask) -> None:
    """Login manager, CSRF, secure cookies, the language cookie, template helpers."""
    _configure(app)
    app.session_interface = PageSessions()
    login_manager.init_app(app)
    csrf.init_app(app)
    app.before_request(_check_csrf)
    app.after_request(_remember_language)
    app.context_processor(_template_helpers)


def _configure(app: Flask) -> None:
    config = app.config
    relaxed = bool(config.get("TESTING")) or config.get("SOR_ENV") == "development" or app.debug
    secure = config.get("SOR_COOKIE_SECURE")
    secure = (not relaxed) if secure is None else bool(secure)
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = secure
    config["REMEMBER_COOKIE_HTTPONLY"] = True
    config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    config["REMEMBER_COOKIE_SECURE"] = secure
    # CSRF is checked by _check_csrf, which leaves the declared APIs alone (an API
    # blueprint added later needs no exemption of its own).
    config["WTF_CSRF_CHECK_DEFAULT"] = False
    # The token lives as long as the login session: a long application form
    # must not fail because filling it in took more than an hour.
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)

    login_manager.login_view = "login.login"
    # Translated when flashed, in the language of the request that needs the login.
    login_manager.login_message = lazy_gettext("Log ind for at se siden.")
    login_manager.needs_refresh_message = lazy_gettext("Din session er udløbet; log ind igen.")
    login_manager.login_message_category = "info"
    login_manager.localize_callback = str
    # A session cookie replayed from another browser (address or user agent)
    # is thrown away rather than trusted.
    login_manager.session_protection = "strong"


class PageSessions(SecureCookieSessionInterface):
    """Cookie sessions for the pages only. The APIs authenticate by bearer token and never
    by cookie (so a forged cross-site request carries no authority there), so their
    requests neither read nor write the session cookie: no signature to check or make
    on every lookup."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_api_request():
            return None  # Flask's null session: nothing saved
        return super().open_session(app, request)


def _check_csrf() -> None:
    if is_api_request() or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    csrf.protect()


def _remember_language(response: Response) -> Response:
    req = current_request()
    if not req.environ.get("QUERY_STRING") or req.blueprint not in page_blueprints(current_app):
        return response  # no ?lang= (nearly every answer), or not a page
    chosen = req.args.get("lang")
    if chosen in LANGUAGES:
        response.set_cookie(COOKIE, chosen, samesite="Lax", max_age=365 * 24 * 3600)
    return response


def language_url(language: str) -> str:
    """The current page in *language* (the same query, another ``lang``)."""
    args = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return request.path + "?" + urlencode([*args, ("lang", language)])


def navigation(user: Any) -> list[tuple[str, str]]:
    """The (URL, label) pairs of the pages *user* may open, in menu order."""
    if not user.is_authenticated:
        return []
    entries: list[MenuEntry] = current_app.extensions.get(_NAVIGATION, [])
    return [
        (url_for(entry.endpoint), gettext(entry.label))
        for entry in entries
        if entry.endpoint in current_app.view_functions
        and (not entry.roles or user.has_role(*entry.roles))
    ]


def _template_helpers() -> dict[str, Any]:
    language = current_language()
    return {
        "lang": language,
        "other_lang": "en" if language == "da" else "da",
        "language_url": language_url,
        "navigation": navigation,
    }

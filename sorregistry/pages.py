"""The pages for people: login sessions, CSRF, cookie settings, roles, the page blueprints.

``register(app)`` is the one call ``create_app`` makes. The JSON API under
``/api/`` keeps its bearer tokens and is not CSRF-checked (no cookie
authenticates it, so there is nothing to forge); every other POST must carry the
form's ``csrf_token`` (or the ``X-CSRFToken`` header from the pages' scripts).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import Flask, Request, Response, abort, current_app, jsonify, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect

from sorregistry.i18n import LANGUAGES, add_english, current_language, gettext

F = TypeVar("F", bound=Callable[..., Any])
login_manager = LoginManager()
csrf = CSRFProtect()
# The blueprints of the pages; a ?lang= on any of them is remembered in a cookie.
PAGE_BLUEPRINTS = {"login", "staff", "municipality", "register_pages", "picker",
                   "notifications_pages"}
# The navigation: (endpoint, Danish label, roles that see it; none: everyone logged in).
# An entry shows only when its endpoint exists and the person has one of its roles.
NAVIGATION: list[tuple[str, str, tuple[str, ...]]] = [
    ("staff.queue", "Ansøgninger", ("sds",)),
    ("register_pages.browse", "Registret", ("sds",)),
    ("staff.mail_queue", "Indbakke", ("sds",)),
    ("notifications_pages.outbox", "Udbakke", ("sds",)),
    ("municipality.applications", "Mine ansøgninger", ("municipality",)),
    ("picker.picker", "Opslag", ()),
]

add_english({
    "Ansøgninger": "Applications",
    "Registret": "The register",
    "Udbakke": "Outbox",
    "Indbakke": "Mail intake",
    "Mine ansøgninger": "My applications",
    "Opslag": "Lookup",
    "Hovedmenu": "Main menu",
    "Log ind for at se siden.": "Log in to see this page.",
    "Din session er udløbet; log ind igen.": "Your session has expired; log in again.",
})


def register(app: Flask) -> None:
    """Login manager, CSRF, secure cookies, the page blueprints and the commands for logins."""
    import sorregistry.accounts  # noqa: F401  (the users table in the metadata)

    _configure(app)
    app.session_interface = PageSessions()
    login_manager.init_app(app)
    csrf.init_app(app)
    app.before_request(_check_csrf)
    app.after_request(_remember_language)
    app.context_processor(_template_helpers)

    from applications.views import municipality_bp, staff_bp
    from hierarchy.views import picker_bp, register_bp
    from notifications.views import bp as outbox_bp
    from sorregistry import accounts
    from sorregistry.login import bp as login_bp

    for blueprint in (login_bp, staff_bp, register_bp, municipality_bp, picker_bp, outbox_bp):
        app.register_blueprint(blueprint)
    for command in (accounts.create_user_command, accounts.list_users_command,
                    accounts.deactivate_user_command, accounts.activate_user_command,
                    accounts.set_password_command):
        app.cli.add_command(command)


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
    # CSRF is checked by _check_csrf, which leaves /api/ alone whatever blueprint
    # serves it (an API blueprint added later needs no exemption of its own).
    config["WTF_CSRF_CHECK_DEFAULT"] = False
    # The token lives as long as the login session: a long application form
    # must not fail because filling it in took more than an hour.
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)

    login_manager.login_view = "login.login"
    login_manager.login_message = "Log ind for at se siden."
    login_manager.needs_refresh_message = "Din session er udløbet; log ind igen."
    login_manager.login_message_category = "info"
    login_manager.localize_callback = gettext
    # A session cookie replayed from another browser (address or user agent)
    # is thrown away rather than trusted.
    login_manager.session_protection = "strong"


@login_manager.user_loader
def _load_user(user_id: str) -> Any:
    from sorregistry.accounts import load_user
    from sorregistry.extensions import db

    return load_user(db.session, user_id)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


class PageSessions(SecureCookieSessionInterface):
    """Cookie sessions for the pages only. The API authenticates by bearer token and never
    by cookie (so a forged cross-site request carries no authority there), so its requests
    neither read nor write the session cookie: no signature to check or make on every
    lookup."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if _is_api(request.path):
            return None  # Flask's null session: nothing saved
        return super().open_session(app, request)


def _check_csrf() -> None:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if _is_api(request.path):
        return
    csrf.protect()


def _remember_language(response: Response) -> Response:
    if request.blueprint not in PAGE_BLUEPRINTS:
        return response
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        response.set_cookie("lang", chosen, samesite="Lax", max_age=365 * 24 * 3600)
    return response


def language_url(language: str) -> str:
    """The current page in *language* (the same query, another ``lang``)."""
    args = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return request.path + "?" + urlencode([*args, ("lang", language)])


def navigation(user: Any) -> list[tuple[str, str]]:
    """The (URL, label) pairs of the pages *user* may open, in menu order."""
    if not user.is_authenticated:
        return []
    return [
        (url_for(endpoint), gettext(label))
        for endpoint, label, roles in NAVIGATION
        if endpoint in current_app.view_functions and (not roles or user.has_role(*roles))
    ]


def _template_helpers() -> dict[str, Any]:
    language = current_language()
    return {
        "_": gettext,
        "lang": language,
        "other_lang": "en" if language == "da" else "da",
        "language_url": language_url,
        "navigation": navigation,
    }


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

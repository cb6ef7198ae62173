"""Logging in and out of the pages.

The login page offers local passwords, the national identity (``oidc``), or both:
``SOR_LOCAL_LOGIN=0`` leaves only the identity provider (the password form is gone and
a password sent anyway is refused). Logging out ends the login session here, and for a
login that came from the identity provider goes on to the provider's logout
(RP-initiated logout), which comes back to the login page.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from sorregistry import audit
from sorregistry.accounts import oidc_client
from sorregistry.accounts import sessions as login_sessions
from sorregistry.accounts.users import (
    LOCKOUT,
    MAX_FAILURES,
    check_credentials,
    normalise_email,
    record_attempt,
    user_actor,
)
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.i18n import _
from sorregistry.pages import navigation
from sorregistry.ratelimit import login_attempts
from sorregistry.security import safe_next

bp = Blueprint("login", __name__)


def home_for(user: object) -> str:
    """Where a person lands after logging in: the first page of the menu they may open."""
    pages = navigation(user)
    return pages[0][0] if pages else url_for("site.index")


def _page(**context: Any) -> str:
    """The login page with what it offers (local login, the identity provider)."""
    return render_template("pages/login.html", **oidc_client.login_offer(), **context)


@bp.route("/login", methods=["GET", "POST"])
@login_attempts(account_field="email", normalise=normalise_email)
def login() -> Response | tuple[str, int] | str:
    target = safe_next(request.values.get("next"))
    rule = _("Efter %(failures)s forkerte forsøg i træk spærres kontoen i %(minutes)s minutter.",
             failures=MAX_FAILURES, minutes=int(LOCKOUT.total_seconds() // 60))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target or home_for(current_user))
        return _page(next=target, rule=rule, email="")
    if not current_app.config.get("LOCAL_LOGIN", True):
        abort(404)  # no password form is offered, so none is taken
    email = request.form.get("email", "")
    credentials = check_credentials(db.session, email, request.form.get("password", ""))
    # A refused login is a write too (the failure counter, the audit log): every attempt
    # waits its turn for the write lock and is counted before the answer.
    with write_step(db.session) as work:
        user = record_attempt(work, credentials)
        token = None if user is None else login_sessions.start(work, user,
                                                                address=request.remote_addr)
        if user is None:
            audit.record(work, "login_failed", audit.Actor(
                "user", str(credentials.user_id) if credentials.user_id else None,
                normalise_email(email)[:254]))
        else:
            audit.record(work, "login", user_actor(user))
    if user is None or token is None:
        # One message for every failure: it must not tell whether the account exists.
        error = _("Forkert e-mail eller adgangskode — eller kontoen er midlertidigt spærret.")
        return _page(next=target, rule=rule, email=email, error=error), 401
    session.clear()  # nothing from before the login survives into it
    login_user(user)
    session[login_sessions.SESSION_KEY] = token
    return redirect(target or home_for(user), code=303)


@bp.post("/logout")
def logout() -> Response:
    """End the session on the server (a copy of the cookie is dead too), then here; a
    login from the identity provider goes on to end the provider's session too."""
    id_token = None
    if current_user.is_authenticated:
        actor = user_actor(current_user)
        sid = session.get(login_sessions.SESSION_KEY)
        with write_step(db.session) as work:
            id_token = login_sessions.id_token_of(work, sid)
            if login_sessions.end(work, sid):
                audit.record(work, "logout", actor)
    logout_user()
    session.clear()
    flash(_("Du er logget ud."), "info")
    return redirect(oidc_client.logout_url(id_token) or url_for("login.login"), code=303)

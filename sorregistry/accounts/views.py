"""Logging in and out of the pages."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from sorregistry.accounts.users import LOCKOUT, MAX_FAILURES, authenticate
from sorregistry.extensions import db
from sorregistry.i18n import _, add_english
from sorregistry.pages import navigation
from sorregistry.security import safe_next

bp = Blueprint("login", __name__)

add_english({
    "Log ind": "Log in",
    "Log ud": "Log out",
    "E-mail": "Email",
    "Adgangskode": "Password",
    "Du er logget ud.": "You are logged out.",
    "Forkert e-mail eller adgangskode — eller kontoen er midlertidigt spærret.":
        "Wrong email or password — or the account is temporarily locked.",
    "Efter {failures} forkerte forsøg i træk spærres kontoen i {minutes} minutter.":
        "After {failures} wrong attempts in a row the account is locked for {minutes} minutes.",
    "Log ind på SOR": "Log in to SOR",
})


def home_for(user: object) -> str:
    """Where a person lands after logging in: the first page of the menu they may open."""
    pages = navigation(user)
    return pages[0][0] if pages else url_for("site.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    target = safe_next(request.values.get("next"))
    rule = _("Efter {failures} forkerte forsøg i træk spærres kontoen i {minutes} minutter.",
             failures=MAX_FAILURES, minutes=int(LOCKOUT.total_seconds() // 60))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target or home_for(current_user))
        return render_template("pages/login.html", next=target, rule=rule, email="")
    email = request.form.get("email", "")
    user = authenticate(db.session, email, request.form.get("password", ""))
    # The failure counter is committed too: a refused login is still a write.
    db.session.commit()
    if user is None:
        # One message for every failure: it must not tell whether the account exists.
        error = _("Forkert e-mail eller adgangskode — eller kontoen er midlertidigt spærret.")
        html = render_template("pages/login.html", next=target, rule=rule, email=email,
                               error=error)
        return html, 401
    session.clear()  # nothing from before the login survives into it
    login_user(user)
    return redirect(target or home_for(user), code=303)


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    session.clear()
    flash(_("Du er logget ud."), "info")
    return redirect(url_for("login.login"), code=303)

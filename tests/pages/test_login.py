"""Logging in and out: roles' landing pages, lock-out, safe redirects, cookie settings; and
the commands that list, deactivate, activate and give new passwords to people's logins."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import request
from sqlalchemy import select

from sorregistry import create_app
from sorregistry.accounts.models import User
from sorregistry.accounts.users import MAX_FAILURES, load_user
from sorregistry.models import utcnow
from sorregistry.pages import PageSessions
from tests.applications.helpers import AARHUS, AARHUS_CVR, ODENSE, ODENSE_CVR
from tests.pages.helpers import PASSWORD, csrf_token, login, post

GENERIC = "Forkert e-mail eller adgangskode"


def test_login_lands_on_the_page_of_the_role(client, people):
    response = login(client, "SOR@aarhus.dk ")  # case and spaces do not matter
    assert response.status_code == 303
    assert response.headers["Location"] == "/municipality/"
    assert "Anne Aarhus" in client.get("/municipality/").get_data(as_text=True)


@pytest.mark.parametrize("who, home", [("sds", "/staff/"), ("reporter", "/picker")])
def test_each_role_has_its_home(client, people, who, home):
    assert login(client, people[who].email).headers["Location"] == home


def test_logout_is_a_post_and_ends_the_session(client, people):
    login(client, people["sds"].email)
    assert client.get("/staff/").status_code == 200
    assert client.get("/logout").status_code == 405
    response = post(client, "/logout", page="/staff/")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "Du er logget ud" in client.get("/login").get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_wrong_password_and_unknown_email_fail_alike(client, people):
    wrong = login(client, people["sds"].email, "forkert adgangskode")
    unknown = login(client, "ingen@example.dk", "forkert adgangskode")
    assert wrong.status_code == unknown.status_code == 401
    assert GENERIC in wrong.get_data(as_text=True)

    def message(response):
        html = response.get_data(as_text=True)
        return html[html.index('id="login-error"'):].split("</p>")[0]

    assert message(wrong) == message(unknown)
    # The rule is on the page for everyone.
    assert f"Efter {MAX_FAILURES} forkerte forsøg" in wrong.get_data(as_text=True)


def test_lock_out_after_repeated_failures(client, session, people):
    user = people["aarhus"]
    for _ in range(MAX_FAILURES):
        assert login(client, user.email, "forkert adgangskode").status_code == 401
    session.refresh(user)
    assert user.locked_until is not None and user.locked_until > utcnow() + timedelta(minutes=14)
    # Locked: even the right password is refused, with the same message as any failure.
    locked = login(client, user.email, PASSWORD)
    assert locked.status_code == 401 and GENERIC in locked.get_data(as_text=True)
    # Fifteen minutes later it opens again, and a success clears the count.
    user.locked_until = utcnow() - timedelta(seconds=1)
    session.flush()
    assert login(client, user.email, PASSWORD).status_code == 303
    session.refresh(user)
    assert user.failed_logins == 0 and user.locked_until is None
    assert user.last_login_at is not None


def test_inactive_account_cannot_log_in_and_loses_its_session(client, session, people):
    user = people["sds"]
    login(client, user.email)
    user.active = False
    session.flush()
    assert client.get("/staff/").status_code == 302  # the session no longer counts
    assert login(client, user.email).status_code == 401


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/staff/register/?q=aarhus", "/staff/register/?q=aarhus"),
        ("https://evil.example/staff/", "/staff/"),
        ("//evil.example/", "/staff/"),
        ("/\\evil.example/", "/staff/"),
        ("javascript:alert(1)", "/staff/"),
        ("/staff/\r\nSet-Cookie:x=1", "/staff/"),
    ],
)
def test_next_redirects_only_to_local_paths(client, people, target, expected):
    response = login(client, people["sds"].email, next=target)
    assert response.headers["Location"] == expected


def test_redirect_to_login_keeps_the_page_asked_for(client, people):
    response = client.get("/staff/register/?q=aarhus")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/staff/register/?q=aarhus"' in page
    response = login(client, people["sds"].email, next="/staff/register/?q=aarhus")
    assert response.headers["Location"] == "/staff/register/?q=aarhus"


def test_session_cookie_is_httponly_and_samesite(client, people):
    response = login(client, people["sds"].email)
    cookie = next(v for k, v in response.headers.items()
                  if k == "Set-Cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # tests run over plain HTTP


def test_cookies_are_secure_outside_development(monkeypatch):
    monkeypatch.delenv("SOR_COOKIE_SECURE", raising=False)
    production = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"})
    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert production.config["REMEMBER_COOKIE_SECURE"] is True
    assert production.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert production.login_manager.session_protection == "strong"
    development = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SOR_ENV": "development"})
    assert development.config["SESSION_COOKIE_SECURE"] is False
    behind_proxy = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SOR_ENV": "development",
                               "SOR_COOKIE_SECURE": True})
    assert behind_proxy.config["SESSION_COOKIE_SECURE"] is True


def test_password_is_stored_as_a_scrypt_hash(session, people):
    user = session.get(User, people["sds"].id)
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


def test_login_page_in_english(client, people):
    html = client.get("/login?lang=en").get_data(as_text=True)
    assert "Log in to SOR" in html and 'lang="en"' in html
    # The choice is remembered.
    assert "Log in to SOR" in client.get("/login").get_data(as_text=True)
    assert csrf_token(html)


def test_the_api_ignores_the_session_cookie(client, people):
    """A logged-in person's cookie gives no authority in the API (bearer tokens only, so a
    forged cross-site request carries none), and API answers never set the cookie."""
    login(client, people["sds"].email)
    assert client.get("/staff/").status_code == 200
    for path in ("/api/v1/resolve?code=123451000016001", "/api/v1/applications"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "Set-Cookie" not in response.headers, path
    assert client.get("/staff/").status_code == 200  # the page session is untouched


@pytest.mark.parametrize("path, has_session", [
    ("/api/v1/resolve", False), ("/api", False), ("/api/docs", False),
    ("/apiary", True), ("/staff/", True), ("/login", True),
])
def test_only_pages_open_the_session_cookie(app, path, has_session):

    with app.test_request_context(path):

        opened = PageSessions().open_session(app, request)
    assert (opened is not None) == has_session


NEW_PASSWORD = "et helt nyt kodeord"


def _rows(output: str) -> dict[str, list[str]]:
    """The table's rows by email (cells are at least two spaces apart)."""
    return {cells[0]: cells for cells in
            (re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[1:])
            if not cells[0].startswith("(")}


def _state(session) -> list[tuple]:
    """Everything the commands could change, of every user, straight from the database."""
    session.expire_all()
    return session.execute(
        select(User.email, User.active, User.password_hash, User.failed_logins,
               User.locked_until).order_by(User.email)
    ).all()


def test_list_users_hides_inactive_ones(runner, session, people):
    people["odense"].active = False
    people["aarhus"].locked_until = utcnow() + timedelta(minutes=10)
    people["aarhus"].last_login_at = utcnow() - timedelta(days=1)
    people["reporter"].locked_until = utcnow() - timedelta(minutes=1)  # has run out
    session.commit()

    live = runner.invoke(args=["list-users"])
    assert live.exit_code == 0, live.output
    assert re.split(r"\s{2,}", live.output.splitlines()[0]) == [
        "email", "name", "roles", "kommunekode", "CVR", "active", "locked until", "last login"]
    rows = _rows(live.output)
    assert set(rows) == {"sagsbehandler@sundhedsdata.dk", "sor@aarhus.dk",
                         "indberetter@aarhus.dk"}
    assert rows["sor@aarhus.dk"] == [
        "sor@aarhus.dk", "Anne Aarhus", "municipality", AARHUS, AARHUS_CVR, "yes",
        f"{people['aarhus'].locked_until:%Y-%m-%d %H:%M}",
        f"{people['aarhus'].last_login_at:%Y-%m-%d %H:%M}"]
    assert rows["indberetter@aarhus.dk"][3:] == ["-", AARHUS_CVR, "yes", "-", "-"]
    assert "1 inactive not shown; --all lists them" in live.output

    everything = runner.invoke(args=["list-users", "--all"])
    rows = _rows(everything.output)
    assert rows["sor@odense.dk"][:6] == [
        "sor@odense.dk", "Ole Odense", "municipality", ODENSE, ODENSE_CVR, "no"]
    assert "not shown" not in everything.output and "scrypt" not in everything.output


def test_deactivation_ends_an_existing_session(client, runner, session, people):
    login(client, people["sds"].email)
    assert client.get("/staff/").status_code == 200
    result = runner.invoke(args=["deactivate-user", " SagsBehandler@Sundhedsdata.DK "])
    assert result.exit_code == 0, result.output
    assert "User sagsbehandler@sundhedsdata.dk deactivated" in result.output
    # The next page request finds the account inactive and sends them to log in.
    response = client.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert login(client, people["sds"].email).status_code == 401
    again = runner.invoke(args=["deactivate-user", people["sds"].email])
    assert again.exit_code == 0 and "inactive already; nothing changed" in again.output


def test_an_activated_person_can_log_in_again(app, runner, session, people):
    people["sds"].active = False
    session.commit()
    result = runner.invoke(args=["activate-user", people["sds"].email])
    assert result.exit_code == 0, result.output
    browser = app.test_client()
    assert login(browser, people["sds"].email).status_code == 303
    assert browser.get("/staff/").status_code == 200


def test_activation_clears_the_lock_out(client, runner, session, people):
    user = people["aarhus"]
    for _ in range(MAX_FAILURES):
        login(client, user.email, "forkert adgangskode")
    assert login(client, user.email, PASSWORD).status_code == 401  # locked
    result = runner.invoke(args=["activate-user", user.email])
    assert result.exit_code == 0, result.output
    assert "is active, with no lock-out or failed logins" in result.output
    session.refresh(user)
    assert user.active and user.failed_logins == 0 and user.locked_until is None
    assert login(client, user.email, PASSWORD).status_code == 303
    unchanged = runner.invoke(args=["activate-user", user.email])
    assert unchanged.exit_code == 0 and "nothing changed" in unchanged.output


def test_set_password_from_stdin_then_only_the_new_one_works(client, runner, session, people):
    user = people["aarhus"]
    user.failed_logins, user.locked_until = 3, utcnow() + timedelta(minutes=10)
    session.commit()
    result = runner.invoke(args=["set-password", "SOR@aarhus.dk", "--password-stdin"],
                           input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == "New password set for sor@aarhus.dk; their open sessions are ended.\n"
    session.refresh(user)
    assert user.failed_logins == 0 and user.locked_until is None  # lock-out lifted too
    assert user.password_hash.startswith("scrypt:") and NEW_PASSWORD not in user.password_hash
    assert login(client, user.email, PASSWORD).status_code == 401
    assert login(client, user.email, NEW_PASSWORD).status_code == 303


def test_set_password_prompts_twice_with_hidden_input(client, runner, session, people):
    session.commit()  # the command ends its transaction before it prompts
    result = runner.invoke(args=["set-password", people["reporter"].email],
                           input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "New password: " in result.output and "Repeat for confirmation: " in result.output
    assert NEW_PASSWORD not in result.output  # hidden
    assert login(client, people["reporter"].email, NEW_PASSWORD).status_code == 303


def test_set_password_on_an_inactive_account_says_it_stays_inactive(runner, session, people):
    people["odense"].active = False
    session.commit()
    result = runner.invoke(args=["set-password", people["odense"].email, "--password-stdin"],
                           input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0 and "activate-user lets them log in" in result.output
    session.refresh(people["odense"])
    assert not people["odense"].active


@pytest.mark.parametrize(
    "args, password, message",
    [
        (["deactivate-user", "ingen@example.dk"], None, "there is no user with email ingen@"),
        (["activate-user", " INGEN@example.dk"], None, "there is no user with email ingen@"),
        (["set-password", "ingen@example.dk", "--password-stdin"], NEW_PASSWORD,
         "there is no user with email ingen@"),
        (["set-password", "sor@aarhus.dk", "--password-stdin"], "kort",
         "a password needs at least 10 characters"),
        (["set-password", "sor@aarhus.dk", "--password-stdin"], " " + NEW_PASSWORD,
         "a password may not begin or end with spaces"),
    ],
)
def test_bad_input_exits_1_and_changes_nothing(runner, session, people, args, password,
                                                message):
    people["aarhus"].failed_logins, people["aarhus"].locked_until = 2, utcnow()
    session.commit()
    before = _state(session)
    result = runner.invoke(args=args, input=None if password is None else password + "\n")
    assert result.exit_code == 1
    assert f"Error: {message}" in result.output
    assert _state(session) == before


def test_a_password_is_never_an_argument(runner, session, people):
    result = runner.invoke(args=["set-password", "sor@aarhus.dk", "--password", NEW_PASSWORD])
    assert result.exit_code == 2 and "No such option" in result.output


def test_mistyped_confirmation_changes_nothing(runner, session, people):
    session.commit()
    before = _state(session)
    result = runner.invoke(args=["set-password", "sor@aarhus.dk"],
                           input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}x\n")
    assert result.exit_code == 1  # asked again, and input ran out: aborted
    assert "do not match" in result.output
    assert _state(session) == before


def _copy_of_session(app, client):
    """Another browser holding a copy of *client*'s session cookie (a stolen one, say)."""
    copy = app.test_client()
    cookie = client.get_cookie("session")
    copy.set_cookie("session", cookie.value)
    return copy


def test_reactivation_does_not_revive_old_sessions(app, client, runner, session, people):
    login(client, people["sds"].email)
    stolen = _copy_of_session(app, client)
    assert stolen.get("/staff/").status_code == 200
    assert runner.invoke(args=["deactivate-user", people["sds"].email]).exit_code == 0
    assert runner.invoke(args=["activate-user", people["sds"].email]).exit_code == 0
    for browser in (client, stolen):
        response = browser.get("/staff/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert login(client, people["sds"].email).status_code == 303  # a new login works
    assert client.get("/staff/").status_code == 200


def test_a_new_password_ends_every_open_session(app, client, runner, session, people):
    user = people["aarhus"]
    login(client, user.email)
    stolen = _copy_of_session(app, client)
    assert stolen.get("/municipality/").status_code == 200
    result = runner.invoke(args=["set-password", user.email, "--password-stdin"],
                           input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert stolen.get("/municipality/").status_code == 302
    assert client.get("/municipality/").status_code == 302
    assert login(client, user.email, NEW_PASSWORD).status_code == 303
    assert client.get("/municipality/").status_code == 200


def test_a_session_cookie_of_the_old_format_or_a_forged_version_is_refused(session, people):

    user = people["sds"]
    assert load_user(session, user.get_id()) is user
    assert user.get_id() == f"{user.id}.0"
    for forged in (str(user.id), f"{user.id}.1", f"{user.id}.", f"{user.id}.x", "x.0", ""):
        assert load_user(session, forged) is None, forged

"""Logging in and out: roles' landing pages, lock-out, safe redirects, cookie settings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sorregistry import create_app
from sorregistry.accounts import MAX_FAILURES, User
from sorregistry.models import utcnow
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

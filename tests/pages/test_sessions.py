"""Login sessions the server ends: at logout, when idle, at their absolute lifetime; and
the login's failure counter that no parallel guess slips past."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from sorregistry import create_app
from sorregistry.accounts import users
from sorregistry.accounts.models import LoginSession, User
from sorregistry.accounts.users import MAX_FAILURES
from sorregistry.audit import AuditEvent
from sorregistry.extensions import db
from sorregistry.models import utcnow
from tests.pages.helpers import PASSWORD, add_user, login, post

SDS = "sagsbehandler@sundhedsdata.dk"


def _cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def test_logout_ends_the_session_on_the_server_a_copied_cookie_included(client, people):
    login(client, SDS)
    copied = _cookie(client)
    assert client.get("/staff/").status_code == 200
    post(client, "/logout", page="/staff/")
    client.set_cookie("session", copied)  # the cookie as it was before the logout
    answer = client.get("/staff/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def _age(session, **shift: timedelta) -> None:
    """Move the login sessions' times back (the clock, not the wall)."""
    session.expire_all()
    for row in session.execute(select(LoginSession)).scalars():
        for column, delta in shift.items():
            setattr(row, column, getattr(row, column) - delta)
    session.flush()


def _ended(session) -> list[str | None]:
    session.expire_all()
    return [row.end_reason for row in session.execute(select(LoginSession)).scalars()]


def test_a_session_unused_for_the_idle_lifetime_ends(client, session, people):
    login(client, SDS)
    _age(session, last_seen_at=timedelta(minutes=29), created_at=timedelta(minutes=29))
    assert client.get("/staff/").status_code == 200  # 29 minutes: still alive
    _age(session, last_seen_at=timedelta(minutes=31))
    assert client.get("/staff/").status_code == 302
    assert _ended(session) == ["idle"]
    reasons = session.execute(select(AuditEvent.details).where(
        AuditEvent.action == "session_ended")).scalars().all()
    assert reasons == [{"reason": "idle"}]


def test_use_keeps_a_session_alive_until_its_absolute_lifetime(client, session, people):
    login(client, SDS)
    _age(session, created_at=timedelta(hours=11, minutes=50), last_seen_at=timedelta(minutes=5))
    assert client.get("/staff/").status_code == 200
    session.expire_all()
    row = session.execute(select(LoginSession)).scalar_one()
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)  # the use was recorded
    _age(session, created_at=timedelta(minutes=11))  # 12 h 01 min after the login
    assert client.get("/staff/").status_code == 302
    assert _ended(session) == ["expired"]


def test_lifetimes_are_settings(app, client, session, people):
    app.config["SESSION_IDLE_MINUTES"] = 5
    login(client, SDS)
    _age(session, last_seen_at=timedelta(minutes=6))
    assert client.get("/staff/").status_code == 302


def test_a_new_password_ends_every_open_session(client, session, people):
    login(client, SDS)
    users.reset_password(session, SDS, "et helt nyt kodeord")
    assert client.get("/staff/").status_code == 302
    assert _ended(session) == ["password"]


def test_every_attempt_costs_one_password_hash(session, people, monkeypatch):
    """Unknown, locked, inactive, wrong and right alike: the time tells nothing."""
    calls: list[str] = []
    original = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash",
                        lambda stored, given: calls.append(given) or original(stored, given))
    locked = session.get(User, people["odense"].id)
    locked.locked_until = utcnow() + timedelta(minutes=10)
    people["reporter"].active = False
    session.flush()
    for email, password in [("nobody@example.dk", "x"), ("sor@odense.dk", PASSWORD),
                            ("indberetter@aarhus.dk", PASSWORD), (SDS, "wrong"),
                            (SDS, PASSWORD)]:
        before = len(calls)
        users.check_credentials(session, email, password)
        assert len(calls) == before + 1, email


def _post_login(base: str, email: str, password: str) -> int:
    data = urllib.parse.urlencode({"email": email, "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/login", data=data),
                                    timeout=120) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("guesses", [16])
def test_parallel_wrong_passwords_are_all_counted_then_the_account_is_locked(
        fresh_database, guesses):
    """16 wrong passwords at once over real HTTP (SQLite: one writer at a time), then
    the right one: none answered 503, every guess in the audit log, the account locked."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "WTF_CSRF_ENABLED": False})
    with app.app_context():
        user_id = add_user(db.session, SDS, "Sara SDS", ["sds"]).id
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    start = threading.Barrier(guesses)
    statuses: list[int] = []

    def guess(n: int) -> None:
        start.wait()
        statuses.append(_post_login(base, SDS, f"wrong guess {n}"))

    workers = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=180)
        right = _post_login(base, SDS, PASSWORD)
    finally:
        server.shutdown()
    assert statuses == [401] * guesses
    assert right == 401  # locked: even the right password is refused
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.locked_until is not None and user.locked_until > utcnow()
        failed = db.session.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "login_failed")).scalar_one()
        assert failed == guesses + 1
        assert guesses >= MAX_FAILURES
        db.session.remove()
        db.engine.dispose()

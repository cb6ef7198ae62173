"""Rate limits: per API client, per address without a valid token, per account and address
on the login, per sender on the mail intake - counted in the database the workers share.

The apps here commit for real (a database of their own): the counters are written on
the limiter's own connection, outside any test transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from flask import Flask
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import func, select
from werkzeug.serving import make_server

from sorregistry import create_app, ratelimit_storage
from sorregistry.accounts.clients import create_client
from sorregistry.config import ConfigurationError, from_environment
from sorregistry.extensions import db
from sorregistry.ratelimit import enabled, limiter, sender_allowed
from sorregistry.ratelimit_storage import DatabaseStorage, RateCounter
from tests.pages.helpers import add_user, csrf_token

LOOKUP = "/api/v1/shak/hospitals?q=a"
AppFactory = Callable[..., Flask]


@pytest.fixture
def limited_app(fresh_database: str) -> Iterator[AppFactory]:
    """Apps on the test's own database with limits on (and the settings given)."""
    made: list[Flask] = []

    def make(**settings: Any) -> Flask:
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                          "RATELIMIT_ENABLED": True, **settings})
        made.append(app)
        return app

    yield make
    for app in made:
        storage = limiter(app).storage
        if isinstance(storage, DatabaseStorage):
            storage.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _token(app: Flask, name: str = "form") -> dict[str, str]:
    with app.app_context():
        _, token = create_client(db.session, name, cvr="29190909", roles=["reporter"])
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def _counted(app: Flask) -> int:
    with app.app_context():
        total = db.session.scalar(select(func.coalesce(func.sum(RateCounter.hits), 0)))
        db.session.rollback()
        return int(total or 0)


# --- the API ------------------------------------------------------------------------------


def test_a_client_over_its_limit_gets_429_with_retry_after_in_the_envelope(limited_app):
    app = limited_app(RATELIMIT_API="5 per hour")
    greedy, polite = _token(app, "greedy"), _token(app, "polite")
    client = app.test_client()
    assert [client.get(LOOKUP, headers=greedy).status_code for _ in range(5)] == [200] * 5
    refused = client.get(LOOKUP, headers=greedy)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    body = refused.get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert "5 per 1 hour" in body["message"] and "client" in body["message"]
    # The limit is the client's, over every endpoint; another client has its own.
    assert client.get("/api/v1/organisations?limit=1", headers=greedy).status_code == 429
    assert client.get(LOOKUP, headers=polite).status_code == 200


def test_a_refused_client_is_refused_until_its_retry_after_then_served(limited_app):
    # A 5 s window: the first three requests (milliseconds apart) fall in one window but
    # when they straddle its start, one time in hundreds on a loaded machine - with a 1 s
    # window that was one time in tens.
    app = limited_app(RATELIMIT_API="2 per 5 seconds")
    headers = _token(app)
    client = app.test_client()
    assert [client.get(LOOKUP, headers=headers).status_code for _ in range(2)] == [200, 200]
    first = client.get(LOOKUP, headers=headers)
    again = client.get(LOOKUP, headers=headers)  # refused at once, from the worker's memory
    assert first.status_code == again.status_code == 429
    wait = int(first.headers["Retry-After"])
    assert 1 <= int(again.headers["Retry-After"]) <= wait <= 5
    time.sleep(wait + 0.05)
    assert client.get(LOOKUP, headers=headers).status_code == 200


def test_invalid_tokens_count_for_the_address(limited_app):
    app = limited_app(RATELIMIT_ANONYMOUS="3 per hour")
    client = app.test_client()
    statuses = [client.get(LOOKUP, headers={"Authorization": f"Bearer made-up-{n}"}).status_code
                for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]  # a new token each time gains nothing
    assert client.get(LOOKUP).status_code == 429  # nor does sending none
    assert client.get("/api/openapi.json").status_code == 429  # every declared API counts
    # A valid token has the client's budget, not the address's.
    assert client.get(LOOKUP, headers=_token(app)).status_code == 200


def test_a_request_under_an_api_that_matches_no_route_counts_too(limited_app):
    app = limited_app(RATELIMIT_ANONYMOUS="2 per hour")
    client = app.test_client()
    statuses = [client.get(f"/api/v1/no-such-thing-{n}").status_code for n in range(3)]
    assert statuses == [404, 404, 429]
    assert client.get("/api/v1/elsewhere").get_json()["code"] == 429


def test_health_and_pages_are_not_limited(limited_app):
    app = limited_app(RATELIMIT_ANONYMOUS="1 per hour")
    client = app.test_client()
    assert {client.get("/api/v1/health").status_code for _ in range(10)} == {200}
    assert {client.get("/").status_code for _ in range(10)} == {200}
    assert _counted(app) == 0


def test_flask_limiters_own_hooks_run_only_for_what_it_counts(limited_app):
    # Its before, after and teardown hooks are each wrapped behind the request filter (a
    # Flask-Limiter that renamed them would leave them bare: this fails then).
    app = limited_app()
    hooks = [*app.before_request_funcs[None], *app.after_request_funcs[None],
             *app.teardown_request_funcs[None]]
    names = [getattr(getattr(h, "func", h), "__qualname__", "") for h in hooks]
    assert not [n for n in names if n.startswith("Limiter.")], names
    wrapped = [n for n in names if "_check_only_what_it_counts" in n]
    assert len(wrapped) == 3, names
    # The login it counts still gets its limit (test_login_attempts_are_limited_*), and an
    # API answer carries no Flask-Limiter header.
    response = app.test_client().get(LOOKUP, headers=_token(app))
    assert response.status_code == 200
    assert not [h for h in response.headers.keys() if h.lower().startswith("x-ratelimit")]


def test_limits_are_off_in_tests_unless_turned_on(app, client):
    assert enabled(app.config) is False
    assert {client.get("/api/v1/organisations?limit=1").status_code
            for _ in range(150)} == {401}  # more than the anonymous default of 120
    assert enabled({"TESTING": False, "RATELIMIT_ENABLED": None}) is True
    assert enabled({"TESTING": True, "RATELIMIT_ENABLED": True}) is True
    assert enabled({"TESTING": False, "RATELIMIT_ENABLED": False}) is False


def test_settings_come_from_the_environment_and_bad_limits_name_their_variable():
    config = from_environment({"SOR_RATELIMIT_API": "600/minute;20/second",
                               "SOR_RATELIMIT_ENABLED": "0",
                               "SOR_RATELIMIT_STORAGE_URL": "redis://cache:6379"})
    assert config["RATELIMIT_API"] == "600/minute;20/second"
    assert config["RATELIMIT_ENABLED"] is False
    assert config["RATELIMIT_STORAGE_URL"] == "redis://cache:6379"
    with pytest.raises(ConfigurationError, match="SOR_RATELIMIT_LOGIN_ACCOUNT"):
        from_environment({"SOR_RATELIMIT_LOGIN_ACCOUNT": "ten a minute"})


def test_the_openapi_document_gives_every_limited_operation_its_429(limited_app):
    app = limited_app(RATELIMIT_API="700 per minute")
    document = app.test_client().get("/api/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            limited = "429" in operation["responses"]
            assert limited == (path != "/api/v1/health"), (path, method)
            if limited:
                assert operation["responses"]["429"] == {
                    "$ref": "#/components/responses/RATE_LIMITED"}
    answer = document["components"]["responses"]["RATE_LIMITED"]
    assert "Retry-After" in answer["headers"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert document["x-rate-limits"] == {
        "enabled": True, "algorithm": "sliding window counter",
        "per_client": "700 per minute", "per_address_without_valid_token": "120 per minute",
        "exempt": ["/api/v1/health"]}
    assert "700 per minute per API client" in document["info"]["description"]


# --- the login ----------------------------------------------------------------------------


def _attempt(client, email: str, password: str = "forkert") -> Any:
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_token(page)})


def test_login_attempts_are_limited_per_account_in_the_pages_language(limited_app):
    app = limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per hour",
                      RATELIMIT_LOGIN_ADDRESS="100 per hour")
    with app.app_context():
        add_user(db.session, "sor@aarhus.dk", "Anne Aarhus", ["sds"], cvr="29190909")
        db.session.commit()
    client = app.test_client()
    # One account however it is typed (the login normalises the email alike).
    tries = [_attempt(client, email).status_code
             for email in ("sor@aarhus.dk", "SOR@aarhus.dk", " sor@AARHUS.dk ")]
    assert tries == [401, 401, 401]
    refused = _attempt(client, "Sor@Aarhus.dk")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert refused.mimetype == "text/html"
    assert "For mange forsøg" in refused.get_data(as_text=True)
    client.set_cookie("lang", "en")
    assert "Too many attempts" in _attempt(client, "sor@aarhus.dk").get_data(as_text=True)
    # Another account from the same address may still try; the page itself is not limited.
    assert _attempt(client, "someone@else.dk").status_code == 401
    assert client.get("/login").status_code == 200


def test_login_attempts_are_limited_per_address(limited_app):
    app = limited_app(RATELIMIT_LOGIN_ACCOUNT="100 per hour",
                      RATELIMIT_LOGIN_ADDRESS="3 per hour")
    client = app.test_client()
    statuses = [_attempt(client, f"person{n}@example.dk").status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


# --- workers sharing the database ---------------------------------------------------------


def _get(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return int(error.code)


def test_two_workers_together_stay_within_the_limit_and_its_overshoot(limited_app):
    """Two app instances on one database (two workers), each a threaded HTTP server:
    together they allow the limit, plus at most workers x batch (5 here: 100 // 20)."""
    limit, workers, batch, requests = 100, 2, 5, 320
    apps = [limited_app(RATELIMIT_API=f"{limit} per hour", RATELIMIT_SYNC_HITS=50,
                        RATELIMIT_SYNC_SECONDS=60) for _ in range(workers)]
    headers = _token(apps[0])
    servers = [make_server("127.0.0.1", 0, app, threaded=True) for app in apps]
    threads = [threading.Thread(target=server.serve_forever, daemon=True)
               for server in servers]
    for thread in threads:
        thread.start()
    statuses: list[tuple[int, int]] = []
    start = threading.Barrier(8)

    def hammer(n: int) -> None:
        server = servers[n % workers]
        url = f"http://127.0.0.1:{server.server_port}{LOOKUP}"
        start.wait()
        for _ in range(requests // 8):
            statuses.append((n % workers, _get(url, headers)))

    clients = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    try:
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=120)
    finally:
        for server in servers:
            server.shutdown()
    allowed = [worker for worker, status in statuses if status == 200]
    assert len(statuses) == requests
    assert {status for _, status in statuses} == {200, 429}
    assert limit - workers * batch <= len(allowed) <= limit + workers * batch, len(allowed)
    assert set(allowed) == {0, 1}  # both workers served the client
    assert _counted(apps[0]) >= limit  # what the database knows reached the limit


def test_storages_of_two_workers_share_the_count(fresh_database):
    workers = [DatabaseStorage("sordb://", url=fresh_database, sync_hits=50)
               for _ in range(2)]
    limit, batch = 40, 2  # 40 // 20
    allowed = sum(workers[n % 2].acquire_sliding_window_entry("LIMITER/k/40/1/hour", limit,
                                                              3600)
                  for n in range(120))
    assert limit <= allowed <= limit + 2 * batch
    # Refusals cost no write: the database holds what was allowed (less what is unwritten).
    with workers[0].engine.connect() as connection:
        written = connection.scalar(select(RateCounter.hits))
    assert allowed - 2 * batch <= written <= allowed
    assert workers[0].reset() == 1
    for storage in workers:
        storage.close()


def _statements_by_thread(storage: DatabaseStorage) -> list[str]:
    """The names of the threads that write the storage's counters, as they write (each
    write is one call of its _add, on PostgreSQL through a driver connection, which
    SQLAlchemy's events do not see)."""
    threads: list[str] = []
    add = storage._add  # noqa: SLF001 - the one place the storage writes

    def noted(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return add(*args)

    storage._add = noted  # type: ignore[method-assign]  # noqa: SLF001
    return threads


def test_a_large_limit_is_written_by_the_writer_thread_never_by_the_request(fresh_database):
    # A limit of at least 20 x sync_hits (the API's 1,200 a minute): the request counts in
    # memory and the worker's writer thread writes - no request waits for a round trip.
    storage = DatabaseStorage("sordb://", url=fresh_database, sync_hits=10)
    writers = _statements_by_thread(storage)
    key, limit = "LIMITER/k/10000/1/hour", 10_000
    for _ in range(95):
        assert storage.acquire_sliding_window_entry(key, limit, 3600)
        storage.flush()  # the writer keeps up (a request never lags it a batch behind)
    assert storage.flush()
    assert writers and set(writers) == {"sor-ratelimit-writer"}, writers
    with storage.engine.connect() as connection:
        written = connection.scalar(select(RateCounter.hits))
    assert 95 - 5 <= written <= 95  # at most half a batch (5) not yet asked for
    storage.close()
    assert storage._writer is None  # noqa: SLF001 - stopped with the storage


def test_a_writer_a_batch_behind_makes_the_request_write(fresh_database, monkeypatch):
    # The overshoot bound holds whatever the writer does: a request that finds a batch
    # unwritten (the writer stuck behind a locked row, say) writes it itself.
    storage = DatabaseStorage("sordb://", url=fresh_database, sync_hits=10)
    writers = _statements_by_thread(storage)
    monkeypatch.setattr(storage, "_ask_writer", lambda key, expiry: None)  # it never comes
    key, limit = "LIMITER/k/10000/1/hour", 10_000
    for n in range(1, 11):
        storage.acquire_sliding_window_entry(key, limit, 3600)
        assert writers == ([threading.current_thread().name] if n == 10 else [])
    with storage.engine.connect() as connection:
        assert connection.scalar(select(RateCounter.hits)) == 10
    storage.close()


def test_storages_of_two_workers_share_a_large_limit_written_in_the_background(
        fresh_database):
    workers = [DatabaseStorage("sordb://", url=fresh_database, sync_hits=10)
               for _ in range(2)]
    limit, batch = 1_000, 10
    allowed = sum(workers[n % 2].acquire_sliding_window_entry("LIMITER/k/1000/1/hour", limit,
                                                              3600)
                  for n in range(1_300))
    assert limit <= allowed <= limit + 2 * batch, allowed
    for storage in workers:
        assert storage.flush()
        storage.close()


def test_the_storage_answers_the_fixed_window_strategy_too(fresh_database):
    storage = DatabaseStorage("sordb://", url=fresh_database)
    strategy = FixedWindowRateLimiter(storage)
    item = parse("3 per hour")
    assert [strategy.hit(item, "k") for _ in range(5)] == [True, True, True, False, False]
    assert strategy.test(item, "k") is False
    stats = strategy.get_window_stats(item, "k")
    assert stats.remaining == 0 and time.time() < stats.reset_time <= time.time() + 3600
    assert strategy.test(item, "other") is True
    storage.reset()
    storage.close()


def test_a_database_out_of_reach_fails_open_to_per_worker_counts(caplog, monkeypatch):
    # The migrations' logging set-up (alembic's fileConfig) turns off the loggers made before.
    monkeypatch.setattr(ratelimit_storage.log, "disabled", False)
    storage = DatabaseStorage("sordb://", url="postgresql+psycopg://sor@127.0.0.1:9/none")
    with caplog.at_level(logging.WARNING, logger="sorregistry.ratelimit_storage"):
        started = time.monotonic()
        results = [storage.acquire_sliding_window_entry("LIMITER/k/5/1/hour", 5, 3600)
                   for _ in range(8)]
    assert results == [True] * 5 + [False] * 3  # still limited, by this worker's counts
    assert time.monotonic() - started < 5  # one failed connect, then it waits a while
    assert "cannot be written" in caplog.text
    assert storage.check() is False
    storage.close()


def _hold_the_counters(url: str) -> Callable[[], None]:
    """Another writer holding the counters (an import's write lock on SQLite, a row lock
    on PostgreSQL) until the returned function is called."""
    if url.startswith("sqlite"):
        holder: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        holder.execute("SELECT * FROM rate_limits FOR UPDATE")

    def release() -> None:
        holder.rollback() if not isinstance(holder, sqlite3.Connection) else holder.execute(
            "ROLLBACK")
        holder.close()

    return release


def test_counters_held_by_another_writer_hold_no_request_up(fresh_database, caplog,
                                                           monkeypatch):
    monkeypatch.setattr(ratelimit_storage.log, "disabled", False)
    storage = DatabaseStorage("sordb://", url=fresh_database, sync_seconds=0)
    key = "LIMITER/k/5/1/hour"
    assert storage.acquire_sliding_window_entry(key, 5, 3600)  # written: the row exists
    release = _hold_the_counters(fresh_database)
    try:
        started = time.monotonic()
        assert storage.acquire_sliding_window_entry(key, 5, 3600)
        assert time.monotonic() - started < 2  # the storage's short timeout, then on
    finally:
        release()
    assert "cannot be written" in caplog.text
    storage.close()


def test_a_write_that_failed_leaves_no_connection_behind_and_the_next_one_counts(
        fresh_database, monkeypatch):
    # On PostgreSQL a write goes through a pooled driver connection: when its statement
    # fails (here: the row is locked past the storage's timeout) that connection is
    # dropped, and once the pause is over the hits counted meanwhile are written.
    monkeypatch.setattr(ratelimit_storage, "PAUSE_SECONDS", 0.0)
    storage = DatabaseStorage("sordb://", url=fresh_database, sync_seconds=0)
    key = "LIMITER/k/50/1/hour"
    assert storage.acquire_sliding_window_entry(key, 50, 3600)  # the row exists
    release = _hold_the_counters(fresh_database)
    try:
        assert storage.acquire_sliding_window_entry(key, 50, 3600)  # not written: held
    finally:
        release()
    assert storage.engine.pool.checkedout() == 0  # not left checked out by the failure
    assert storage.acquire_sliding_window_entry(key, 50, 3600)  # writes all three
    with storage.engine.connect() as connection:
        assert connection.scalar(select(RateCounter.hits)) == 3
    storage.close()


# --- the mail intake ----------------------------------------------------------------------


def test_sender_allowed_counts_per_sender_in_the_callers_transaction(app, session):
    app.config.update(RATELIMIT_ENABLED=True, RATELIMIT_MAIL_SENDER="3 per hour")
    now = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    sender = "Sor@Aarhus.dk"
    assert [sender_allowed(session, sender, now) for _ in range(3)] == [True] * 3
    assert sender_allowed(session, " sor@aarhus.DK ", now) is False  # one sender
    assert sender_allowed(session, "sor@odense.dk", now) is True
    assert sender_allowed(session, sender, datetime(2026, 12, 6, 10, 0, tzinfo=UTC)) is True
    # The count is the caller's work: rolled back with it, as if the mail was never read.
    savepoint = session.begin_nested()
    assert sender_allowed(session, "sor@vejle.dk", now) is True
    savepoint.rollback()
    assert session.scalar(select(func.count()).select_from(RateCounter)
                          .where(RateCounter.bucket.contains("vejle"))) == 0


def test_sender_allowed_counts_nothing_when_limits_are_off(app, session):
    now = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    assert all(sender_allowed(session, "a@b.dk", now) for _ in range(100))
    assert session.scalar(select(func.count()).select_from(RateCounter)) == 0


def test_the_429_body_is_json_for_every_declared_api(limited_app):
    app = limited_app(RATELIMIT_ANONYMOUS="1 per hour")
    client = app.test_client()
    client.get("/api/openapi.json")
    refused = client.get("/api/openapi.json")
    assert refused.status_code == 429
    assert json.loads(refused.get_data())["code"] == 429

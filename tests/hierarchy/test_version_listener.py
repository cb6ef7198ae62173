"""The register version kept in memory by each worker's LISTEN (hierarchy.search.version_listener).

On a really committed PostgreSQL database: the listener learns a version another worker
committed from its notification, a hand-made change within a second without one, never
answers a version older than a commit of its own process, and after losing its
connection answers nothing (the request reads the database) until it has read again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from hierarchy import service
from hierarchy.changes import FEED_CHANNEL
from hierarchy.search import version_listener
from hierarchy.search.version_listener import VersionListener, listener_for
from hierarchy.search.versions import REGISTER
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app, reads
from sorregistry.accounts.clients import create_client, forget_identities
from sorregistry.extensions import db
from tests.conftest import fixture_path
from tests.support.postgres import RefusesListen, unreachable_url


@pytest.fixture
def app(fresh_database: str) -> Iterator[Flask]:
    if not fresh_database.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite each request reads the version")
    made = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with made.app_context():
        import_sor_file(db.session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
        db.session.commit()
    try:
        yield made
    finally:
        version_listener.close_all()
        reads.close_connections()
        forget_identities()
        with made.app_context():
            db.session.remove()
            db.engine.dispose()


def _raw(app: Flask) -> psycopg.Connection:
    """A connection of its own: another worker, or a person at psql."""
    with app.app_context():
        url = db.engine.url.set(drivername="postgresql")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


def _database_version(app: Flask) -> tuple[int, str]:
    with _raw(app) as connection:
        row = connection.execute(
            "SELECT version, stamp FROM register_version WHERE name = 'register'").fetchone()
    return int(row[0]), str(row[1])


def _until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def _listening(app: Flask) -> VersionListener:
    with app.app_context():
        listener = listener_for(db.engine)
    listener.current()  # starts the thread
    assert _until(lambda: listener.current() is not None)
    return listener


def test_another_workers_commit_is_learnt_from_its_notification(app):
    listener = _listening(app)
    assert listener.current() == _database_version(app)
    with _raw(app) as other:
        other.execute("UPDATE register_version SET version = version + 1, stamp = 'other' "
                      "WHERE name = 'register'")
        other.execute(f"NOTIFY {FEED_CHANNEL}, '0'")
    assert _until(lambda: listener.current() == _database_version(app), 0.9)


def test_a_change_without_a_notification_is_seen_within_a_second_or_so(app):
    listener = _listening(app)
    with _raw(app) as person:
        person.execute("UPDATE register_version SET version = version + 5, stamp = 'psql' "
                       "WHERE name = 'register'")
    wanted = _database_version(app)
    assert _until(lambda: listener.current() == wanted,
                  version_listener.REFRESH_SECONDS + 2)


def test_a_commit_of_this_process_is_never_answered_older(app):
    listener = _listening(app)
    before = listener.current()
    answers: list[tuple[int, str] | None] = []
    with app.app_context():
        code = db.session.execute(text(
            "SELECT sor_code FROM organisations WHERE level = 'OE' LIMIT 1")).scalar_one()
        service.change_organisation(db.session, code, {"phone": "70101010"},
                                    source="staff", actor="test")
        db.session.commit()
        answers.append(listener.current())  # at once: held back, or the new one
    after = _database_version(app)
    assert after[0] > before[0]
    assert answers[0] in (None, after)
    assert _until(lambda: listener.current() == after, 0.9)


def test_a_lost_connection_answers_nothing_until_it_has_read_again(app):
    listener = _listening(app)
    with _raw(app) as admin:
        pids = [row[0] for row in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
            "OR query LIKE 'SELECT version, stamp FROM register_version%'")]
        assert pids
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # While it is down, another worker commits (its notification is lost with it).
        admin.execute("UPDATE register_version SET version = version + 1, stamp = 'lost' "
                      "WHERE name = 'register'")
        admin.execute(f"NOTIFY {FEED_CHANNEL}, '0'")
    wanted = _database_version(app)
    assert _until(lambda: listener.current() == wanted)


def test_lookups_answer_a_change_another_worker_made_from_the_cache_no_longer(app):
    with app.app_context():
        _client, token = create_client(db.session, "reader", cvr="29190925",
                                       roles=["reporter"])
        db.session.commit()
        code = db.session.execute(text(
            "SELECT sor_code FROM organisations WHERE level = 'SI' LIMIT 1")).scalar_one()
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    url = f"/api/v1/resolve?code={code}"
    first = client.get(url, headers=headers)
    assert first.status_code == 200
    with app.app_context():
        listener = listener_for(db.engine)
    assert _until(lambda: listener.current() is not None)
    assert client.get(url, headers=headers).headers.get("X-Cache") == "hit"
    # Another worker closes the institution: its commit notifies this one.
    other = create_app({"TESTING": True,
                        "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
    with other.app_context():
        service.close_organisation(db.session, code, date.today(), source="staff",
                                   actor="sds")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    assert _until(lambda: client.get(url, headers=headers).status_code == 404, 2.0)
    with app.test_request_context(url):
        assert REGISTER.current(db.session()) == _database_version(app)
        db.session.remove()


def test_a_database_out_of_reach_is_logged_once_without_a_traceback(caplog):
    """A listener that cannot connect retries quietly: one warning for the outage, no
    traceback each time (it retries every few seconds for as long as the worker serves;
    and Python 3.11 parses code to draw a traceback's carets, which in a thread beside
    another parse fails one of them: CPython gh-106905)."""
    engine = create_engine(unreachable_url())
    listener = VersionListener(engine)
    with caplog.at_level("INFO", logger=version_listener.LOG.name):
        try:
            assert listener.current() is None  # starts the thread
            assert _until(lambda: False, 1.0) is False  # ~4 attempts: 0.1, 0.2, 0.4 s apart
            assert listener.current() is None  # the request reads the database itself
        finally:
            listener.close()
            engine.dispose()
    records = [r for r in caplog.records if r.name == version_listener.LOG.name]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)], records
    assert "cannot connect" in records[0].getMessage()
    assert "Connection refused" in records[0].getMessage()


class _SlowToConnect(VersionListener):
    """A listener whose connection attempts hang until released, then fail (a host that
    does not answer, up to the connect_timeout)."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.release = threading.Event()
        self.attempts = 0

    def _connect(self):
        self.attempts += 1
        self.release.wait(10)
        raise psycopg.OperationalError("timeout expired")


def test_a_listener_closed_while_connecting_ends_when_the_attempt_does():
    """close() gives up waiting on a thread busy connecting; the thread must not carry on
    once the attempt fails (it did: the stop was cleared behind it, and it retried for a
    minute, logging)."""
    engine = create_engine(unreachable_url())
    listener = _SlowToConnect(engine)
    try:
        listener.current()
        assert _until(lambda: listener.attempts == 1)
        thread = listener._thread
        assert thread is not None
        listener.close(wait=0.1)
        assert thread.is_alive()  # still in its attempt
        listener.release.set()
        thread.join(2)
        assert not thread.is_alive()
        assert listener.attempts == 1  # no attempt after the stop
        # The next use starts a new thread, which runs (the stop cleared for it).
        listener.release.clear()
        assert listener.current() is None
        assert _until(lambda: listener.attempts == 2)
    finally:
        listener.release.set()
        listener.close()
        engine.dispose()


class _ListenRefused(VersionListener):
    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.attempts = 0

    def _connect(self):
        self.attempts += 1
        return RefusesListen()


def test_a_server_refusing_the_listen_is_not_asked_again_at_once(caplog):
    """Connected, then refused: the listener waits before it tries again (it asked again
    at once, in a loop, logging each time), and logs the trouble once."""
    engine = create_engine(unreachable_url())
    listener = _ListenRefused(engine)
    with caplog.at_level("INFO", logger=version_listener.LOG.name):
        try:
            assert listener.current() is None
            time.sleep(1.0)  # backoff 0.1, 0.2, 0.4 s: four attempts or so, not thousands
            assert listener.current() is None
        finally:
            listener.close()
            engine.dispose()
    assert 2 <= listener.attempts <= 6, listener.attempts
    records = [r for r in caplog.records if r.name == version_listener.LOG.name]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)], records
    assert "lost its connection" in records[0].getMessage()


def test_a_forked_worker_makes_listeners_of_its_own():
    """gunicorn forks its workers: a listener of the parent (its thread did not come
    along) is never the child's, which makes its own; the parent keeps its."""
    engine = create_engine(unreachable_url())
    try:
        parent = listener_for(engine)
        assert listener_for(engine) is parent
        pid = os.fork()
        if pid == 0:  # the child: one thread, the parent's listeners gone
            child = listener_for(engine)
            os._exit(0 if child is not parent and listener_for(engine) is child else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert listener_for(engine) is parent
    finally:
        version_listener.close_all()
        engine.dispose()

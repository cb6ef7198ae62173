"""Reads from a real streaming standby, read-your-writes, lag, and a failover.

One primary and one standby for the module (``tests.support.replication``: initdb as
``postgres``, ``pg_basebackup -R``, the standby on a port of its own), synchronous
(``synchronous_standby_names = '*'``, as Patroni's synchronous mode), so an approval
acknowledged by the primary is on the standby when the primary dies. The service runs
behind a real HTTP server on 127.0.0.1 and is reached over HTTP. The failover test
stops the primary for good, so it comes last.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import make_server

from applications import service
from hierarchy.lookup_routes import ANSWERS
from hierarchy.search import version_listener
from hierarchy.search.versions import REGISTER
from notifications.worker import Worker
from sorregistry import create_app, reads
from sorregistry.accounts.clients import forget_identities
from sorregistry.config import ConfigurationError, from_environment
from sorregistry.extensions import db
from sorregistry.replicas import (
    APPLICATION_NAME,
    LSN_HEADER,
    format_lsn,
    parse_lsn,
    repeated_hosts,
    standby_urls,
)
from tests.applications.helpers import EXISTING_SI, bearer, build_register, new_nursing_home
from tests.conftest import BACKENDS
from tests.support import postgres
from tests.support.replication import Standby, stop_now, wait_for

DATABASE = "sor_replicas"
APPLICATIONS = 40



@dataclass
class Pair:
    primary: postgres.Server
    standby: Standby
    sds: dict[str, str]
    reporter: dict[str, str]
    applications: list[int]
    next: int = 0
    acknowledged: list[str] = field(default_factory=list)

    def take(self) -> int:
        """A submitted application no test approved yet."""
        self.next += 1
        return self.applications[self.next - 1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if "postgresql" not in BACKENDS:
        pytest.skip("streaming replication is PostgreSQL's")
    primary = postgres.Server.start(tmp_path_factory.mktemp("primary"), wal_level="replica",
                                    max_wal_senders="5")
    standby: Standby | None = None
    try:
        url = primary.create_database(DATABASE)
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            upgrade()
            build_register(db.session)
            sds = bearer(db.session, "sds", cvr="29190909", name="SDS")
            reporter = bearer(db.session, "reporter", name="form")
            actor = service.Actor(name="test", roles=("municipality",),
                                  municipality_code="0751", cvr="55133018")
            ids = []
            for n in range(APPLICATIONS):
                application = service.create_application(
                    db.session, actor, new_nursing_home(
                        institution_name=f"Plejehjem nr. {n}",
                        address={"street": f"Vej {n}", "postal_code": "8000",
                                 "city": "Aarhus C"}))
                service.submit_application(db.session, actor, application.id)
                ids.append(application.id)
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        standby = Standby.of(primary, tmp_path_factory.mktemp("standby"))
        with primary.connect("postgres") as connection:
            connection.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            connection.execute("SELECT pg_reload_conf()")
            wait_for(lambda: connection.execute(
                "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'").fetchone())
        yield Pair(primary, standby, sds, reporter, ids)
    finally:
        reads.close_connections()
        version_listener.close_all()  # before the servers go
        if standby is not None:
            standby.stop()
        primary.stop()


def _app(pair: Pair, **config: Any) -> Flask:
    hosts = f"127.0.0.1:{pair.primary.port},127.0.0.1:{pair.standby.port}"
    return create_app({
        "TESTING": True, "PROPAGATE_EXCEPTIONS": False,
        # The primary found among both hosts: whichever takes writes (after a failover,
        # the promoted standby) - libpq's multi-host list, as production's.
        "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://postgres@/{DATABASE}?host={hosts}"
                                   "&target_session_attrs=read-write",
        "DATABASE_READ_URL": f"postgresql+psycopg://postgres@/{DATABASE}"
                             f"?host=127.0.0.1:{pair.standby.port}",
        **config,
    })


@contextmanager
def serving(app: Flask, threaded: bool = False) -> Iterator[str]:
    """*app* behind a real HTTP server; one thread unless *threaded*, so the lookups' own
    connection (one per thread) stays open to be seen in pg_stat_activity."""
    ANSWERS.clear()
    forget_identities()
    server = make_server("127.0.0.1", 0, app, threaded=threaded)

    def serve() -> None:
        try:
            server.serve_forever()
        finally:
            reads.close_connections()  # the thread's own, before the thread goes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        reads.close_connections()
        version_listener.close_all()
        with app.app_context():
            db.engine.dispose()
        app.extensions["sor.replicas"].dispose()


def call(url: str, headers: dict[str, str], method: str = "GET") -> tuple[int, Any, Any]:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), error.headers


def resolve(base: str, code: str, headers: dict[str, str]) -> int:
    return call(f"{base}/api/v1/resolve?code={code}", {**headers, "Cache-Control": "no-cache"})[0]


def approve(base: str, pair: Pair) -> tuple[int, Any, Any]:
    return call(f"{base}/api/v1/applications/{pair.take()}/approve", pair.sds, "POST")


def health(base: str) -> dict[str, Any]:
    return {d["name"]: d for d in call(f"{base}/api/v1/health", {})[1]["databases"]}


@contextmanager
def replay_paused(pair: Pair) -> Iterator[None]:
    with pair.standby.connect(DATABASE) as connection:
        connection.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            connection.execute("SELECT pg_wal_replay_resume()")


def test_lsn_and_host_lists():
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    for hostile in ("", "16", "16/", "x/1", "1/2/3", "123456789/1", " 1/ 2"):
        assert parse_lsn(hostile) is None, hostile
    urls = standby_urls("postgresql+psycopg://u:p@/sor?host=a:5433,b&sslmode=require")
    assert [(u.host, u.port, u.database, dict(u.query)) for u in urls] == [
        ("a", 5433, "sor", {"sslmode": "require"}), ("b", None, "sor", {"sslmode": "require"})]
    assert repeated_hosts("postgresql+psycopg://u@/sor?host=a:1,b:2").endswith(
        "?host=a%3A1&host=b%3A2")
    assert repeated_hosts("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf5"])
def test_a_maximum_lag_that_is_no_duration_is_refused(value):
    with pytest.raises(ConfigurationError, match="SOR_REPLICA_MAX_LAG"):
        from_environment({"SOR_REPLICA_MAX_LAG": value})
    assert from_environment({"SOR_REPLICA_MAX_LAG": "0.5"})["REPLICA_MAX_LAG"] == 0.5


@pytest.mark.parametrize(("primary", "standbys"), [
    ("sqlite://", "postgresql+psycopg://u@/sor?host=127.0.0.1:1"),
    ("postgresql+psycopg://u@127.0.0.1:1/sor", "sqlite:///standby.db"),
])
def test_standbys_are_postgresql_standbys_of_postgresql(primary, standbys):
    with pytest.raises(ConfigurationError, match="SOR_DATABASE_READ_URL"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": primary,
                    "DATABASE_READ_URL": standbys})


def test_health_names_the_primary_without_standbys(tmp_path):
    for url, role in ((f"sqlite:///{tmp_path / 'register.db'}", "primary"),
                      (f"postgresql+psycopg://postgres@127.0.0.1:{postgres._free_port()}/sor",
                       "unreachable")):
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
        try:
            databases = app.test_client().get("/api/v1/health").get_json()["databases"]
        finally:
            version_listener.close_all()  # it would retry the unreachable server a minute
        assert [(d["name"], d["role"]) for d in databases] == [("primary", role)]


def test_lookups_are_answered_by_the_standby(pair):
    with serving(_app(pair)) as base:
        assert resolve(base, EXISTING_SI, pair.reporter) == 200  # the token checked once
        assert resolve(base, EXISTING_SI, pair.reporter) == 200
        with pair.standby.connect(DATABASE) as connection:
            queries = [row[0] for row in connection.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION_NAME,))]
        # The lookup's statement (the version's and the lag check's name no sor_code).
        assert any("sor_code" in query for query in queries), queries
        databases = health(base)
        assert databases["primary"] == {"name": "primary", "role": "primary",
                                        "lag_seconds": 0.0, "used": True}
        assert databases["replica-1"]["role"] == "standby"
        assert databases["replica-1"]["used"] is True


@pytest.mark.parametrize(("path", "marker"), [
    ("/fhir/Organization?name=Plejecenter", "%sor_code%"),
    ("/api/v1/changes?limit=5", "%feed_entries%"),
])
def test_fhir_searches_and_the_feed_read_the_standby(pair, path, marker):
    with serving(_app(pair)) as base:
        # The token's first check in a worker reads it in the session's transaction, so
        # that request reads the primary (sorregistry.reads: a session in a transaction).
        resolve(base, EXISTING_SI, pair.reporter)
        with pair.standby.connect(DATABASE) as connection:
            since = connection.execute("SELECT clock_timestamp()").fetchone()[0]
        request = urllib.request.Request(base + path, headers=pair.reporter)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            response.read()
        with pair.standby.connect(DATABASE) as connection:
            ran = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND query_start > %s AND query ILIKE %s",
                (APPLICATION_NAME, since, marker)).fetchone()[0]
        assert ran >= 1


def _export(base: str, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(f"{base}/api/v1/export/register.csv", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return response.read()


def test_exports_read_the_standby(pair):
    with serving(_app(pair, REPLICA_MAX_LAG=3600.0)) as base, replay_paused(pair):
        resolve(base, EXISTING_SI, pair.reporter)
        status, body, _ = approve(base, pair)
        assert status == 200
        code = body["sor_code"]
        pair.acknowledged.append(code)
        # Another client's export: the standby's snapshot, replay stopped before the
        # approval; the approver's own export is the primary's.
        assert code.encode() not in _export(base, pair.reporter)
        assert code.encode() in _export(base, pair.sds)
    with serving(_app(pair)) as base:
        wait_for(lambda: code.encode() in _export(base, pair.reporter))


def test_an_approval_is_read_back_in_its_clients_flow(pair):
    # Replay stopped and no lag limit that would skip the standby: only the client's own
    # write position sends its lookup to the primary.
    with serving(_app(pair, REPLICA_MAX_LAG=3600.0)) as base, replay_paused(pair):
        resolve(base, EXISTING_SI, pair.sds)  # the tokens checked once
        resolve(base, EXISTING_SI, pair.reporter)
        status, body, headers = approve(base, pair)
        assert status == 200, body
        code = body["sor_code"]
        pair.acknowledged.append(code)
        position = headers[LSN_HEADER]
        assert parse_lsn(position) is not None
        assert resolve(base, code, pair.sds) == 200  # the approver's next lookup sees it
        # A worker that has not served the new version, asked by another client: the
        # standby answers, as of before the approval - unless the client sends the
        # position it must see.
        REGISTER.seen = 0
        assert resolve(base, code, pair.reporter) == 404
        assert resolve(base, code, {**pair.reporter, LSN_HEADER: position}) == 200
        for hostile in ("nonsense", "1/2/3", ""):  # a clear 400, not ignored
            assert resolve(base, code, {**pair.reporter, LSN_HEADER: hostile}) == 400
    # Replay resumed: the standby has it.
    with serving(_app(pair)) as base:
        wait_for(lambda: resolve(base, code, pair.reporter) == 200)


def test_the_worker_never_goes_back_to_an_older_register(pair):
    with serving(_app(pair, REPLICA_MAX_LAG=3600.0)) as base, replay_paused(pair):
        resolve(base, EXISTING_SI, pair.reporter)
        status, body, _ = approve(base, pair)
        assert status == 200
        pair.acknowledged.append(body["sor_code"])
        assert resolve(base, body["sor_code"], pair.sds) == 200  # this worker saw it
        # Another client, no position sent: the standby is behind what the worker has
        # served, so the primary answers (and nothing is filed under the older version).
        assert resolve(base, body["sor_code"], pair.reporter) == 200
        assert resolve(base, EXISTING_SI, pair.reporter) == 200


def test_a_standby_lagging_past_the_maximum_is_skipped(pair):
    with serving(_app(pair, REPLICA_MAX_LAG=1.0)) as base:
        resolve(base, EXISTING_SI, pair.reporter)
        wait_for(lambda: health(base)["replica-1"]["used"])
        with replay_paused(pair):
            status, body, _ = approve(base, pair)
            assert status == 200
            code = body["sor_code"]
            pair.acknowledged.append(code)
            lagging = wait_for(lambda: (lambda r: r if not r["used"] else None)(
                health(base)["replica-1"]), timeout=10)
            assert lagging["role"] == "standby" and lagging["lag_seconds"] > 1.0
            REGISTER.seen = 0  # a worker that never saw the new version: only the lag rule
            assert resolve(base, code, pair.reporter) == 200  # the primary answered
        # Replay resumed: the standby catches up and is used again.
        wait_for(lambda: health(base)["replica-1"]["used"], timeout=10)
        since = _lookups_on_standby(pair)
        REGISTER.seen = 0
        assert resolve(base, code, pair.reporter) == 200
        assert _lookups_on_standby(pair) > since


def _lookups_on_standby(pair: Pair) -> Any:
    """When the service's read connection on the standby last started a lookup's statement
    (pg_stat_activity; the epoch if none)."""
    with pair.standby.connect(DATABASE) as connection:
        return connection.execute(
            "SELECT coalesce(max(query_start), 'epoch') FROM pg_stat_activity "
            "WHERE application_name = %s AND query LIKE %s",
            (APPLICATION_NAME, "%sor_code%")).fetchone()[0]


def test_a_standby_out_of_reach_leaves_the_reads_to_the_primary(pair):
    with serving(_app(pair)) as base:
        resolve(base, EXISTING_SI, pair.reporter)
        assert resolve(base, EXISTING_SI, pair.reporter) == 200  # its connection: the standby
        pair.standby.stop()
        try:
            # The thread's connection to the standby is dead: the request reads the
            # primary instead (no 503), and the standby is skipped until it answers.
            assert resolve(base, EXISTING_SI, pair.reporter) == 200
            assert health(base)["replica-1"] == {"name": "replica-1", "role": "unreachable",
                                                 "lag_seconds": None, "used": False}
            assert resolve(base, EXISTING_SI, pair.reporter) == 200
            assert EXISTING_SI.encode() in _export(base, pair.reporter)
        finally:
            pair.standby.start()
        wait_for(lambda: health(base)["replica-1"]["used"], timeout=15)
        since = _lookups_on_standby(pair)
        assert resolve(base, EXISTING_SI, pair.reporter) == 200
        assert _lookups_on_standby(pair) > since


class Mailbox:
    """aiosmtpd's handler: keeps each message's recipients and when it came."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], float]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append((list(envelope.rcpt_tos), time.monotonic()))
        return "250 Message accepted for delivery"


def test_approvals_work_again_after_a_failover_without_a_restart(pair):
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=postgres._free_port())
    smtp.start()
    app = _app(pair, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SUPPRESS_SEND=False)
    results: list[tuple[int, int, Any, float]] = []
    stop = threading.Event()
    # The outbox's worker loop (send-notifications --loop) runs through the failover.
    with app.app_context():
        outbox = Worker.from_app(app, db.session, name="failover")
    failed_rounds: list[str] = []

    def sending() -> None:
        with app.app_context():
            outbox.serve(0.1, on_error=lambda error: failed_rounds.append(str(error)))

    def approving(base: str) -> None:
        while not stop.is_set() and pair.next < len(pair.applications):
            application = pair.take()
            status, body, _ = call(f"{base}/api/v1/applications/{application}/approve",
                                   pair.sds, "POST")
            results.append((application, status, body, time.monotonic()))
            if status != 200:
                time.sleep(0.4)  # bounded: at most ~25 attempts in the 10 s allowed

    mails = threading.Thread(target=sending, daemon=True)
    mails.start()
    with serving(app, threaded=True) as base:
        worker = threading.Thread(target=approving, args=(base,), daemon=True)
        worker.start()
        try:
            wait_for(lambda: sum(1 for r in results if r[1] == 200) >= 3)
            stop_now(pair.primary)  # a crash: connections cut, writes in flight lost
            pair.standby.promote()
            promoted = time.monotonic()
            wait_for(lambda: any(r[1] == 200 and r[3] > promoted for r in results),
                     timeout=10)
            # The outbox's loop resumed by itself: a mail enqueued by an approval after the
            # promotion is sent.
            wait_for(lambda: any(at > promoted for _, at in mailbox.received), timeout=10)
        finally:
            stop.set()
            worker.join(timeout=30)
            outbox.stop.set()
            mails.join(timeout=30)
            smtp.stop()
        assert failed_rounds, "the outbox's loop never met the failover"
        assert {status for _, status, _, _ in results} <= {200, 503}, results
        for _, status, body, _ in results:
            if status == 503:  # a write cut off, or no primary yet: its outcome unknown
                assert "is not known" in body["message"], body
        # The promoted standby answers lookups and health as the primary (once the worker's
        # check of it, kept for a second, is renewed).
        wait_for(lambda: health(base)["replica-1"]["role"] == "primary", timeout=5)
        databases = health(base)
        assert databases["primary"]["role"] == "primary"
        assert databases["replica-1"]["role"] == "primary"
    pair.acknowledged += [body["sor_code"] for _, status, body, _ in results if status == 200]
    tried = [application for application, _, _, _ in results]
    with pair.standby.connect(DATABASE) as connection:
        present = {row[0] for row in connection.execute(
            "SELECT sor_code FROM organisations WHERE sor_code = ANY(%s)",
            (pair.acknowledged,))}
        assert present == set(pair.acknowledged)  # every acknowledged approval is there
        # Never a half change: an application is approved exactly when its SOR code's
        # organisation exists.
        half = connection.execute(
            "SELECT a.id, a.status, a.sor_code, o.sor_code FROM applications a "
            "LEFT JOIN organisations o ON o.sor_code = a.sor_code WHERE a.id = ANY(%s) "
            "AND (a.status = 'approved') <> (o.sor_code IS NOT NULL)", (tried,)).fetchall()
        assert half == []

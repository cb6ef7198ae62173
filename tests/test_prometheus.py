"""A real Prometheus scrapes the app served by a real gunicorn (``gunicorn.conf.py``, two
workers in prometheus-client's multiprocess mode): the figures are there and move with
the requests. The same run checks the JSON request log and the request id's way into the
audit log and the register's commits."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from sqlalchemy import select

from applications import service
from applications.mail_models import IncomingMail
from hierarchy.models import RegisterCommit
from sorregistry import create_app
from sorregistry.audit import AuditEvent
from sorregistry.extensions import db
from tests.applications.helpers import AARHUS, AARHUS_CVR, bearer, build_register, new_nursing_home
from tests.conftest import BACKENDS
from tests.support import postgres
from tests.support.gunicorn import Gunicorn
from tests.support.prometheus import Prometheus

TOKEN = "scrape-token-0123456789abcdef"
LOOKUP = "/api/v1/lookups/ownership/kommunal?limit=5"
pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS,
                                reason="served from PostgreSQL (SOR_TEST_BACKENDS)")


def _call(url: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict[str, str],
                                                                           bytes]:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **headers, **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def served(postgres_server: postgres.Server,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A register with two submitted applications and a mail in the intake's ledger,
    served by gunicorn, scraped by Prometheus every second."""
    workdir = tmp_path_factory.mktemp("prometheus")
    url = postgres_server.create_database("sor_prometheus")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        build_register(db.session)
        world = {"sds": bearer(db.session, "sds", cvr="29190909", name="SDS"),
                 "reporter": bearer(db.session, "reporter", name="reporter")}
        actor = service.Actor(name="test", roles=("municipality",), municipality_code=AARHUS,
                              cvr=AARHUS_CVR)
        world["applications"] = []
        for n in range(2):
            application = service.create_application(db.session, actor, new_nursing_home(
                institution_name=f"Plejehjem nr. {n}",
                address={"street": f"Vej {n}", "postal_code": "8000", "city": "Aarhus C"}))
            service.submit_application(db.session, actor, application.id)
            world["applications"].append(application.id)
        db.session.add(IncomingMail(
            message_id="<ledger-1@aarhus.dk>", mailbox="INBOX", uidvalidity=1, uid=1,
            size=10, raw=b"x", outcome="triage", triage_reason="unreadable",
            triage_status="open"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    environment = {
        "PATH": "/usr/bin:/bin", "SOR_DATABASE_URL": url, "SOR_SECRET_KEY": "not-secret-test",
        "SOR_METRICS_TOKEN": TOKEN, "SOR_LOG_FORMAT": "json", "SOR_RATELIMIT_ENABLED": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "multiproc"),
    }
    (workdir / "multiproc").mkdir()
    server = Gunicorn.start(environment, workdir / "gunicorn.log")
    prometheus: Prometheus | None = None
    try:
        prometheus = Prometheus.start(workdir / "prometheus", f"127.0.0.1:{server.port}", TOKEN)
        yield {"app": app, "server": server, "prometheus": prometheus, **world}
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()
        postgres_server.drop_database(url)


def test_prometheus_scrapes_the_figures_and_they_move(served: dict[str, Any]) -> None:
    server: Gunicorn = served["server"]
    prometheus: Prometheus = served["prometheus"]
    prometheus.wait_for('up{job="sor"}', lambda up: up == 1)
    lookups = 'sum(sor_http_requests_total{endpoint="lookups.OwnershipList",status="200"})'
    before = prometheus.value(lookups) or 0.0

    for _ in range(6):
        status, headers, _ = _call(server.url + LOOKUP, served["reporter"])
        assert status == 200 and headers["X-Cache"] in ("hit", "miss")
    assert _call(server.url + "/api/v1/organisations?name=plej", served["reporter"])[0] == 200
    assert prometheus.wait_for(lookups, lambda value: value >= before + 6) == before + 6
    assert prometheus.value(
        'sum(sor_http_request_duration_seconds_count{endpoint="lookups.OwnershipList"})') >= 6
    assert prometheus.value('sum(sor_http_request_duration_seconds_bucket'
                            '{endpoint="lookups.OwnershipList",le="+Inf"})') >= 6
    assert prometheus.value('sum(sor_answer_cache_requests_total'
                            '{endpoint="lookups.OwnershipList"})') >= 6
    # Per process, summed over the two workers: the pools, the lookups' own connections.
    assert prometheus.value("sum(sor_db_pool_size)") >= 5
    assert prometheus.value("sum(sor_db_pool_checked_out)") is not None
    assert prometheus.value("sum(sor_db_pool_overflow)") is not None
    prometheus.wait_for("sum(sor_direct_read_connections)", lambda n: n >= 1)
    prometheus.wait_for("sum(sor_name_index_build_seconds_count)", lambda n: n >= 1)
    # The computed lookups' items: rendered from their rows, and kept.
    prometheus.wait_for('sum(sor_item_cache_rendered{result="rendered"})', lambda n: n >= 1)
    prometheus.wait_for("sum(sor_item_cache_items)", lambda n: n >= 1)
    # ... and pages' arrays (kept once a page is computed again with every item kept).
    for _ in range(4):
        computed = {**served["reporter"], "Cache-Control": "no-cache"}
        assert _call(server.url + LOOKUP, computed)[0] == 200
    prometheus.wait_for("sum(sor_item_cache_pages)", lambda n: n >= 0)
    # The database's figures: the ledger's mail, no webhook deliveries.
    assert prometheus.value('sor_mail_intake_mails{state="triage_open"}') == 1
    assert prometheus.value('sor_webhook_deliveries{status="queued"}') == 0
    # The submissions' receipts wait in the outbox (no sender runs here).
    queued = prometheus.value('sor_outbox_messages{status="queued"}')
    assert queued >= 1
    assert prometheus.value('sor_outbox_messages_oldest_queued_age_seconds') > 0

    # An approval: the outbox fills (its mails), and the figures follow.
    application_id = served["applications"][0]
    status, headers, body = _call(
        f"{server.url}/api/v1/applications/{application_id}/approve",
        served["sds"], method="POST")
    assert status == 200, body
    prometheus.wait_for('sor_outbox_messages{status="queued"}', lambda n: n > queued)
    # Date once, gunicorn's, though the app makes none (sorregistry.responses.conditional).
    etag = _call(server.url + LOOKUP, served["reporter"])[1]["ETag"]
    for extra in ({}, {"Cache-Control": "no-cache"}, {"If-None-Match": etag}):
        asked = urllib.request.Request(server.url + LOOKUP,
                                       headers={**served["reporter"], **extra})
        try:
            with urllib.request.urlopen(asked, timeout=60) as answer:
                status, dates = answer.status, answer.headers.get_all("Date")
        except urllib.error.HTTPError as error:  # the 304
            status, dates = error.code, error.headers.get_all("Date")
        assert status == (304 if extra.get("If-None-Match") else 200) and len(dates) == 1


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # every JSON-looking line parses
    return lines


def test_the_request_log_is_json_and_the_request_id_reaches_the_audit_and_the_register(
        served: dict[str, Any]) -> None:
    server: Gunicorn = served["server"]
    application_id = served["applications"][1]
    request_id = "ops-approval-0002"
    status, headers, _ = _call(f"{server.url}/api/v1/applications/{application_id}/approve",
                               {**served["sds"], "X-Request-Id": request_id}, method="POST")
    assert status == 200 and headers["X-Request-Id"] == request_id
    status, headers, _ = _call(server.url + "/api/v1/health", {})
    made = headers["X-Request-Id"]
    assert status == 200 and len(made) == 32  # made by the service when none was sent

    # The request line is written once the answer has been sent: the health check's may
    # come a moment after its answer was read here.
    lines = _log_lines(server.log)
    deadline = time.monotonic() + 10
    while not any(line.get("request_id") == made for line in lines):
        assert time.monotonic() < deadline, "no request line for the health check"
        time.sleep(0.05)
        lines = _log_lines(server.log)
    requests = [line for line in lines if line["logger"] == "sorregistry.request"]
    approval = [line for line in requests if line.get("request_id") == request_id]
    assert len(approval) == 1, requests[-5:]
    line = approval[0]
    assert line["method"] == "POST" and line["status"] == 200 and line["level"] == "INFO"
    assert line["endpoint"].startswith("applications.")
    assert line["path"] == f"/api/v1/applications/{application_id}/approve"
    assert line["client"].startswith("client:") and line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert "time" in line
    assert [x["status"] for x in requests if x.get("request_id") == made] == [200]
    # gunicorn's own lines are JSON too, and there is no access log beside the app's.
    assert any(x["logger"] == "gunicorn.error" for x in lines)
    assert not [raw for raw in server.log.read_text().splitlines()
                if raw.strip() and not raw.startswith("{")]

    app = served["app"]
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.request_id == request_id)).all()
        commits = db.session.scalars(select(RegisterCommit.changes).where(
            RegisterCommit.request_id == request_id)).all()
        db.session.remove()
        db.engine.dispose()
    assert actions == ["application_approved"]
    assert len(commits) == 1 and commits[0] >= 1  # the commit that recorded the new unit


def _sockets_by_process(port: int, pids: list[int]) -> dict[int, dict[str, set[str]]]:
    """For each process, its TCP sockets on 127.0.0.1:*port* that listen and those that
    are established connections, by inode (the kernel's table, /proc/net/tcp, joined with
    each process's open files)."""
    states = {"0A": "listening", "01": "established"}
    by_inode: dict[str, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] in states:
            by_inode[fields[9]] = states[fields[3]]
    counts: dict[int, dict[str, set[str]]] = {}
    for pid in pids:
        seen: dict[str, set[str]] = {"listening": set(), "established": set()}
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:[") and target[8:-1] in by_inode:
                seen[by_inode[target[8:-1]]].add(target[8:-1])
        counts[pid] = seen
    return counts


def test_each_worker_listens_and_kept_alive_connections_spread_over_them(
        served: dict[str, Any]) -> None:
    # gunicorn.conf.py's reuse_port: one listening socket per worker, the kernel spreads
    # new connections over them; on one shared socket a burst of kept-alive connections
    # could pile up on the worker that woke first while the other idled.
    server: Gunicorn = served["server"]
    workers = [int(path.parent.name) for path in Path("/proc").glob("[0-9]*/stat")
               if path.read_text().rsplit(")", 1)[1].split()[1] == str(server.process.pid)]
    assert len(workers) == 2
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                   for _ in range(32)]
    try:
        for connection in connections:
            connection.connect()
        for connection in connections:  # each answered, and kept open
            connection.request("GET", "/api/v1/health")
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200 and not answer.will_close
        counts = _sockets_by_process(server.port, [server.process.pid, *workers])
    finally:
        for connection in connections:
            connection.close()
    master = counts.pop(server.process.pid)
    assert not master["listening"] and not master["established"], master
    # A socket of its own each (an inherited shared one would be the same inode in both).
    listening = [seen["listening"] for seen in counts.values()]
    assert all(len(inodes) == 1 for inodes in listening) and len(set.union(*listening)) == 2
    # Ours, and Prometheus' scrape connection when it is open.
    established = [len(seen["established"]) for seen in counts.values()]
    assert sum(established) in (32, 33), counts
    # Spread by the kernel's hash of each connection: both well used (a worker with fewer
    # than 6 of 32 happens with a chance of about 1 in 5,000).
    assert min(established) >= 6, established

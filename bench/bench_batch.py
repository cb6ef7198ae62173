#!/usr/bin/env python3
"""The batch read against one request per code, now and as of a date or an instant.

    .venv/bin/python bench/bench_batch.py [--entities 200000] [--rounds 20] [--keep]
    .venv/bin/python bench/bench_batch.py --entities 20000 --rounds 10   # quick

Generates a SOR XML v2 export (``generate_sor_export.py``) and a changed one of the same
register (5 % of the entities changed, 1 % of the OE subtrees dropped: closed), starts a
throwaway PostgreSQL 15 server, imports the first, notes the instant T, imports the
second (so the register has a history: second versions, closings, and the generator's
replacement links), makes a ``reporter`` client and serves the app with
``gunicorn -w 2 -k gthread --threads 4`` (rate limits off: they would refuse the
one-per-code runs). Then, with one keep-alive client, ``--rounds`` times each, side by side
in one run (the rounds of all scenarios interleaved, so that the machine's drift falls on
all alike):

* ``POST /api/v1/organisations/batch`` with 500 codes (SI and OE, several levels deep,
  some closed) - now, ``on`` a date a year back, ``as_recorded`` T; and 500 codes that
  name successors (every replaced code of the register, the rest random);
* the same 500 codes one ``GET /api/v1/organisations/{code}`` at a time (``?on=``, and
  ``Cache-Control: no-cache`` so that every answer is computed).

It prints, per scenario, the median and p95 milliseconds for the 500 codes and the ratio of
the batch to the one-per-code run, and the SQL statements one batch runs (counted in an
app of the bench's own on the same database, the token already known). Every answer is
checked (status 200, 500 codes accounted for as items or ``not_found``). Exit 0, or 1 when
something fails. The server, gunicorn and the temporary directory are removed in every
case (``--keep`` keeps the directory).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_lookups import (
    BenchError,
    Gunicorn,
    code_version,
    percentile,
    psycopg_connect,
    required_command,
    run_command,
    temp_dir,
)
from common import load_generator, say, terminate_on_signal
from sqlalchemy import event

from sorregistry.app import create_app
from sorregistry.extensions import db
from tests.support.postgres import Server

BATCH = 500


class Client:
    """One keep-alive connection to the service."""

    def __init__(self, port: int, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                        "Cache-Control": "no-cache"}
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        if response.will_close:
            self.conn.close()
        return response.status, json.loads(raw) if raw else None


def batch_run(client: Client, codes: list[str], extra: dict[str, str]) -> float:
    """One batch of *codes*; its milliseconds, the answer checked."""
    t0 = time.perf_counter()
    status, body = client.call("POST", "/api/v1/organisations/batch",
                               {"sor_codes": codes, **extra})
    ms = (time.perf_counter() - t0) * 1000.0
    if status != 200:
        raise BenchError(f"batch {extra}: {status} {str(body)[:300]}")
    answered = [item["sor_code"] for item in body["items"]] + body["not_found"]
    if sorted(answered) != sorted(codes):
        raise BenchError(f"batch {extra}: the answer does not account for every code")
    return ms


def singles_run(client: Client, codes: list[str], extra: dict[str, str]) -> float:
    """*codes* one request each; the milliseconds for them all, each answer checked."""
    query = "".join(f"&{key}={value}" for key, value in extra.items()).replace("+", "%2B")
    query = "?" + query[1:] if query else ""
    t0 = time.perf_counter()
    for code in codes:
        status, body = client.call("GET", f"/api/v1/organisations/{code}{query}")
        if status not in (200, 404) or (status == 200 and body["sor_code"] != code):
            raise BenchError(f"GET {code}{query}: {status} {str(body)[:300]}")
    return (time.perf_counter() - t0) * 1000.0


def choose_codes(url: str, seed: int) -> tuple[list[str], list[str], int]:
    """500 SI/OE codes (some closed), 500 with every replaced code first; how many of
    those name a successor."""
    rng = random.Random(seed)
    with psycopg_connect(url, autocommit=True) as conn:
        units = [r[0] for r in conn.execute(
            "SELECT sor_code FROM organisations WHERE level IN ('SI', 'OE') ORDER BY sor_code")]
        replaced = [r[0] for r in conn.execute(
            "SELECT sor_code FROM organisations WHERE replaced_by IS NOT NULL "
            "ORDER BY sor_code")]
    plain = rng.sample(units, min(BATCH, len(units)))
    named = replaced[:BATCH]
    rest = [code for code in rng.sample(units, min(len(units), 2 * BATCH))
            if code not in set(named)]
    named += rest[:BATCH - len(named)]
    return plain, named, min(len(replaced), BATCH)


def count_statements(url: str, token: str,
                     plan: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, int]:
    """The SQL statements one batch runs, per scenario (after a first request, so that
    the worker knows the token: authentication is not counted)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "SOR_ENV": "production", "RATELIMIT_ENABLED": False})
    counted: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        counted.append(statement)

    out: dict[str, int] = {}
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            client = app.test_client()
            headers = {"Authorization": f"Bearer {token}"}
            client.post("/api/v1/organisations/batch", headers=headers,
                        json={"sor_codes": plan[next(iter(plan))][0][:1]})
            for name, (codes, extra) in plan.items():
                counted.clear()
                response = client.post("/api/v1/organisations/batch", headers=headers,
                                       json={"sor_codes": codes, **extra})
                if response.status_code != 200:
                    raise BenchError(f"in-process batch {name}: {response.status_code}")
                out[name] = len(counted)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
            db.session.remove()
            db.engine.dispose()
    return out


def bench(a: argparse.Namespace, workdir: Path) -> int:
    cli = required_command("sorregistry")
    required_command("gunicorn")
    log = workdir / "commands.log"
    generator = load_generator()
    first, second = workdir / "sor_1.xml", workdir / "sor_2.xml"
    t0 = time.perf_counter()
    counts = generator.generate(first, a.entities, seed=a.seed)
    generator.generate(second, a.entities, seed=a.seed, mutate=0.05, drop=0.01)
    say(f"== generated two exports of {sum(counts.values())} entities {counts} in "
        f"{time.perf_counter() - t0:.1f} s")

    server = None
    gunicorn: Gunicorn | None = None
    try:
        server = Server.start(workdir / "pg", shared_buffers="256MB")
        url = server.create_database("sorbench")
        env = dict(os.environ)
        env.pop("FLASK_APP", None)
        env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                   SOR_RATELIMIT_ENABLED="0")
        run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
        run_command([cli, "import-sor", "--quiet", str(first)], env, log, what="import-sor 1")
        time.sleep(1.0)
        instant = datetime.now(UTC)
        time.sleep(1.0)
        out = run_command([cli, "import-sor", "--quiet", str(second)], env, log,
                          what="import-sor 2 (changed)")
        for line in out.strip().splitlines()[-8:]:
            say(f"      | {line[:150]}")
        with psycopg_connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
            versions = conn.execute("SELECT count(*) FROM organisation_versions").fetchone()
        plain, named, replaced = choose_codes(url, a.seed)
        say(f"   {versions[0] if versions else '?'} versions; batches of {len(plain)} codes; "
            f"{replaced} replaced codes in the register (first in the successors batch)")
        out = run_command([cli, "create-client", "bench", "--cvr", "29190909",
                           "--role", "reporter"], env, log, what="create-client")
        token = out.strip().splitlines()[-1].strip()

        day = (date.today() - timedelta(days=365)).isoformat()
        recorded = instant.isoformat()
        plan: dict[str, tuple[list[str], dict[str, str]]] = {
            "now": (plain, {}),
            f"on={day}": (plain, {"on": day}),
            "as_recorded=T (before import 2)": (plain, {"as_recorded": recorded}),
            "naming successors, now": (named, {}),
        }
        statements = count_statements(url, token, plan)

        gunicorn = Gunicorn(env, workdir / "gunicorn.log", workers=2)
        gunicorn.start()
        say(f"== gunicorn {' '.join(gunicorn.options)} on 127.0.0.1:{gunicorn.port}, "
            f"serving {code_version()}")
        with open("/proc/loadavg", encoding="ascii") as fh:
            say(f"   load average before the runs: {' '.join(fh.read().split()[:3])}")
        client = Client(gunicorn.port, token)
        batch_ms: dict[str, list[float]] = {name: [] for name in plan}
        single_ms: dict[str, list[float]] = {name: [] for name in plan}
        for codes, extra in plan.values():  # warm-up, not counted
            batch_run(client, codes, extra)
            singles_run(client, codes[:50], extra)
        for _ in range(a.rounds):
            for name, (codes, extra) in plan.items():
                batch_ms[name].append(batch_run(client, codes, extra))
                single_ms[name].append(singles_run(client, codes, extra))
        with open("/proc/loadavg", encoding="ascii") as fh:
            say(f"   load average after the runs: {' '.join(fh.read().split()[:3])}")

        say(f"\n== {len(plain)} codes, ms for all of them, {a.rounds} rounds (median / p95); "
            "SQL statements of one batch (in-process, the token known)")
        say(f"{'scenario':<34}{'batch':>16}{'one per code':>18}{'batch/one':>11}{'SQL':>6}")
        for name in plan:
            b, s = batch_ms[name], single_ms[name]
            say(f"{name:<34}{percentile(b, 50):>8.0f} /{percentile(b, 95):>6.0f}"
                f"{percentile(s, 50):>10.0f} /{percentile(s, 95):>6.0f}"
                f"{percentile(b, 50) / percentile(s, 50):>11.2f}{statements[name]:>6}")
        return 0
    finally:
        if gunicorn is not None:
            gunicorn.stop()
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20, help="timed rounds per scenario")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (exports, logs, stopped cluster)")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    terminate_on_signal()
    try:
        with temp_dir(a.keep, "sorbench-batch-") as workdir:
            os.chmod(workdir, 0o755)
            return bench(a, workdir)
    except BenchError as exc:
        say(f"\n[FAILED] {exc}")
        return 1
    except KeyboardInterrupt:
        say("\n[bench] interrupted: cleaned up")
        return 1


if __name__ == "__main__":
    sys.exit(main())

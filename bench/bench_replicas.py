"""Lookups answered by a hot standby against the same lookups on the primary, side by side.

Generates a SOR XML v2 export of ``--entities`` (bench/generate_sor_export.py), imports it
into a private PostgreSQL primary, makes a streaming standby of it (``pg_basebackup -R``,
tests/support/replication.py) and starts two gunicorns on the same register: one with
``SOR_DATABASE_URL`` alone (everything on the primary), one with
``SOR_DATABASE_READ_URL`` naming the standby. Each lookup scenario of bench_lookups.py is
run cold (``Cache-Control: no-cache``: every answer computed) against both, alternating in
rounds so that the machine's load falls on both alike, and the medians, p95 and the ratio
standby / primary are printed. It also checks that the second gunicorn's lookups ran on the
standby (its pg_stat_activity) and prints the load average.

What it can say: the cost of the routing (the lag check, the choice per request, the
version read on the standby) and of the standby's own work; not how much load a standby
takes off a primary under the 10th of the month (one machine, both servers on it).

    .venv/bin/python bench/bench_replicas.py --entities 200000 --requests 300
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench_lookups import (
    SHAK_FILES,
    BenchError,
    Gunicorn,
    choose_inputs,
    latency_run,
    percentile,
    psycopg_connect,
    required_command,
    run_command,
    scenarios,
)
from common import load_generator, say, terminate_on_signal

from sorregistry.replicas import APPLICATION_NAME
from tests.support.postgres import Server
from tests.support.replication import Standby, wait_for


def _load() -> str:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return " ".join(fh.read().split()[:3])


def bench(a: argparse.Namespace, workdir: Path) -> None:
    cli = required_command("sorregistry")
    log = workdir / "commands.log"
    export = workdir / f"sor_{a.entities}.xml"
    counts = load_generator().generate(export, a.entities, seed=a.seed)
    say(f"== generated {sum(counts.values())} entities")
    primary = standby = None
    servers: list[Gunicorn] = []
    try:
        primary = Server.start(workdir / "primary", shared_buffers="256MB")
        url = primary.create_database("sorbench")
        env = dict(os.environ)
        env.pop("FLASK_APP", None)
        env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                   SOR_RATELIMIT_API="1000000 per minute",
                   SOR_RATELIMIT_ANONYMOUS="1000000 per minute")
        run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
        run_command([cli, "import-sor", "--quiet", str(export)], env, log, what="import-sor")
        shak = next(p for p in SHAK_FILES if p.exists())
        run_command([cli, "import-shak", str(shak)], env, log, what="import-shak")
        with psycopg_connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        inputs = choose_inputs(url, a.seed)
        token = run_command([cli, "create-client", "bench", "--cvr", inputs.municipality_cvr,
                             "--role", "reporter"], env, log,
                            what="create-client").strip().splitlines()[-1].strip()
        t0 = time.perf_counter()
        standby = Standby.of(primary, workdir / "standby")
        say(f"== standby made (pg_basebackup -R) and started in {time.perf_counter() - t0:.1f} s")
        read_url = f"postgresql+psycopg://postgres@127.0.0.1:{standby.port}/sorbench"
        with standby.connect("sorbench") as conn:  # the import is replayed
            wait_for(lambda: conn.execute("SELECT count(*) FROM api_clients").fetchone()[0],
                     timeout=120)
        on_primary = Gunicorn(env, workdir / "gunicorn-primary.log", workers=2,
                              threads=a.threads)
        on_standby = Gunicorn({**env, "SOR_DATABASE_READ_URL": read_url},
                              workdir / "gunicorn-standby.log", workers=2, threads=a.threads)
        servers = [on_primary, on_standby]
        for server in servers:
            server.start()
        say(f"== two gunicorns {' '.join(on_primary.options)}; load average {_load()}")
        plan = scenarios(inputs)
        say(f"{'cold lookup':<14}{'primary p50':>12}{'p95':>8}{'standby p50':>13}{'p95':>8}"
            f"{'ratio p50':>11}{'p95':>7}  errors")
        for name, scenario in plan.items():
            times: dict[str, list[float]] = {"primary": [], "standby": []}
            errors = 0
            for _ in range(a.rounds):
                for label, server in (("primary", on_primary), ("standby", on_standby)):
                    stats = latency_run(server.port, token, scenario,
                                        max(1, a.requests // a.rounds), cold=True)
                    times[label] += stats.latencies_ms
                    errors += stats.errors
            p = {label: (percentile(v, 50), percentile(v, 95)) for label, v in times.items()}
            say(f"{name:<14}{p['primary'][0]:>12.2f}{p['primary'][1]:>8.2f}"
                f"{p['standby'][0]:>13.2f}{p['standby'][1]:>8.2f}"
                f"{p['standby'][0] / p['primary'][0]:>11.2f}"
                f"{p['standby'][1] / p['primary'][1]:>7.2f}  {errors}")
        with standby.connect("sorbench") as conn:
            readers = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "application_name = %s AND query LIKE %s",
                                   (APPLICATION_NAME, "%sor_code%")).fetchone()[0]
        say(f"== the standby gunicorn's lookup connections on the standby: {readers}; "
            f"load average after: {_load()}")
        if not readers:
            raise BenchError("no lookup ran on the standby")
    finally:
        for server in servers:
            server.stop()
        if standby is not None:
            standby.stop()
        if primary is not None:
            primary.stop()


def main() -> None:
    terminate_on_signal()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=300, help="per scenario and server")
    parser.add_argument("--rounds", type=int, default=3, help="alternations per scenario")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        os.chmod(tmp, 0o755)
        bench(a, Path(tmp))


if __name__ == "__main__":
    main()

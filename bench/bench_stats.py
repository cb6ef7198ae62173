#!/usr/bin/env python3
"""Benchmark the staff's figures (the overview on /staff/) on a register of 200,000.

    .venv/bin/python bench/bench_stats.py [--entities 200000] [--applications 5000]
                                          [--repeat 30] [--backends sqlite,postgresql]

Generates a SOR export (bench/generate_sor_export.py), and for each back end migrates a
database and imports it (``sorregistry import-sor``, SQLite file / throwaway PostgreSQL);
then adds a year of staff activity (``--applications`` applications, decided after 1-30
days, 2,000 mails in the intake ledger, 5,000 mails in the outbox) and spreads the
organisations' first versions over 14 months (so the register grows month by month).
Each figure of ``applications.stats_figures`` is then computed ``--repeat`` times in
process (what one view of /staff/ and one API call do: the query and the dump; the
register's size is filed per register version, so its line is the cache's, and the
query's own cost - what the first view after a register change pays - is a line of its
own), and
printed with its median and p95 beside the register's count by level - the public start
page's query over the same table, measured in the same run - and their ratio. The whole
overview (all figures, as the page computes them) is timed too. ``uptime`` is printed
before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from common import find_command, load_generator, postgres_server, say
from sqlalchemy import bindparam, select, update

from applications.mail_models import IncomingMail
from applications.models import Application
from applications.stats_figures import FIGURES, figure_data
from hierarchy import service as register
from hierarchy import stats as register_stats
from hierarchy.models import OrganisationVersion
from notifications.models import OutboxMessage
from sorregistry import create_app
from sorregistry.extensions import db
from sorregistry.models import utcnow

MUNICIPALITIES = ("0751", "0461", "0101", "0147", "0561", "0851", "0621", "0157", "0265")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p95 (nearest rank) in ms of *repeat* runs, after one warm-up."""
    work()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, -(-95 * len(times) // 100) - 1)]


def add_activity(session, applications: int, seed: int = 20) -> None:
    rng = random.Random(seed)
    now = utcnow()
    rows = []
    for number in range(applications):
        submitted = now - timedelta(days=rng.uniform(0, 365))
        took = timedelta(days=rng.uniform(1, 30))
        status = "submitted"
        if submitted + took < now:
            status = rng.choices(["approved", "rejected", "withdrawn", "info_requested"],
                                 weights=[70, 15, 5, 10])[0]
        rows.append(Application(
            kind="new", status=status, version=1, source="web",
            municipality_code=rng.choice(MUNICIPALITIES), institution_name=f"Bench {number}",
            created_by="bench", submitted_at=submitted,
            decided_at=submitted + took if status in ("approved", "rejected", "withdrawn")
            else None))
    for number in range(2000):
        outcome = "application" if number % 4 else "triage"
        rows.append(IncomingMail(
            message_id=f"<{number}@bench>", mailbox="INBOX", uidvalidity=1, uid=number + 1,
            received_at=now - timedelta(hours=number), size=1, raw=b"x", outcome=outcome,
            triage_reason="unknown_sender" if outcome == "triage" else None,
            triage_status=rng.choice(["open", "resolved"]) if outcome == "triage" else None))
    for number in range(5000):
        rows.append(OutboxMessage(
            kind="bench", recipients=["a@example.org"], subject="s", body_text="t",
            body_html="h", message_id=f"<{number}@bench-out>",
            status="sent" if number > 20 else "queued", created_at=now - timedelta(hours=number)))
    session.add_all(rows)
    ids = session.scalars(select(OrganisationVersion.id).where(
        OrganisationVersion.version == 1).order_by(OrganisationVersion.sor_code)).all()
    versions = OrganisationVersion.__table__
    session.execute(
        update(versions).where(versions.c.id == bindparam("vid"))
        .values(recorded_at=bindparam("at")),
        [{"vid": vid, "at": now - timedelta(days=420 - 420 * rank // len(ids))}
         for rank, vid in enumerate(ids)])
    session.commit()


def measure(url: str, export: Path, args: argparse.Namespace, name: str) -> None:
    env = {**os.environ, "SOR_DATABASE_URL": url, "SOR_SECRET_KEY": "bench"}
    command = find_command("sorregistry")
    assert command, "no sorregistry command: make install"
    say(f"\n== {name}: {url}")
    say(f"   db upgrade {run([command, 'db', 'upgrade'], env):.1f} s, import-sor "
        f"{run([command, 'import-sor', '--quiet', str(export)], env):.1f} s")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context(), app.test_request_context():
        started = time.perf_counter()
        add_activity(db.session, args.applications)
        say(f"   activity added in {time.perf_counter() - started:.1f} s "
            f"({args.applications} applications, 2000 mails in, 5000 out)")
        session = db.session
        base = timed(lambda: register.count_by_level(session, active_on=date.today()),
                     args.repeat)
        say(f"   {'figure':34} {'p50 ms':>8} {'p95 ms':>8} {'p50 / count_by_level':>22}")
        say(f"   {'(count_by_level, the start page)':34} {base[0]:8.1f} {base[1]:8.1f} "
            f"{1.0:22.2f}")
        days = register_stats.month_ends(date.today())
        p50, p95 = timed(lambda: register_stats.size_by_ownership(session, days), args.repeat)
        say(f"   {'register-size, the query (uncached)':34} {p50:8.1f} {p95:8.1f} "
            f"{p50 / base[0]:22.2f}")
        for figure_name, figure in FIGURES.items():
            p50, p95 = timed(lambda f=figure: figure_data(f, session, utcnow()), args.repeat)
            say(f"   {figure_name:34} {p50:8.1f} {p95:8.1f} {p50 / base[0]:22.2f}")
            session.rollback()
        p50, p95 = timed(lambda: [figure_data(f, session, utcnow()) for f in FIGURES.values()],
                         args.repeat)
        say(f"   {'all figures (one /staff/ view)':34} {p50:8.1f} {p95:8.1f} "
            f"{p50 / base[0]:22.2f}")
    with app.app_context():
        db.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--applications", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    say(f"uptime before: {uptime()}")
    with tempfile.TemporaryDirectory(prefix="sorbench-stats-") as folder:
        work = Path(folder)
        export = work / f"sor_{args.entities}.xml"
        started = time.perf_counter()
        load_generator().generate(export, args.entities, seed=1)
        say(f"generated {export.name} in {time.perf_counter() - started:.1f} s")
        backends = args.backends.split(",")
        if "sqlite" in backends:
            measure(f"sqlite:///{work / 'bench.db'}", export, args, "sqlite")
        if "postgresql" in backends:
            with postgres_server(work / "pg") as server:
                measure(server.create_database("sorbench"), export, args, "postgresql")
    say(f"\nuptime after: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

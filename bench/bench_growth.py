#!/usr/bin/env python3
"""The growth curve: the register's work at 100k, 200k, 500k and 1M entities on PostgreSQL.

    .venv/bin/python bench/bench_growth.py [--sizes 100000,200000,500000,1000000]
                                           [--requests 300] [--feed-max 250000] [--keep]

For each size, on one throwaway PostgreSQL server (tests/support/postgres.py,
``shared_buffers=256MB``), a fresh database of its own (the one before is dropped):

* **imports** (bench_import's measure: wall time and the process's peak RSS from
  ``os.wait4``): ``sorregistry import-sor`` of a generated export (first import), of the
  same file again (unchanged re-import) and of its changed variant (``--mutate 0.05
  --drop 0.01``: changed re-import);
* **lookups** (bench_lookups' scenarios and client): the SHAK register imported, a
  ``reporter`` client, ``gunicorn -w 2 -k gthread --threads 4``, and for each of the four
  scenarios one sequential client asking ``--requests`` computed answers
  (``Cache-Control: no-cache``, after bench_lookups' warm-up): cold p50 / p95;
* **the gunicorn workers' RSS** after the lookups and the feed;
* **feed catch-up**: one client reading ``/api/v1/changes`` from the start, 1,000 a page,
  up to ``--feed-max`` entries: entries/s;
* **export**: SOR XML v2 of the whole register in a process of its own (bench_export's
  child): wall time and peak RSS.

Then a table per scenario with the growth from the smallest to the largest size, and
the targets (issue 17): every import <= 5 min and < 500 MB; import and export memory flat
(the largest size's peak within 10 % + 20 MB of 200k's); lookups' cold p95 at the largest
size <= 1.5x their p95 at 200k; SOR XML v2 of the largest <= 5 min. ``uptime`` is printed
before and after each size: the machine is shared, say its load beside the figures.

Exit status: 0 when every target holds, 2 when one is missed, 1 when something failed.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import bench_lookups as lookups
import orjson
from bench_export import run_child
from bench_import import Run, count_entities, run_measured
from common import (
    HERE,
    BenchError,
    Gunicorn,
    load_generator,
    postgres_server,
    psycopg_connect,
    required_command,
    run_command,
    say,
    terminate_on_signal,
    uptime,
    worker_rss,
)

IMPORTS = ("first import", "unchanged re-import", "changed re-import")
TARGET_IMPORT_SECONDS = 300.0
TARGET_RSS_MB = 500.0
TARGET_EXPORT_SECONDS = 300.0
TARGET_P95_GROWTH = 1.5
FLAT = (1.10, 20.0)  # "flat": at most 10 % + 20 MB above the reference size's peak
REFERENCE = 200_000


@dataclass
class Size:
    """The figures of one size."""

    entities: int
    imports: dict[str, Run] = field(default_factory=dict)
    p50: dict[str, float] = field(default_factory=dict)
    p95: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    worker_rss_mb: float = math.nan
    feed_entries: int = 0
    feed_rate: float = math.nan
    export_seconds: float = math.nan
    export_rss_mb: float = math.nan
    load: list[str] = field(default_factory=list)


def catch_up(port: int, token: str, most: int) -> tuple[int, float]:
    """Read the feed from the start, 1,000 a page, up to *most* entries: (entries, s)."""
    client = lookups.Client(port, token)
    cursor: str | None = None
    entries = 0
    t0 = time.perf_counter()
    try:
        while entries < most:
            query = urllib.parse.urlencode({"limit": 1000, **({"after": cursor} if cursor else {})})
            status, body, _ = client.get(f"/api/v1/changes?{query}")
            if status != 200:
                raise BenchError(f"feed: HTTP {status}: {body[:200]!r}")
            page = orjson.loads(body)
            entries += len(page["items"])
            cursor = page["next"]
            if not page["more"]:
                break
    finally:
        client.close()
    return entries, time.perf_counter() - t0


def measure(n: int, server, workdir: Path, cli: str, a: argparse.Namespace) -> Size:
    size = Size(n)
    size.load.append(uptime())
    say(f"\n==== {n:,} entities ({size.load[-1]})")
    gen = load_generator()
    base, changed = workdir / f"sor_{n}.xml", workdir / f"sor_{n}_changed.xml"
    # The changed variant is written by a process of its own meanwhile (the first import
    # shares the machine with it: the bench's run is shorter, that one import slower).
    variant = subprocess.Popen(
        [sys.executable, str(HERE / "generate_sor_export.py"), str(changed), "--entities",
         str(n), "--seed", str(a.seed), "--mutate", "0.05", "--drop", "0.01"],
        stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    t0 = time.perf_counter()
    gen.generate(base, n, seed=a.seed)
    say(f"   generated {base.name} in {time.perf_counter() - t0:.0f} s")
    url = server.create_database(f"growth{n}")
    env = dict(os.environ)
    env.pop("FLASK_APP", None)
    env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
               SOR_RATELIMIT_API="1000000 per minute",
               SOR_RATELIMIT_ANONYMOUS="1000000 per minute")
    log = workdir / f"commands-{n}.log"
    gunicorn: Gunicorn | None = None
    try:
        run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
        for name, path in zip(IMPORTS, (base, base, changed), strict=True):
            if path == changed and variant.wait() != 0:
                raise BenchError(f"generating {changed.name} failed")
            run = run_measured(Run("postgresql", name, [cli, "import-sor", "--quiet", str(path)],
                                   entities=count_entities(path)), env, log, a.timeout)
            size.imports[name] = run
            say(f"   {name:<20} {run.seconds:7.1f} s  peak RSS {run.peak_rss_mb:6.0f} MB  "
                f"exit {run.exit_code}")
            if not run.ok:
                raise BenchError(f"{name} failed: " + " | ".join(run.output_tail))
        # Right after the imports: what a run cut short most needs comes first.
        figures = run_child("sor-xml", url, workdir / f"export-{n}.xml", env, a.timeout)
        size.export_seconds, size.export_rss_mb = figures["wall"], figures["rss_mb"]
        say(f"   export SOR XML v2: {figures['rows']} rows in {figures['wall']:.1f} s, "
            f"peak RSS {figures['rss_mb']:.0f} MB, {figures['bytes'] / 1e6:.0f} MB")
        run_command([cli, "import-shak", str(next(p for p in lookups.SHAK_FILES if p.exists()))],
                    env, log, what="import-shak")
        with psycopg_connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        inputs = lookups.choose_inputs(url, a.seed)
        out = run_command([cli, "create-client", "bench", "--cvr", inputs.municipality_cvr,
                           "--role", "reporter"], env, log, what="create-client")
        token = out.strip().splitlines()[-1].strip()
        gunicorn = Gunicorn(env, workdir / f"gunicorn-{n}.log", workers=2, threads=4)
        gunicorn.start()
        for name, scenario in lookups.scenarios(inputs).items():
            stats = lookups.latency_run(gunicorn.port, token, scenario, a.requests, cold=True)
            size.p50[name], size.p95[name] = stats.p(50), stats.p(95)
            size.errors += stats.errors
            say(f"   cold {name:<20} p50 {stats.p(50):7.2f} ms  p95 {stats.p(95):7.2f} ms  "
                f"errors {stats.errors}")
        size.feed_entries, seconds = catch_up(gunicorn.port, token, a.feed_max)
        size.feed_rate = size.feed_entries / seconds
        say(f"   feed catch-up: {size.feed_entries} entries in {seconds:.1f} s, "
            f"{size.feed_rate:,.0f} entries/s")
        assert gunicorn.proc is not None
        size.worker_rss_mb = max(worker_rss(gunicorn.proc.pid), default=math.nan)
        say(f"   gunicorn workers' RSS: {size.worker_rss_mb:.0f} MB (the larger)")
        gunicorn.stop()
        gunicorn = None
    finally:
        if variant.poll() is None:
            variant.kill()
            variant.wait()
        if gunicorn is not None:
            gunicorn.stop()
        for path in (base, changed, workdir / f"export-{n}.xml"):
            path.unlink(missing_ok=True)
        if not a.keep:
            server.drop_database(url)
    size.load.append(uptime())
    say(f"   ({size.load[-1]})")
    return size


def report(sizes: list[Size]) -> bool:
    """The table, the growth and the targets; whether every target holds."""
    first, last = sizes[0], sizes[-1]
    reference = next((s for s in sizes if s.entities == REFERENCE), first)
    say(f"\n== the growth curve (PostgreSQL); growth = {last.entities:,} / {first.entities:,}")
    say(f"{'scenario':<34}" + "".join(f"{s.entities:>11,}" for s in sizes) + f"{'growth':>9}")

    def line(label: str, values: list[float], fmt: str = "11.1f") -> None:
        growth = values[-1] / values[0] if values[0] else math.nan
        say(f"{label:<34}" + "".join(f"{v:{fmt}}" for v in values) + f"{growth:9.2f}")

    for name in IMPORTS:
        line(f"{name} s", [s.imports[name].seconds for s in sizes])
        line(f"{name} peak MB", [s.imports[name].peak_rss_mb for s in sizes], "11.0f")
    for name in lookups.SCENARIOS:
        line(f"cold {name} p50 ms", [s.p50[name] for s in sizes], "11.2f")
        line(f"cold {name} p95 ms", [s.p95[name] for s in sizes], "11.2f")
    line("export SOR XML v2 s", [s.export_seconds for s in sizes])
    line("export SOR XML v2 peak MB", [s.export_rss_mb for s in sizes], "11.0f")
    line("feed catch-up entries/s", [s.feed_rate for s in sizes], "11.0f")
    line("gunicorn worker RSS MB", [s.worker_rss_mb for s in sizes], "11.0f")
    for s in sizes:
        say(f"   load at {s.entities:,}: before {s.load[0]}; after {s.load[-1]}")

    def flat(value: float, ref: float) -> bool:
        return value <= ref * FLAT[0] + FLAT[1]

    targets: list[tuple[str, bool]] = []
    for s in sizes:
        for name in IMPORTS:
            r = s.imports[name]
            targets.append((f"{s.entities:,}: {name} {r.seconds:.0f} s <= "
                            f"{TARGET_IMPORT_SECONDS:.0f} s, peak {r.peak_rss_mb:.0f} MB < "
                            f"{TARGET_RSS_MB:.0f} MB",
                            r.seconds <= TARGET_IMPORT_SECONDS and r.peak_rss_mb < TARGET_RSS_MB))
    if last is not reference:
        for name in IMPORTS:
            a_, b_ = last.imports[name].peak_rss_mb, reference.imports[name].peak_rss_mb
            targets.append((f"{name} memory flat: {a_:.0f} MB at {last.entities:,} vs "
                            f"{b_:.0f} MB at {reference.entities:,}", flat(a_, b_)))
        for name in lookups.SCENARIOS:
            a_, b_ = last.p95[name], reference.p95[name]
            targets.append((f"cold {name} p95 {a_:.2f} ms at {last.entities:,} <= "
                            f"{TARGET_P95_GROWTH} x {b_:.2f} ms at {reference.entities:,} "
                            f"({a_ / b_:.2f}x)", a_ <= TARGET_P95_GROWTH * b_))
        targets.append((f"export memory flat: {last.export_rss_mb:.0f} MB at "
                        f"{last.entities:,} vs {reference.export_rss_mb:.0f} MB at "
                        f"{reference.entities:,}",
                        flat(last.export_rss_mb, reference.export_rss_mb)))
    targets.append((f"export SOR XML v2 of {last.entities:,}: {last.export_seconds:.0f} s <= "
                    f"{TARGET_EXPORT_SECONDS:.0f} s", last.export_seconds <= TARGET_EXPORT_SECONDS))
    errors = sum(s.errors for s in sizes)
    targets.append((f"no wrong answers in the lookups ({errors})", errors == 0))
    say("\n== targets")
    for text, held in targets:
        say(f"  [{'ok' if held else 'MISSED'}] {text}")
    return all(held for _, held in targets)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100000,200000,500000,1000000")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--requests", type=int, default=300, help="cold requests per scenario")
    p.add_argument("--fragments", type=int, default=300,
                   help="type-ahead fragments (bench_lookups counts the matches of each)")
    p.add_argument("--feed-max", type=int, default=250_000)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    p.add_argument("--keep", action="store_true", help="keep the databases and files")
    a = p.parse_args(argv)
    sizes = sorted(int(s) for s in a.sizes.split(","))
    lookups.FRAGMENTS = a.fragments
    terminate_on_signal()
    cli = required_command("sorregistry")
    required_command("gunicorn")
    workdir = Path(tempfile.mkdtemp(prefix="sorgrowth-"))
    say(f"bench_growth: sizes {', '.join(f'{s:,}' for s in sizes)}; {uptime()}")
    results: list[Size] = []
    try:
        with postgres_server(workdir / "pg", a.keep) as server:
            for n in sizes:
                try:
                    results.append(measure(n, server, workdir, cli, a))
                except BenchError as exc:
                    say(f"   FAILED at {n:,}: {exc}")
                    break
    finally:
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if not results:
        return 1
    held = report(results)
    if len(results) < len(sizes):
        say(f"  [FAILED] only {len(results)} of {len(sizes)} sizes measured")
        return 1
    return 0 if held else 2


if __name__ == "__main__":
    sys.exit(main())

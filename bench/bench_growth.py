#!/usr/bin/env python3
"""The growth curve: the register's work at 100k, 200k, 500k and 1M entities on PostgreSQL.

    .venv/bin/python bench/bench_growth.py [--sizes 100000,200000,500000,1000000]
                                           [--requests 300] [--rounds 3] [--feed-max 250000]
                                           [--keep]

For each size, on a throwaway PostgreSQL server of its own (tests/support/postgres.py,
``shared_buffers=256MB``), kept until the end:

* **imports** (bench_import's measure: wall time and the process's peak RSS from
  ``os.wait4``): ``sorregistry import-sor`` of a generated export (first import), of the
  same file again (unchanged re-import) and of its changed variant (``--mutate 0.05
  --drop 0.01``: changed re-import);
* **the export**: SOR XML v2 of the whole register in a process of its own (bench_export's
  child): wall time and peak RSS;

then, once every size is loaded, **side by side** (the machine is shared and changes speed
by a third within minutes: sizes measured a quarter of an hour apart compared its moods,
not the register's growth), each size's database on a PostgreSQL server of its own:

* **lookups** (bench_lookups' scenarios and client): the SHAK register imported, a
  ``reporter`` client, ``gunicorn -w 2 -k gthread --threads 4`` per size, all running; once
  every worker has built its name index (``/metrics``: a worker still building answers its
  type-aheads by SQL, which is the first start's figure, not this one), ``--rounds``
  rounds, each asking for each of the four scenarios every size in turn (seconds apart, the
  order alternating from round to round) ``--requests`` computed answers from one
  sequential client (``Cache-Control: no-cache``, after bench_lookups' warm-up): cold
  p50 / p95 per round; the growth of a scenario is the median of the rounds' ratios
  (largest / 200k);
* **the gunicorn workers' RSS** after the lookups and the feed;
* **feed catch-up**: one client reading ``/api/v1/changes`` from the start, 1,000 a page,
  up to ``--feed-max`` entries: entries/s.

Then a table per scenario with the growth from the smallest to the largest size, and
the targets (issue 17): every import <= 5 min and < 500 MB; import and export memory flat
(the largest size's peak within 10 % + 20 MB of 200k's); lookups' cold p95 at the largest
size <= 1.5x their p95 at 200k; SOR XML v2 of the largest <= 5 min. ``uptime`` is printed
before and after each size and each round: the machine is shared, say its load beside the
figures.

Exit status: 0 when every target holds, 2 when one is missed, 1 when something failed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
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
METRICS_TOKEN = "bench-growth-metrics"
FLAT = (1.10, 20.0)  # "flat": at most 10 % + 20 MB above the reference size's peak
REFERENCE = 200_000


@dataclass
class Size:
    """The figures of one size."""

    entities: int
    imports: dict[str, Run] = field(default_factory=dict)
    # per scenario: each round's cold p50 / p95, and their medians
    rounds_p50: dict[str, list[float]] = field(default_factory=dict)
    rounds_p95: dict[str, list[float]] = field(default_factory=dict)
    p50: dict[str, float] = field(default_factory=dict)
    p95: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    worker_rss_mb: float = math.nan
    feed_entries: int = 0
    feed_rate: float = math.nan
    export_seconds: float = math.nan
    export_rss_mb: float = math.nan
    load: list[str] = field(default_factory=list)
    # what the side-by-side lookups need: the service's settings, its client and inputs
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    scenarios: dict[str, lookups.Scenario] = field(default_factory=dict)
    gunicorn: Gunicorn | None = None


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


def load(n: int, server, workdir: Path, cli: str, a: argparse.Namespace) -> Size:
    """Size *n* loaded into its own server's database: the imports and the export measured,
    then the SHAK register, a vacuum and a client for the lookups (measured later, side by
    side with the other sizes)."""
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
               SOR_RATELIMIT_ANONYMOUS="1000000 per minute",
               SOR_METRICS_TOKEN=METRICS_TOKEN)
    log = workdir / f"commands-{n}.log"
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
        size.token = out.strip().splitlines()[-1].strip()
        size.scenarios = lookups.scenarios(inputs)
        size.env = env
    finally:
        if variant.poll() is None:
            variant.kill()
            variant.wait()
        for path in (base, changed, workdir / f"export-{n}.xml"):
            path.unlink(missing_ok=True)
    size.load.append(uptime())
    say(f"   ({size.load[-1]})")
    return size


def index_builds(port: int) -> float:
    """How many name-index builds the service's workers have made (``/metrics``)."""
    client = lookups.Client(port, METRICS_TOKEN)
    try:
        status, body, _ = client.get("/metrics")
    finally:
        client.close()
    if status != 200:
        raise BenchError(f"/metrics: HTTP {status}")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith("sor_name_index_build_seconds_count"))


def wait_for_name_indexes(size: Size, workers: int, timeout: float = 300.0) -> float:
    """Ask type-aheads on new connections (each lands on some worker, and a worker builds
    its name index at its first) until every worker has built one; the seconds it took."""
    assert size.gunicorn is not None
    port = size.gunicorn.port
    paths = next(iter(size.scenarios.values())).paths
    t0 = time.perf_counter()
    i = 0
    while index_builds(port) < workers:
        if time.perf_counter() - t0 > timeout:
            raise BenchError(f"{size.entities:,}: the workers' name indexes not built in "
                             f"{timeout:.0f} s")
        client = lookups.Client(port, size.token, cold=True)
        try:
            for _ in range(10):
                client.get(paths[i % len(paths)])
                i += 1
        finally:
            client.close()
        time.sleep(0.5)
    return time.perf_counter() - t0


def side_by_side(sizes: list[Size], workdir: Path, a: argparse.Namespace) -> None:
    """Every size's service running at once; the lookups in rounds, each round asking
    every size in turn (the order alternating); then the feed and the workers' memory."""
    say(f"\n==== the lookups side by side: {a.rounds} rounds, each size in turn "
        f"({uptime()})")
    try:
        for size in sizes:
            size.gunicorn = Gunicorn(size.env, workdir / f"gunicorn-{size.entities}.log",
                                     workers=2, threads=4)
            size.gunicorn.start()
        for size in sizes:
            seconds = wait_for_name_indexes(size, workers=2)
            say(f"   {size.entities:,}: both workers' name indexes built ({seconds:.0f} s)")
        for r in range(a.rounds):
            # Each scenario asked of every size in turn, seconds apart (the order
            # alternating from round to round): a pair shares the machine's mood.
            figures: dict[int, list[str]] = {size.entities: [] for size in sizes}
            for name in lookups.SCENARIOS:
                for size in (sizes if r % 2 == 0 else sizes[::-1]):
                    assert size.gunicorn is not None
                    stats = lookups.latency_run(size.gunicorn.port, size.token,
                                                size.scenarios[name], a.requests, cold=True)
                    size.rounds_p50.setdefault(name, []).append(stats.p(50))
                    size.rounds_p95.setdefault(name, []).append(stats.p(95))
                    size.errors += stats.errors
                    figures[size.entities].append(f"{name} {stats.p(50):.2f}/{stats.p(95):.2f}")
            for size in sizes:
                say(f"   round {r} {size.entities:>9,}: cold p50/p95 ms: "
                    f"{', '.join(figures[size.entities])}")
            say(f"   ({uptime()})")
        for size in sizes:
            for name, values in size.rounds_p95.items():
                size.p95[name] = statistics.median(values)
                size.p50[name] = statistics.median(size.rounds_p50[name])
        for size in sizes:
            assert size.gunicorn is not None
            size.feed_entries, seconds = catch_up(size.gunicorn.port, size.token, a.feed_max)
            size.feed_rate = size.feed_entries / seconds
            assert size.gunicorn.proc is not None
            size.worker_rss_mb = max(worker_rss(size.gunicorn.proc.pid), default=math.nan)
            say(f"   {size.entities:,}: feed catch-up {size.feed_entries} entries in "
                f"{seconds:.1f} s, {size.feed_rate:,.0f} entries/s; gunicorn workers' RSS "
                f"{size.worker_rss_mb:.0f} MB (the larger)")
    finally:
        for size in sizes:
            if size.gunicorn is not None:
                size.gunicorn.stop()
                size.gunicorn = None


def p95_growth(last: Size, reference: Size, name: str) -> tuple[float, list[float]]:
    """A scenario's p95 growth: the median of the rounds' ratios (each round measured both
    sizes minutes apart), and the ratios."""
    ratios = [mine / theirs for mine, theirs in
              zip(last.rounds_p95[name], reference.rounds_p95[name], strict=True)]
    return statistics.median(ratios), ratios


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
            growth, ratios = p95_growth(last, reference, name)
            targets.append((f"cold {name} p95 at {last.entities:,} <= {TARGET_P95_GROWTH} x "
                            f"at {reference.entities:,}: {growth:.2f}x by the median of the "
                            f"rounds' ratios ({' '.join(f'{r:.2f}' for r in ratios)}; the "
                            f"medians {last.p95[name]:.2f} / {reference.p95[name]:.2f} ms)",
                            growth <= TARGET_P95_GROWTH))
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
    p.add_argument("--requests", type=int, default=300,
                   help="cold requests per scenario, size and round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the lookups, every size side by side in each")
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
        with contextlib.ExitStack() as servers:
            for n in sizes:
                try:
                    server = servers.enter_context(
                        postgres_server(workdir / f"pg-{n}", a.keep))
                    results.append(load(n, server, workdir, cli, a))
                except BenchError as exc:
                    say(f"   FAILED at {n:,}: {exc}")
                    break
            if results:
                try:
                    side_by_side(results, workdir, a)
                except BenchError as exc:
                    say(f"   FAILED in the lookups: {exc}")
                    return 1
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

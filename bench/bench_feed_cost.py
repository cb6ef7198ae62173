#!/usr/bin/env python3
"""The change feed's cost on the import, side by side: this tree with and without its entries.

    .venv/bin/python bench/bench_feed_cost.py [--entities 200000] [--rounds 3] [--out FILE]
                                              [--postgres-setting NAME=VALUE ...]

Generates a SOR export of ``--entities`` (bench/generate_sor_export.py) and its changed
variant (5 % changed, 1 % of subtrees gone), starts a throwaway PostgreSQL server, imports
the export once into a database of its own and throws the figure away (the first import on
a fresh server is 15-25 % slower than the next: its caches are cold), then runs
``--rounds`` rounds, the order of the two variants alternating from round to round (the
server's settings: PostgreSQL's defaults but ``shared_buffers=256MB``, and any
``--postgres-setting``, e.g. ``max_wal_size=4GB`` as README.md recommends). Each
run: a fresh database, ``sorregistry db upgrade``, ``sorregistry import-sor`` of the
export (the **first import**: every organisation a ``created`` entry), then of the changed
variant (the **changed re-import**); wall time and peak RSS of each, each after a
``CHECKPOINT`` and ``sync`` (the run before's dirty pages are written out before, not
charged to it). The variants,
the same code:

* **feed**: this tree;
* **off**: this tree with ``bench/feed_off`` first on ``PYTHONPATH``: no feed entry is
  written, everything else runs as it does.

Prints each run, the medians, their ratio feed / off and each round's; the target (issue
13): the feed within 10 % on both imports, by the ratio of the medians and by the median
of the rounds' ratios (each round runs the two side by side, so a slow spell of the
machine weighs on one pair rather than on one variant's median). ``uptime`` before
and after: the machine is shared. Exit status 0 when the target holds, 2 when missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_import import Run, run_measured
from common import (
    FEED_OFF_PATH,
    ROOT,
    load_generator,
    postgres_server,
    say,
    terminate_on_signal,
    uptime,
)

from tests.support.postgres import Server

TARGET = 1.10
IMPORTS = ("first import", "changed re-import")
VARIANTS = {"feed": str(ROOT), "off": FEED_OFF_PATH}


def imports(server: Server, database: str, path: str, files: tuple[Path, Path],
            log: Path) -> tuple[list[Run], int]:
    """A fresh database, migrated, then the export and its changed variant imported; the
    runs and the feed entries they wrote."""
    url = server.create_database(database)
    env = dict(os.environ)
    env.pop("FLASK_APP", None)
    env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
               PYTHONPATH=path)
    cli = str(ROOT / ".venv" / "bin" / "sorregistry")
    runs = []
    for label, command in (("db upgrade", [cli, "db", "upgrade"]),
                           *((name, [cli, "import-sor", "--quiet", str(file)])
                             for name, file in zip(IMPORTS, files, strict=True))):
        # The run before's dirty pages written out now, not during this one: PostgreSQL's
        # shared buffers by a checkpoint (else the next checkpoint writes them while this
        # run goes on), then the operating system's.
        with server.connect("postgres") as admin:
            admin.execute("CHECKPOINT")
        os.sync()
        run = run_measured(Run("postgresql", label, command), env, log, timeout=3600)
        if not run.ok:
            raise RuntimeError(f"{database} {label} failed: {run.output_tail}")
        runs.append(run)
    with server.connect(database) as connection:
        entries = connection.execute("SELECT count(*) FROM feed_entries").fetchone()[0]
    server.drop_database(url)
    return runs[1:], entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--postgres-setting", action="append", default=[],
                        metavar="NAME=VALUE", help="a setting of the server (repeatable)")
    args = parser.parse_args()
    settings = dict(setting.split("=", 1) for setting in args.postgres_setting)
    terminate_on_signal()
    workdir = Path(tempfile.mkdtemp(prefix="bench-feed-cost-"))
    lines: list[str] = []

    def note(line: str) -> None:
        say(line)
        lines.append(line)

    note(f"bench_feed_cost.py: {args.entities:,} entities, {args.rounds} rounds, "
         f"PostgreSQL (shared_buffers=256MB {' '.join(args.postgres_setting)}); "
         f"load before: {uptime()}")
    try:
        generator = load_generator()
        plain, changed = workdir / "plain.xml", workdir / "changed.xml"
        generator.generate(plain, args.entities, seed=1)
        generator.generate(changed, args.entities, seed=1, mutate=0.05, drop=0.01)
        log = workdir / "commands.log"
        seconds: dict[str, dict[str, list[float]]] = {
            v: {name: [] for name in IMPORTS} for v in VARIANTS}
        with postgres_server(workdir / "pg", **settings) as server:
            started = time.perf_counter()
            warm, _ = imports(server, "warm", VARIANTS["feed"], (plain, changed), log)
            note(f"warm-up (thrown away): {warm[0].seconds:.1f} s, "
                 f"{time.perf_counter() - started:.0f} s in all")
            for number in range(args.rounds):
                order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    runs, entries = imports(server, f"{variant}{number}", VARIANTS[variant],
                                            (plain, changed), log)
                    # The switch works: no entry without the feed, entries with it.
                    assert (entries > 0) == (variant == "feed"), (variant, entries)
                    for run in runs:
                        seconds[variant][run.name].append(run.seconds)
                    note(f"round {number} {variant:4}  " + "  ".join(
                        f"{run.name} {run.seconds:6.1f} s ({run.peak_rss_mb:.0f} MB)"
                        for run in runs) + f"   {entries:,} entries   load {uptime()}")
        met = True
        for name in IMPORTS:
            feed, off = seconds["feed"][name], seconds["off"][name]
            ratio = statistics.median(feed) / statistics.median(off)
            ratios = [a / b for a, b in zip(feed, off, strict=True)]
            paired = statistics.median(ratios)
            held = ratio <= TARGET and paired <= TARGET
            met = met and held
            pairs = " ".join(f"{value:.2f}" for value in ratios)
            note(f"{name}: feed median {statistics.median(feed):.1f} s, off "
                 f"{statistics.median(off):.1f} s: {ratio:.3f}; the rounds' ratios "
                 f"{pairs}, their median {paired:.3f} "
                 f"[{'met' if held else 'MISSED'}: within 10 % by both]")
        note(f"load after: {uptime()}")
        if args.out:
            args.out.write_text("\n".join(lines) + "\n")
        return 0 if met else 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

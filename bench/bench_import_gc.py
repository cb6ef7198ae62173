#!/usr/bin/env python3
"""The import with its collector settings (sorregistry.commands.bulk_work) and with
Python's defaults, side by side.

    .venv/bin/python bench/bench_import_gc.py [--entities 200000] [--rounds 2]

Generates a SOR export of ``--entities`` (bench/generate_sor_export.py), starts a
throwaway PostgreSQL server (``shared_buffers=256MB``) and runs ``--rounds`` rounds, the
order of the two variants alternating: a fresh database, ``sorregistry db upgrade``, then
``sorregistry import-sor`` of the export (a first import), after a ``CHECKPOINT`` and
``sync``. Both variants run this tree with ``bench/gc_probe`` first on ``PYTHONPATH``,
which times every collection in the import process (``gc.callbacks``); **defaults** also
sets ``SOR_BENCH_GC_DEFAULTS=1`` (``bulk_work`` does nothing). Prints each run's wall
time, peak RSS and seconds in the collector (by generation), then the medians and the
rounds' ratios. The collector's seconds and counts hardly move with the machine's
speed; the wall times do (it is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_import import Run, run_measured
from common import ROOT, load_generator, postgres_server, say, terminate_on_signal, uptime

PROBE = ROOT / "bench" / "gc_probe"
VARIANTS = {"tuned": {}, "defaults": {"SOR_BENCH_GC_DEFAULTS": "1"}}


def first_import(server, name: str, export: Path, extra: dict[str, str], workdir: Path,
                 log: Path) -> tuple[Run, dict[str, list[float]]]:
    url = server.create_database(name)
    report = workdir / f"{name}.json"
    env = dict(os.environ)
    env.pop("FLASK_APP", None)
    env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
               PYTHONPATH=f"{PROBE}{os.pathsep}{ROOT}", SOR_BENCH_GC_REPORT=str(report),
               **extra)
    cli = str(ROOT / ".venv" / "bin" / "sorregistry")
    upgrade = run_measured(Run("postgresql", "db upgrade", [cli, "db", "upgrade"]),
                           env, log, timeout=600)
    if not upgrade.ok:
        raise RuntimeError(f"{name}: db upgrade failed: {upgrade.output_tail}")
    with server.connect("postgres") as admin:
        admin.execute("CHECKPOINT")
    os.sync()
    run = run_measured(Run("postgresql", "first import",
                           [cli, "import-sor", "--quiet", str(export)]), env, log, timeout=3600)
    if not run.ok:
        raise RuntimeError(f"{name}: import failed: {run.output_tail}")
    collector = json.loads(report.read_text())
    server.drop_database(url)
    return run, collector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    terminate_on_signal()
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-gc-"))
    say(f"bench_import_gc.py: {args.entities:,} entities, {args.rounds} rounds, PostgreSQL; "
        f"load before: {uptime()}")
    try:
        export = workdir / "export.xml"
        load_generator().generate(export, args.entities, seed=1)
        log = workdir / "commands.log"
        wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
        spent: dict[str, list[float]] = {v: [] for v in VARIANTS}
        with postgres_server(workdir / "pg") as server:
            for number in range(args.rounds):
                order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    run, collector = first_import(server, f"{variant}{number}", export,
                                                  VARIANTS[variant], workdir, log)
                    seconds = sum(collector["seconds"])
                    wall[variant].append(run.seconds)
                    spent[variant].append(seconds)
                    by_generation = " / ".join(
                        f"{n} in {s:.2f} s" for n, s in
                        zip(collector["collections"], collector["seconds"], strict=True))
                    say(f"round {number} {variant:8}  first import {run.seconds:6.1f} s "
                        f"({run.peak_rss_mb:.0f} MB), in the collector {seconds:5.2f} s "
                        f"(collections by generation: {by_generation})   load {uptime()}")
        for name, figures in (("wall", wall), ("in the collector", spent)):
            tuned, defaults = figures["tuned"], figures["defaults"]
            ratios = " ".join(f"{a / b:.2f}" for a, b in zip(tuned, defaults, strict=True))
            say(f"{name}: tuned median {statistics.median(tuned):.2f} s, defaults "
                f"{statistics.median(defaults):.2f} s; the rounds' ratios tuned / defaults "
                f"{ratios}")
        say(f"load after: {uptime()}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

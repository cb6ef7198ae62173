#!/usr/bin/env python3
"""Benchmark the register's exports on a generated national-size register in PostgreSQL.

    .venv/bin/python bench/bench_export.py [--entities 200000] [--repeat 3] [--file FILE]
                                           [--formats read,sor-xml,sor-xml-v1,csv] [--keep]

Generates a SOR XML v2 export (bench/generate_sor_export.py), imports it into a
throwaway PostgreSQL server (``sorregistry import-sor``), then exports the register
``--repeat`` times in each format, each run in a process of its own, as ``sorregistry
export`` does it: the export's one snapshot (``hierarchy.export.snapshot.open_snapshot``:
REPEATABLE READ, the feed position read first, the rows streamed by a server-side cursor
in the format's order) handed to the format's writer in the registry, writing a file.
``read`` reads the rows and writes nothing: the floor every format stands on.
``ndjson-history`` and ``csv-history`` are the all-history exports (``--all-history``:
every version of every organisation, from ``organisation_versions``).
For each format it prints the median and p95 wall time, the peak RSS of the process
(``os.wait4``), the output's size, and the ratio of its median to ``read``'s.

Then the round trip: the SOR XML v2 file of the first run is imported into an empty
database and the two ``organisations`` tables are compared row by row and column by
column (all but ``created_at`` / ``updated_at``, the import's own timestamps): own and
effective values, validity dates, successors, identifiers, fingerprints.

Targets: SOR XML v2 of 200,000 entities in at most 60 s, every export under 300 MB peak
RSS, the round trip without a difference. Exit status 0 when they hold, 2 when a target
is missed, 1 when a command failed. ``--child`` is the export process itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from common import ROOT, find_command, load_generator, postgres_server, say, terminate_on_signal

from hierarchy.export import FORMATS as REGISTERED
from hierarchy.export.snapshot import ExportRow, open_snapshot
from sorregistry import create_app
from sorregistry.extensions import db

TARGET_SOR_XML_SECONDS = 60.0
TARGET_RSS_MB = 300.0
FORMATS = ("read", "sor-xml", "sor-xml-v1", "csv", "csv-excel-safe", "ndjson",
           "ndjson-history", "csv-history")
HISTORY = "-history"
IMPORT_STAMPS = ("created_at", "updated_at")


# --- the export process ---------------------------------------------------------------------

def child(fmt: str, url: str, out_path: Path) -> int:
    """Export the register at *url* in *fmt* to *out_path*; print a JSON line of figures."""
    # Configured as the sorregistry command is: from the SOR_ variables.
    os.environ["SOR_DATABASE_URL"] = url
    app = create_app()
    t0 = time.perf_counter()  # from here: the export itself, without the app's start
    with app.app_context():
        history = fmt.endswith(HISTORY)
        chosen = None if fmt == "read" else REGISTERED[fmt.removesuffix(HISTORY)]
        snapshot = open_snapshot(db.session, format=fmt, all_history=history,
                                 order="path" if chosen is None else chosen.order)
        position = snapshot.info.position
        read = [0]
        try:
            with open(out_path, "wb") as out:
                if chosen is None:
                    written = sum(1 for _ in snapshot.rows())
                else:
                    writer = chosen.history_writer if history else chosen.writer
                    assert writer is not None
                    writer(_counted(snapshot.lines(), read), out.write, snapshot.info)
                    written = read[0]
        finally:
            snapshot.close()
    print(json.dumps({"rows": written, "seconds": time.perf_counter() - t0,
                      "position": position}), flush=True)
    return 0


def _counted(rows: Iterable[ExportRow], read: list[int]) -> Iterator[ExportRow]:
    for row in rows:
        read[0] += 1
        yield row


# --- measuring ------------------------------------------------------------------------------

def run_command(command: list[str], env: dict[str, str], timeout: float
                ) -> tuple[float, int, str]:
    """Run *command*: (wall seconds, exit code, its output)."""
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, stdin=subprocess.DEVNULL,
                          cwd=ROOT, timeout=timeout, check=False)
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return time.perf_counter() - t0, proc.returncode, output


def run_child(fmt: str, url: str, out_path: Path, env: dict[str, str], timeout: float
              ) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", fmt, url, str(out_path)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    assert proc.stdout is not None and proc.stderr is not None
    output, errors = proc.stdout.read().decode(), proc.stderr.read().decode()
    if code != 0:
        raise RuntimeError(f"export {fmt} exited {code}:\n{errors[-2000:]}")
    figures = json.loads(output.strip().splitlines()[-1])
    return {"wall": seconds, "inner": figures["seconds"], "rss_mb": usage.ru_maxrss / 1024.0,
            "rows": figures["rows"], "bytes": out_path.stat().st_size,
            "position": figures["position"]}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# --- the round trip -------------------------------------------------------------------------

def compare_tables(pg, first: str, second: str) -> tuple[int, list[str]]:
    """Compare the organisations tables of two databases, streamed in SOR code order."""
    with pg.connect(first) as a, pg.connect(second) as b:
        columns = [row[0] for row in a.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'organisations' ORDER BY ordinal_position")]
        compared = [c for c in columns if c not in IMPORT_STAMPS]
        query = f"SELECT {', '.join(compared)} FROM organisations ORDER BY sor_code"
        differences: list[str] = []
        count = 0
        with a.transaction(), b.transaction():
            left = a.cursor(name="left")
            right = b.cursor(name="right")
            left.itersize = right.itersize = 5000
            left.execute(query)
            right.execute(query)
            for row_a, row_b in zip(left, right, strict=False):
                count += 1
                if row_a != row_b:
                    for name, x, y in zip(compared, row_a, row_b, strict=True):
                        if x != y and len(differences) < 20:
                            differences.append(f"{row_a[0]}.{name}: {x!r} != {y!r}")
            rest_a, rest_b = left.fetchone(), right.fetchone()
            if rest_a is not None or rest_b is not None:
                differences.append("the tables hold different numbers of rows")
    return count, differences


# --- the benchmark --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--file", type=Path, help="import this export instead of generating one")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    p.add_argument("--child", nargs=3, metavar=("FORMAT", "URL", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a.child[0], a.child[1], Path(a.child[2]))
    formats = [f for f in a.formats.split(",") if f]
    for fmt in formats:
        if fmt not in FORMATS:
            p.error(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    terminate_on_signal()
    cli = find_command("sorregistry")
    if cli is None:
        say("sorregistry is not installed (pip install -e . in the project's venv)")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="sorbench-export-"))
    base = Path(tempfile.mkdtemp(prefix="sorbench-pg-"))
    try:
        return _bench(a, formats, cli, workdir, base)
    finally:
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _bench(a: argparse.Namespace, formats: list[str], cli: str, workdir: Path, base: Path
           ) -> int:
    load = os.getloadavg()
    say(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"({os.cpu_count()} cores)")
    if a.file:
        source = a.file.resolve()
    else:
        source = workdir / f"sor_{a.entities}.xml"
        t0 = time.perf_counter()
        counts = load_generator().generate(source, a.entities, seed=a.seed)
        say(f"generated {source.name}: {sum(counts.values())} entities {counts} in "
            f"{time.perf_counter() - t0:.1f} s, {source.stat().st_size / 1e6:.0f} MB")
    env = dict(os.environ, SOR_SECRET_KEY="bench-not-secret")
    env.pop("FLASK_APP", None)
    with postgres_server(base, a.keep) as pg:
        url = pg.create_database("sorbench")
        for step in (["db", "upgrade"], ["import-sor", "--quiet", str(source)]):
            seconds, code, output = run_command([cli, *step], env | {"SOR_DATABASE_URL": url},
                                                a.timeout)
            say(f"{' '.join(step[:1])}: {seconds:.1f} s, exit {code}")
            if code != 0:
                say(output[-3000:])
                return 1

        results: dict[str, list[dict[str, float]]] = {}
        # "export s" is the export itself (transaction, reads, writing); "process s" adds
        # the process's start (Python, the app), the same for every format.
        for round_ in range(a.repeat):
            for fmt in formats:  # interleaved, so that a change of load hits every format
                out = workdir / f"export-{fmt}-{round_}.out"
                figures = run_child(fmt, url, out, env, a.timeout)
                results.setdefault(fmt, []).append(figures)
                if not (fmt == "sor-xml" and round_ == 0):
                    out.unlink()  # the first SOR XML v2 file makes the round trip
        say(f"\n== exports of {results[formats[0]][0]['rows']:.0f} organisations, "
            f"{a.repeat} runs each (feed position {results[formats[0]][0]['position']:.0f})")
        say(f"{'format':<16}{'export s':>9}{'p95':>7}{'/ read':>8}{'process s':>10}"
            f"{'peak MB':>9}{'size MB':>9}{'rows/s':>9}")
        floor = statistics.median(r["inner"] for r in results.get("read", [{"inner": 0.0}]))
        targets: list[tuple[str, bool]] = []
        for fmt in formats:
            inner = [r["inner"] for r in results[fmt]]
            median = statistics.median(inner)
            wall = statistics.median(r["wall"] for r in results[fmt])
            peak = max(r["rss_mb"] for r in results[fmt])
            rows = results[fmt][0]["rows"]
            ratio = f"{median / floor:8.2f}" if floor else f"{'':>8}"
            say(f"{fmt:<16}{median:9.1f}{p95(inner):7.1f}{ratio}{wall:10.1f}{peak:9.0f}"
                f"{results[fmt][0]['bytes'] / 1e6:9.0f}{rows / median:9.0f}")
            targets.append((f"{fmt}: peak RSS {peak:.0f} MB < {TARGET_RSS_MB:.0f} MB",
                            peak < TARGET_RSS_MB))
            if fmt == "sor-xml":
                targets.append((f"sor-xml: median {median:.1f} s (process {wall:.1f} s) <= "
                                f"{TARGET_SOR_XML_SECONDS:.0f} s",
                                wall <= TARGET_SOR_XML_SECONDS))

        if "sor-xml" in formats:
            exported = workdir / "export-sor-xml-0.out"
            second = pg.create_database("sorbench_round_trip")
            for step in (["db", "upgrade"], ["import-sor", "--quiet", str(exported)]):
                seconds, code, output = run_command(
                    [cli, *step], env | {"SOR_DATABASE_URL": second}, a.timeout)
                say(f"\nround trip: {' '.join(step[:1])} of the exported file: {seconds:.1f} s, "
                    f"exit {code}")
                if code != 0:
                    say(output[-3000:])
                    return 1
            t0 = time.perf_counter()
            count, differences = compare_tables(pg, "sorbench", "sorbench_round_trip")
            say(f"round trip: {count} organisations compared column by column in "
                f"{time.perf_counter() - t0:.1f} s: {len(differences)} differences")
            for line in differences:
                say(f"   {line}")
            targets.append((f"round trip: {count} organisations equal", not differences))
    load = os.getloadavg()
    say(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    say("\n== targets")
    for text, held in targets:
        say(f"  [{'ok' if held else 'MISSED'}] {text}")
    return 0 if all(held for _, held in targets) else 2


if __name__ == "__main__":
    sys.exit(main())

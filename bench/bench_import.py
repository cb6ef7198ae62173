#!/usr/bin/env python3
"""Benchmark ``sorregistry import-sor`` on a generated national-size SOR export.

    .venv/bin/python bench/bench_import.py [--entities 200000] [--backends sqlite,postgresql]
                                           [--file FILE [--changed-file FILE]] [--keep]

Generates the export (bench/generate_sor_export.py) and a changed variant of it
(``--mutate 0.05 --drop 0.01``: 5 % renamed / new phone, 1 % of OE subtrees gone), then for
each backend makes a fresh database (``sorregistry db upgrade``) and runs
``sorregistry import-sor`` three times: first import, unchanged re-import, re-import of the
changed variant. For each run it prints the wall time, the peak RSS of the import process
(from ``os.wait4``) and entities per second; then a summary table, the ratio re-import /
first import, and whether the targets hold:

* an import into PostgreSQL takes at most 60 s,
* no import process peaks at 500 MB or more,
* an unchanged re-import takes no longer than the first import.

The PostgreSQL backend is a throwaway server (Debian's PostgreSQL 15, ``initdb`` as the
``postgres`` user when run as root, a free 127.0.0.1 port, default settings except
``shared_buffers=256MB``), stopped and removed at the end, also on Ctrl-C or SIGTERM.

Exit status: 0 when every run succeeded and every target holds, 2 when a target is
missed, 1 when a command failed (or ``sorregistry`` is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import (
    ROOT,
    find_command,
    load_generator,
    postgres_server,
    say,
    terminate_on_signal,
)

TARGET_PG_SECONDS = 60.0
TARGET_RSS_MB = 500.0


@dataclass
class Run:
    backend: str
    name: str
    command: list[str]
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    exit_code: int | None = None
    entities: int = 0
    output_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def rate(self) -> float:
        return self.entities / self.seconds if self.seconds > 0 else 0.0


def run_measured(run: Run, env: dict[str, str], log: Path, timeout: float) -> Run:
    """Run ``run.command``; fill in wall time, peak RSS (its own rusage) and exit code."""
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(run.command)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(run.command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=ROOT)
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > timeout:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    out.write(f"\n[bench] killed after {timeout:.0f} s\n".encode())
                    break
                time.sleep(0.02)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        run.seconds = time.perf_counter() - t0
    run.exit_code = os.waitstatus_to_exitcode(status)
    proc.returncode = run.exit_code  # reaped by wait4: tell Popen
    run.peak_rss_mb = usage.ru_maxrss / 1024.0  # kB on Linux
    run.output_tail = _tail(log, 6)
    return run


def _tail(path: Path, lines: int) -> list[str]:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 8192))
        text = fh.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()][-lines:]


# --- a throwaway PostgreSQL ----------------------------------------------------------------


# --- the benchmark ------------------------------------------------------------------------


def count_entities(path: Path) -> int:
    """Entities (IE, SI and OE elements) in an export, prefixed or not."""
    n = 0
    with open(path, "rb") as fh:
        # Whole lines at a time, so no tag is cut in two; each element opens and closes.
        while block := b"".join(fh.readlines(1 << 24)):
            n += sum(block.count(tag) for tag in (
                b"InstitutionOwner>", b"HealthInstitution>", b"OrganizationalUnit>"))
    return n // 2


def bench_backend(backend: str, url: str, cli: str, files: dict[str, Path], counts: dict,
                  workdir: Path, timeout: float) -> list[Run]:
    env = dict(os.environ)
    env["SOR_DATABASE_URL"] = url
    env.setdefault("SOR_SECRET_KEY", "bench-not-secret")
    env.pop("FLASK_APP", None)
    log = workdir / f"{backend}.log"
    say(f"\n== {backend}: {url}")
    up = run_measured(Run(backend, "db upgrade", [cli, "db", "upgrade"]), env, log, timeout)
    say(f"   db upgrade: {up.seconds:.1f} s, exit {up.exit_code}")
    if not up.ok:
        say("   " + "\n   ".join(up.output_tail))
        return [up]
    runs = []
    plan = [("first import", files["base"]), ("unchanged re-import", files["base"]),
            ("changed re-import", files["changed"])]
    for name, path in plan:
        run = Run(backend, name, [cli, "import-sor", "--quiet", str(path)],
                  entities=counts[path])
        run_measured(run, env, log, timeout)
        runs.append(run)
        say(f"   {name:<20} {run.seconds:7.1f} s  peak RSS {run.peak_rss_mb:7.1f} MB  "
             f"{run.rate:9.0f} entities/s  exit {run.exit_code}")
        for line in run.output_tail:
            say(f"      | {line[:150]}")
        if not run.ok:
            say(f"   (full output in {log})")
            break
    return runs


def summarise(runs: list[Run]) -> tuple[bool, bool]:
    """Print the table and the targets; return (all runs ok, all targets hold)."""
    say("\n== summary")
    say(f"{'backend':<11} {'run':<20} {'seconds':>8} {'peak MB':>8} {'entities/s':>11} "
         f"{'exit':>5}")
    for r in runs:
        say(f"{r.backend:<11} {r.name:<20} {r.seconds:8.1f} {r.peak_rss_mb:8.1f} "
             f"{r.rate:11.0f} {r.exit_code!s:>5}")
    all_ok = all(r.ok for r in runs) and bool(runs)
    targets: list[tuple[str, bool]] = []
    by_backend: dict[str, dict[str, Run]] = {}
    for r in runs:
        by_backend.setdefault(r.backend, {})[r.name] = r
    for backend, rs in by_backend.items():
        first = rs.get("first import")
        again = rs.get("unchanged re-import")
        changed = rs.get("changed re-import")
        if first and first.ok:
            for other in (again, changed):
                if other and other.ok:
                    say(f"{backend}: {other.name} / first import = "
                         f"{other.seconds / first.seconds:.2f}")
            if again and again.ok:
                targets.append((f"{backend}: unchanged re-import ({again.seconds:.1f} s) <= "
                                f"first import ({first.seconds:.1f} s)",
                                again.seconds <= first.seconds))
        if backend == "postgresql":
            for r in (first, again, changed):
                if r and r.ok:
                    targets.append((f"postgresql: {r.name} {r.seconds:.1f} s <= "
                                    f"{TARGET_PG_SECONDS:.0f} s",
                                    r.seconds <= TARGET_PG_SECONDS))
    for r in runs:
        if r.name != "db upgrade" and r.ok:
            targets.append((f"{r.backend}: {r.name} peak {r.peak_rss_mb:.0f} MB < "
                            f"{TARGET_RSS_MB:.0f} MB", r.peak_rss_mb < TARGET_RSS_MB))
    say("\n== targets")
    for text, held in targets:
        say(f"  [{'ok' if held else 'MISSED'}] {text}")
    failed = [r for r in runs if not r.ok]
    for r in failed:
        say(f"  [FAILED] {r.backend}: {r.name} exited {r.exit_code}")
    return all_ok, all(held for _, held in targets)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backends", default="sqlite,postgresql",
                   help="comma-separated: sqlite, postgresql (default both)")
    p.add_argument("--file", type=Path, help="use this export instead of generating one "
                   "(made by generate_sor_export.py with the same --entities/--seed, unless "
                   "--changed-file is given too)")
    p.add_argument("--changed-file", type=Path, help="the changed variant to re-import")
    p.add_argument("--mutate", type=float, default=0.05)
    p.add_argument("--drop", type=float, default=0.01)
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--workdir", type=Path, help="where to put files (default: a new temp dir)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--check-postgres", action="store_true",
                   help="only start a throwaway server, create a database, query it, stop")
    a = p.parse_args(argv)
    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("sqlite", "postgresql"):
            p.error(f"unknown backend {b!r}")
    terminate_on_signal()

    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="sorbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    made_workdir = a.workdir is None
    try:
        if a.check_postgres:
            base = Path(tempfile.mkdtemp(prefix="sorbench-pg-"))
            with postgres_server(base, a.keep) as pg:
                url = pg.create_database("sorbench")
                say(f"started: {url}")
                with pg.connect("sorbench") as connection:
                    for setting in ("server_version", "shared_buffers", "fsync"):
                        value = connection.execute(f"SHOW {setting}").fetchone()[0]
                        say(f"{setting}: {value}")
            say(f"stopped; data directory removed: {not base.exists()}")
            return 0

        cli = find_command("sorregistry")
        if cli is None:
            say("sorregistry is not installed (pip install -e . in the project's venv); "
                 "nothing to measure")
            return 1

        gen = load_generator()
        files: dict[str, Path] = {}
        counts: dict[Path, int] = {}
        if a.file:
            files["base"] = a.file.resolve()
            counts[files["base"]] = count_entities(files["base"])
        else:
            files["base"] = workdir / f"sor_{a.entities}.xml"
            t0 = time.perf_counter()
            c = gen.generate(files["base"], a.entities, seed=a.seed)
            counts[files["base"]] = sum(c.values())
            say(f"generated {files['base']}: {sum(c.values())} entities ({c}) in "
                 f"{time.perf_counter() - t0:.1f} s, "
                 f"{files['base'].stat().st_size / 1e6:.0f} MB")
        if a.changed_file:
            files["changed"] = a.changed_file.resolve()
            counts[files["changed"]] = count_entities(files["changed"])
        else:
            files["changed"] = workdir / f"sor_{a.entities}_changed.xml"
            t0 = time.perf_counter()
            c = gen.generate(files["changed"], a.entities, seed=a.seed, mutate=a.mutate,
                             drop=a.drop)
            counts[files["changed"]] = sum(c.values())
            say(f"generated {files['changed']} (--mutate {a.mutate} --drop {a.drop}): "
                 f"{sum(c.values())} entities in {time.perf_counter() - t0:.1f} s")

        runs: list[Run] = []
        for backend in backends:
            if backend == "sqlite":
                db = workdir / "bench.db"
                db.unlink(missing_ok=True)
                runs += bench_backend("sqlite", f"sqlite:///{db}", cli, files, counts,
                                      workdir, a.timeout)
            else:
                base = Path(tempfile.mkdtemp(prefix="sorbench-pg-"))
                try:
                    with postgres_server(base, a.keep) as pg:
                        url = pg.create_database("sorbench")
                        runs += bench_backend("postgresql", url, cli, files, counts,
                                              workdir, a.timeout)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    say(f"\n== postgresql: could not start a server: {exc}")
                    runs.append(Run("postgresql", "server start", [], exit_code=-1))
        all_ok, targets_hold = summarise(runs)
        if a.json:
            a.json.write_text(json.dumps([asdict(r) | {"rate": r.rate} for r in runs],
                                         indent=2))
        if a.keep:
            say(f"\nkept {workdir}")
        return 0 if all_ok and targets_hold else (1 if not all_ok else 2)
    finally:
        if made_workdir and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The service's own work per lookup answer, counted in function calls: a figure the
machine's noise does not move.

    .venv/bin/python bench/bench_own_work.py [--entities 200000] [--requests 200]
    .venv/bin/python bench/bench_own_work.py --database-url URL  # a register imported before

On these shared machines the same code's CPU time per request moves 20-40 % between two
runs a minute apart (and blocks of 150 requests in one process 0.6-1.8x), so a change
that saves a tenth of a lookup's own work cannot be told from noise by timing it. The
number of functions a request calls is the same in every run. This script serves the
lookups of ``bench_lookups.py`` (the same register, inputs and scenarios, every answer
computed: ``Cache-Control: no-cache``) from the app in this process - WSGI called
directly, no HTTP, no gunicorn - against the floor (a 401 to a request without a token,
no SQL), and prints per request:

* calls: Python functions and C functions called (``sys.setprofile``), over
  ``--requests`` requests after a warm-up; and what the answer calls beyond the floor
  (the service's own work, its SQL's client side included);
* CPU: the process's CPU time per request, without the profiler, in alternating blocks
  of the scenario and the floor (medians of the blocks; for orientation only).

Compare two trees by running it in each (``cd TREE && .venv/bin/python
bench/bench_own_work.py --database-url URL``): the calls are comparable across runs, the
times are not. Generates the export and starts a throwaway PostgreSQL server unless
``--database-url`` names a register imported before (``bench_lookups.py --keep`` leaves
one). Exit status 0, or 1 when something fails (a wrong answer included).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bench_lookups import FLOOR, SHAK_FILES, Scenario, choose_inputs, scenarios
from common import (
    BenchError,
    load_generator,
    postgres_server,
    run_command,
    say,
    terminate_on_signal,
    uptime,
)
from werkzeug.test import EnvironBuilder

from hierarchy.search.names import NAMES
from hierarchy.search.version_listener import close_all as close_listeners
from sorregistry import reads
from sorregistry.app import create_app

NO_CACHE = {"Cache-Control": "no-cache"}
WARMUP = 300
BLOCKS = 10


class InProcess:
    """The app called as a WSGI server calls it, one request at a time."""

    def __init__(self, url: str, token: str) -> None:
        os.environ.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                          SOR_RATELIMIT_API="1000000 per minute",
                          SOR_RATELIMIT_ANONYMOUS="1000000 per minute")
        self.app = create_app()
        self.token = token

    def environs(self, scenario: Scenario) -> list[dict[str, Any]]:
        headers = dict(NO_CACHE)
        if scenario.anonymous_status is None:
            headers["Authorization"] = f"Bearer {self.token}"
        made = []
        for path in scenario.paths:
            route, _, query = path.partition("?")
            made.append(EnvironBuilder(path=route, query_string=query, headers=headers,
                                      environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_environ())
        return made

    def call(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        environ = dict(environ, **{"wsgi.input": io.BytesIO(b"")})
        status: list[str] = []
        body = b"".join(self.app.wsgi_app(environ, lambda s, h, e=None: status.append(s)))
        return int(status[0].split()[0]), body


def checked(server: InProcess, scenario: Scenario, environs: list[dict[str, Any]]) -> None:
    """Every input answered as the scenario expects (status and body), once."""
    expected = scenario.anonymous_status or 200
    for environ in environs[:WARMUP]:
        status, body = server.call(environ)
        if status != expected:
            raise BenchError(f"{scenario.name}: {environ['PATH_INFO']} answered {status}")
        problem = scenario.check(orjson.loads(body)) if expected == 200 else None
        if problem:
            raise BenchError(f"{scenario.name}: {problem}")


def count_calls(server: InProcess, environs: list[dict[str, Any]],
                requests: int) -> tuple[float, float]:
    """(Python calls, C calls) per request."""
    counts = {"call": 0, "c_call": 0}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in counts:
            counts[event] += 1

    sys.setprofile(profile)
    try:
        for i in range(requests):
            server.call(environs[i % len(environs)])
    finally:
        sys.setprofile(None)
    return counts["call"] / requests, counts["c_call"] / requests


def cpu_blocks(server: InProcess, runs: dict[str, list[dict[str, Any]]],
               requests: int) -> dict[str, float]:
    """CPU microseconds per request of each scenario: the median of BLOCKS blocks, the
    scenarios' blocks alternating, their order turning each time."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for block in range(BLOCKS):
        for name in names if block % 2 == 0 else reversed(names):
            environs = runs[name]
            start = time.process_time()
            for i in range(requests):
                server.call(environs[(block * requests + i) % len(environs)])
            times[name].append((time.process_time() - start) / requests * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(url: str, token: str, plan: dict[str, Scenario], requests: int) -> None:
    server = InProcess(url, token)
    try:
        _measure(server, plan, requests)
    finally:  # the app's own connections closed before a throwaway server stops
        NAMES.wait()
        close_listeners()
        reads.close_connections()


def _measure(server: InProcess, plan: dict[str, Scenario], requests: int) -> None:
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, scenario in plan.items():
        runs[name] = server.environs(scenario)
        # Twice, the name index's builds (a thread; SQL answers meanwhile) awaited after
        # each: counted, every answer comes the same way.
        for _ in range(2):
            checked(server, scenario, runs[name])
            NAMES.wait()
    calls = {name: count_calls(server, environs, requests) for name, environs in runs.items()}
    floor_calls = sum(calls[FLOOR])
    say(f"\n== function calls per request ({requests} requests each after {WARMUP} checked "
        "twice; Python + C; own = beyond the floor)")
    say(f"   {'scenario':22} {'Python':>8} {'C':>8} {'total':>8} {'own':>8}")
    for name, (python, c) in calls.items():
        own = python + c - floor_calls
        say(f"   {name:22} {python:8.0f} {c:8.0f} {python + c:8.0f} "
            f"{'' if name == FLOOR else f'{own:8.0f}'}")
    block = max(20, requests // 4)
    beside = {name: cpu_blocks(server, {name: runs[name], FLOOR: runs[FLOOR]}, block)
              for name in plan if name != FLOOR}
    say(f"\n== CPU per request, us (blocks of {block}, medians of {BLOCKS}; for "
        "orientation: the machine's noise moves these)")
    for name, medians in beside.items():
        say(f"   {name:22} {medians[name]:7.0f}  floor beside it {medians[FLOOR]:5.0f}  own "
            f"{medians[name] - medians[FLOOR]:6.0f}")


def prepared_register(a: argparse.Namespace, workdir: Path,
                      then: Callable[[str, dict[str, str]], None]) -> None:
    """Generate and import a register into a throwaway server, then call *then*."""
    log = workdir / "commands.log"
    export = workdir / f"sor_{a.entities}.xml"
    t0 = time.perf_counter()
    load_generator().generate(export, a.entities, seed=a.seed)
    say(f"== generated {a.entities} entities in {time.perf_counter() - t0:.1f} s")
    with postgres_server(workdir / "pg") as server:
        url = server.create_database("sorwork")
        env = dict(os.environ, SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench",
                   SOR_ENV="production")
        env.pop("FLASK_APP", None)
        cli = str(Path(sys.executable).with_name("sorregistry"))
        run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
        run_command([cli, "import-sor", "--quiet", str(export)], env, log, what="import-sor")
        shak = next(p for p in SHAK_FILES if p.exists())
        run_command([cli, "import-shak", str(shak)], env, log, what="import-shak")
        then(url, env)


def bench(a: argparse.Namespace) -> None:
    say(f"bench_own_work.py, {uptime()}")

    def run(url: str, env: dict[str, str]) -> None:
        inputs = choose_inputs(url, a.seed)
        cli = str(Path(sys.executable).with_name("sorregistry"))
        with tempfile.TemporaryDirectory() as scratch:
            out = run_command([cli, "create-client", f"own-work-{os.getpid()}", "--cvr",
                               inputs.municipality_cvr, "--role", "reporter"],
                              dict(env, SOR_DATABASE_URL=url), Path(scratch) / "log",
                              what="create-client")
        plan = {**scenarios(inputs),
                FLOOR: Scenario(FLOOR, ["/api/v1/resolve?code=123"], lambda body: None,
                                anonymous_status=401)}
        measure(url, out.strip().splitlines()[-1].strip(), plan, a.requests)

    if a.database_url:
        run(a.database_url, dict(os.environ, SOR_SECRET_KEY="bench", SOR_ENV="production"))
        return
    with tempfile.TemporaryDirectory(prefix="bench-own-work-") as workdir:
        prepared_register(a, Path(workdir), run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--requests", type=int, default=200,
                   help="requests counted per scenario (CPU blocks: a quarter of it)")
    p.add_argument("--database-url", help="a register imported before (SQLAlchemy URL)")
    a = p.parse_args(argv)
    terminate_on_signal()
    try:
        bench(a)
    except BenchError as exc:
        say(f"FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

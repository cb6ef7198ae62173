"""The first start timed: ``make run``'s path on an empty SQLite database, up to serving.

    python bench/bench_first_start.py [--runs 3]

Each run takes a new temporary directory and does what ``make run`` does after ``make
install``: ``sorregistry db upgrade``, ``sorregistry load-demo --if-empty`` (the demo
register), ``sorregistry tick``, then ``sorregistry run`` until its start page answers.
Printed per step: the wall time and the CPU time (user + system, the command and its
children, from ``getrusage``; ``run``'s up to its first answer, then it is stopped).
The machine's load (``uptime``) is printed beside the figures.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BenchError, free_port, required_command, say, uptime


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status < 500
    except OSError:
        return False
    finally:
        connection.close()


def one_run(cli: str, workdir: Path) -> list[tuple[str, float, float]]:
    env = dict(os.environ, SOR_ENV="development",
               SOR_DATABASE_URL=f"sqlite:///{workdir / 'sorregistry.db'}")
    env.pop("FLASK_APP", None)
    steps: list[tuple[str, float, float]] = []
    for args in (["db", "upgrade"], ["load-demo", "--if-empty"], ["tick"]):
        wall, cpu = time.perf_counter(), _cpu()
        done = subprocess.run([cli, *args], env=env, cwd=workdir, capture_output=True,
                              text=True, check=False)
        if done.returncode:
            raise BenchError(f"sorregistry {' '.join(args)} failed: {done.stderr[-2000:]}")
        steps.append((" ".join(args), time.perf_counter() - wall, _cpu() - cpu))
    port = free_port()
    wall, cpu = time.perf_counter(), _cpu()
    server = subprocess.Popen([cli, "run", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise BenchError("sorregistry run did not answer")
            time.sleep(0.02)
        served = time.perf_counter() - wall
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    steps.append(("run (to the first answer)", served, _cpu() - cpu))
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    cli = required_command("sorregistry")
    say(f"# first start: make run's path on an empty SQLite database, {a.runs} runs")
    say(f"  {uptime()}")
    totals: list[tuple[float, float]] = []
    for n in range(a.runs):
        workdir = Path(tempfile.mkdtemp(prefix="sor-first-start-"))
        try:
            steps = one_run(cli, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        wall, cpu = sum(s[1] for s in steps), sum(s[2] for s in steps)
        totals.append((wall, cpu))
        say(f"  run {n + 1}: " + "; ".join(f"{name} {w:.2f} s wall / {c:.2f} s CPU"
                                           for name, w, c in steps))
        say(f"         total {wall:.2f} s wall, {cpu:.2f} s CPU")
    walls, cpus = sorted(t[0] for t in totals), sorted(t[1] for t in totals)
    say(f"  median of {a.runs}: {walls[len(walls) // 2]:.2f} s wall, "
        f"{cpus[len(cpus) // 2]:.2f} s CPU")
    say(f"  {uptime()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        say(f"error: {error}")
        sys.exit(2)

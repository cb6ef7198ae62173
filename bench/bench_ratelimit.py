"""Rate limits under load: one client far over its limit, and the others stay fast.

A bounded load test on the loopback: a throwaway PostgreSQL with a generated register
(``generate_sor_export.py``, 20,000 entities by default) and the SHAK register,
``gunicorn -w 2 -k gthread --threads 4`` on 127.0.0.1 with rate limits counted in the
database (``sordb://``, the default storage), then for ``--seconds`` (60):

- **polite clients** (``--polite``, 8): each its own API client and keep-alive
  connection, asking computed lookups (``Cache-Control: no-cache``: name type-ahead,
  Privat by ydernummer, resolve) at a steady ``--polite-rate`` (4 requests/s each, 80 %
  of the limit), each request at its planned moment; timed from sending it to reading
  the last byte;
- **one greedy client** (a process of its own, on bare sockets, so that neither the
  polite clients' interpreter nor the load generator's own work is what is measured),
  asking the same lookups on ``--greedy-connections`` (2) connections at
  ``--greedy-rate`` (100 requests/s: 20 times its limit), ignoring Retry-After.

The limit per client is ``--limit`` (300 a minute, 5/s): the greedy client's allowed
share is then about one more polite client's. (The shipped default, 1,200 a minute, is
sized for a production server, where a client's 20/s is a small share; on this 2-core
loopback it would be more than the polite clients ask together, and the test would
measure that share rather than what the limiter does with the excess.)

The run is cut in phases of ``--phase-seconds`` (2), without and with the greedy client
by turns, so that the machine's drift (other processes, which come and go over seconds)
falls on both alike; a warm-up (6 s, not counted) lets the greedy client use up its
window first. It prints the polite clients' p50/p95/p99 without and with the greedy
client side by side, their ratio, the spread of the phases' own p95 (how much one
condition varies by itself), what the greedy client got (answers 200 and 429,
Retry-After) and the gunicorn workers' CPU in both conditions.

Target: the polite clients' p95 with the greedy client within 20 % of their p95 without
it, the greedy client refused, no polite request refused. Exit 0 when all hold, 2 when
one is missed, 1 when something fails. The server, gunicorn and the temporary directory
are removed in every case (``--keep`` keeps the directory).

    .venv/bin/python bench/bench_ratelimit.py [--entities 20000] [--seconds 60] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import queue
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_lookups import (
    PRIVAT,
    RESOLVE,
    SHAK_FILES,
    TYPEAHEAD,
    BenchError,
    Client,
    Gunicorn,
    choose_inputs,
    code_version,
    percentile,
    psycopg_connect,
    required_command,
    run_command,
    scenarios,
    temp_dir,
)
from common import load_generator, say, terminate_on_signal

# The project's packages: importable once common has put the project's root on sys.path.
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from tests.support.postgres import Server

TARGET_P95_RATIO = 1.20
WITHOUT, WITH = "without the greedy client", "with the greedy client"
WARMUP_SECONDS = 6.0
# The limit per API client for this test (see the docstring).
DEFAULT_LIMIT = "300 per minute"


@dataclass(frozen=True)
class Phase:
    name: str  # WITHOUT, WITH, or "warm-up" (not counted)
    start: float  # time.monotonic(), the same clock in every process on Linux
    end: float


def plan_phases(start: float, seconds: float, phase_seconds: float) -> list[Phase]:
    """A warm-up with the greedy client, then phases without and with it by turns."""
    phases = [Phase("warm-up", start, start + WARMUP_SECONDS)]
    at, n = start + WARMUP_SECONDS, 0
    while at < start + WARMUP_SECONDS + seconds - 1e-9:
        end = min(at + phase_seconds, start + WARMUP_SECONDS + seconds)
        phases.append(Phase(WITHOUT if n % 2 == 0 else WITH, at, end))
        at, n = end, n + 1
    return phases


def phase_at(phases: list[Phase], moment: float) -> tuple[int, str | None]:
    """The index and name of the phase *moment* falls in ((-1, None) outside them)."""
    for index, phase in enumerate(phases):
        if phase.start <= moment < phase.end:
            return index, phase.name
    return -1, None


# --- the clients ----------------------------------------------------------------------------


@dataclass
class Polite:
    """What the polite clients saw, per phase: latencies of answered requests, failures."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {WITHOUT: [], WITH: []})
    by_phase: dict[int, list[float]] = field(default_factory=dict)  # phase index -> latencies
    statuses: dict[str, Counter[int]] = field(
        default_factory=lambda: {WITHOUT: Counter(), WITH: Counter()})
    late: int = 0  # requests sent more than one interval behind their schedule
    failures: list[str] = field(default_factory=list)


def polite_client(port: int, token: str, paths: list[str], offset: int, rate: float,
                  phases: list[Phase], result: Polite, lock: threading.Lock) -> None:
    """One client at a steady *rate*: each request at its planned moment (not after the
    previous answer plus a pause), so a slow answer does not thin out the load."""
    client = Client(port, token, cold=True)
    interval = 1.0 / rate
    due = phases[0].start + (offset % 97) / 97 * interval  # spread the clients' ticks
    end = phases[-1].end
    i = offset
    try:
        while due < end:
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif -pause > interval:
                with lock:
                    result.late += 1
            sent = time.monotonic()
            try:
                status, _body, ms = client.get(paths[i % len(paths)])
            except OSError as exc:
                with lock:
                    result.failures.append(repr(exc))
                client.close()
                status, ms = 0, 0.0
            index, name = phase_at(phases, sent)
            if name in (WITHOUT, WITH):
                with lock:
                    result.statuses[name][status] += 1
                    if status == 200:
                        result.latencies[name].append(ms)
                        result.by_phase.setdefault(index, []).append(ms)
            i += 1
            due += interval
    finally:
        client.close()


class RawClient:
    """A keep-alive HTTP/1.1 client on a bare socket: the greedy client's requests cost
    its own process a few tens of microseconds each, so that what the polite clients
    feel is the service's work, not the load generator's (http.client costs several
    times more)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = (f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                     "Accept: application/json\r\nCache-Control: no-cache\r\n\r\n").encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def ask(self, path: str) -> tuple[int, str | None]:
        """(status, Retry-After) of one GET; (0, None) when it failed twice (the server
        closes a kept-alive connection after a while unused: one retry on a new one)."""
        for _attempt in (1, 2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                    self.buffer = b""
                self.sock.sendall(f"GET {path} HTTP/1.1\r\n".encode() + self.head)
                return self._answer()
            except OSError:
                self.close()
        return 0, None

    def _answer(self) -> tuple[int, str | None]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        self.buffer = self.buffer[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(lines[0].split()[1]), headers.get("retry-after")

    def _read(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def greedy_process(port: int, token: str, paths: list[str], connections: int, rate: float,
                   phases: list[Phase], results: multiprocessing.Queue[Any]) -> None:
    """The greedy client: *connections* threads asking as fast as *rate* allows, in the
    warm-up and the phases with it; puts (Counter of statuses per phase, Counter of
    Retry-After values) on *results*."""
    counts: dict[str, Counter[int]] = {"warm-up": Counter(), WITH: Counter()}
    retry_after: Counter[str] = Counter()
    lock = threading.Lock()
    interval = connections / rate

    def hammer(n: int) -> None:
        client = RawClient(port, token)
        i = n * 101
        try:
            for phase in phases:
                if phase.name == WITHOUT:
                    continue
                due = max(phase.start, time.monotonic())
                while due < phase.end:
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    status, wait = client.ask(paths[i % len(paths)])
                    with lock:
                        counts[phase.name][status] += 1
                        if wait is not None:
                            retry_after[wait] += 1
                    i += 1
                    due = max(due + interval, time.monotonic() - interval)
        finally:
            client.close()

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((counts, retry_after))


# --- the server's CPU -----------------------------------------------------------------------


def workers_cpu(master_pid: int) -> float:
    """CPU seconds (user + system) the gunicorn master's children (its workers) have used."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master_pid:  # field 4, ppid
                total += int(fields[11]) + int(fields[12])  # fields 14 and 15
    return total / ticks


def sample_cpu(master_pid: int, phases: list[Phase], out: dict[str, float]) -> None:
    """The workers' CPU seconds in each kind of phase, read at every phase boundary."""
    for phase in phases:
        time.sleep(max(0.0, phase.start - time.monotonic()))
        before = workers_cpu(master_pid)
        time.sleep(max(0.0, phase.end - time.monotonic()))
        out[phase.name] = out.get(phase.name, 0.0) + workers_cpu(master_pid) - before


# --- the run --------------------------------------------------------------------------------


def make_clients(url: str, count: int) -> list[str]:
    """*count* reporter API clients, made as ``create-client`` makes them; their tokens."""
    os.environ.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production")
    app = create_app()
    tokens = []
    with app.app_context():
        for n in range(count):
            _, token = create_client(db.session, f"bench {n}", cvr="29190909",
                                     roles=["reporter"])
            tokens.append(token)
        db.session.commit()
        db.engine.dispose()
    return tokens


def summary(values: list[float]) -> tuple[float, float, float]:
    return percentile(values, 50), percentile(values, 95), percentile(values, 99)


def bench(a: argparse.Namespace, workdir: Path) -> int:
    cli = required_command("sorregistry")
    required_command("gunicorn")
    log = workdir / "commands.log"
    export = workdir / f"sor_{a.entities}.xml"
    t0 = time.perf_counter()
    counts = load_generator().generate(export, a.entities, seed=a.seed)
    say(f"== generated {export.name}: {sum(counts.values())} entities {counts} in "
        f"{time.perf_counter() - t0:.1f} s")

    pg_base = workdir / "pg"
    server = None
    gunicorn: Gunicorn | None = None
    try:
        server = Server.start(pg_base, shared_buffers="256MB")
        url = server.create_database("sorbench")
        say(f"== PostgreSQL on 127.0.0.1:{server.port}: {url}")
        env = dict(os.environ)
        env.pop("FLASK_APP", None)
        env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                   SOR_RATELIMIT_ENABLED="1", SOR_RATELIMIT_API=a.limit)
        run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
        run_command([cli, "import-sor", "--quiet", str(export)], env, log, what="import-sor")
        shak = next(p for p in SHAK_FILES if p.exists())
        run_command([cli, "import-shak", str(shak)], env, log, what=f"import-shak {shak.name}")
        with psycopg_connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
        plan = scenarios(choose_inputs(url, a.seed))
        paths = [path for name in (TYPEAHEAD, PRIVAT, RESOLVE) for path in plan[name].paths]
        tokens = make_clients(url, a.polite + 1)
        greedy_token, polite_tokens = tokens[0], tokens[1:]
        if a.greedy_without_token:
            greedy_token = "made-up"

        gunicorn = Gunicorn(env, workdir / "gunicorn.log", workers=2, threads=a.threads)
        gunicorn.start()
        say(f"== gunicorn {' '.join(gunicorn.options)} on 127.0.0.1:{gunicorn.port}, "
            f"serving {code_version()}")
        say(f"   limit per API client: {a.limit} (counted in the database, sordb://)"
            + (", the greedy client by its address (no valid token): "
               f"{os.environ.get('SOR_RATELIMIT_ANONYMOUS', '120 per minute')}"
               if a.greedy_without_token else ""))
        with open("/proc/loadavg", encoding="ascii") as fh:
            say(f"   load average before the run: {' '.join(fh.read().split()[:3])}")

        phases = plan_phases(time.monotonic() + 2.0, a.seconds, a.phase_seconds)
        say(f"\n== {a.seconds:.0f} s: {a.polite} polite clients x {a.polite_rate:g} "
            f"requests/s; one greedy client on {a.greedy_connections} connections at up to "
            f"{a.greedy_rate:g} requests/s in every other phase of {a.phase_seconds:g} s "
            f"(after a {WARMUP_SECONDS:.0f} s warm-up with it)")
        say("   phases: " + ", ".join(
            f"{p.name.split()[0] if p.name != 'warm-up' else 'warm-up'} {p.end - p.start:.0f} s"
            for p in phases))
        results: multiprocessing.Queue[Any] = multiprocessing.get_context("fork").Queue()
        greedy = multiprocessing.get_context("fork").Process(
            target=greedy_process, args=(gunicorn.port, greedy_token, paths,
                                         a.greedy_connections, a.greedy_rate, phases,
                                         results))
        greedy.start()
        polite, lock = Polite(), threading.Lock()
        threads = [threading.Thread(target=polite_client, args=(
            gunicorn.port, token, paths, n * 37, a.polite_rate, phases, polite, lock))
            for n, token in enumerate(polite_tokens)]
        cpu: dict[str, float] = {}
        assert gunicorn.proc is not None
        threads.append(threading.Thread(target=sample_cpu,
                                         args=(gunicorn.proc.pid, phases, cpu)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            greedy_counts, retry_after = results.get(timeout=60)
        except queue.Empty as exc:
            raise BenchError("the greedy client did not report") from exc
        greedy.join(timeout=30)
        with open("/proc/loadavg", encoding="ascii") as fh:
            say(f"   load average after the run: {' '.join(fh.read().split()[:3])}")
        return report(a, polite, greedy_counts, retry_after, phases, cpu)
    finally:
        if gunicorn is not None:
            gunicorn.stop()
        if server is not None:
            server.stop()


def report(a: argparse.Namespace, polite: Polite, greedy: dict[str, Counter[int]],
           retry_after: Counter[str], phases: list[Phase], cpu: dict[str, float]) -> int:
    seconds = {name: sum(p.end - p.start for p in phases if p.name == name)
               for name in (WITHOUT, WITH)}
    say(f"\n== the polite clients ({a.polite} x {a.polite_rate:g} requests/s, computed "
        "lookups: type-ahead, Privat by ydernummer, resolve)")
    say(f"   {'':28} {'seconds':>7} {'answers':>8} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'refused/failed':>14}")
    p95: dict[str, float] = {}
    for name in (WITHOUT, WITH):
        values = polite.latencies[name]
        p50, p95[name], p99 = summary(values)
        bad = sum(n for status, n in polite.statuses[name].items() if status != 200)
        say(f"   {name:28} {seconds[name]:7.0f} {len(values):8d} {p50:7.2f} {p95[name]:7.2f} "
            f"{p99:7.2f} {max(values, default=0):7.1f} {bad:14d}")
    ratio = p95[WITH] / p95[WITHOUT] if p95[WITHOUT] else float("inf")
    say(f"   p95 with / without the greedy client: {ratio:.3f}")
    for name in (WITHOUT, WITH):
        each = sorted(summary(v)[1] for i, v in polite.by_phase.items()
                      if phases[i].name == name)
        if each:
            say(f"   p95 of each phase {name}: min {each[0]:.1f}, median "
                f"{each[len(each) // 2]:.1f}, max {each[-1]:.1f} ms ({len(each)} phases)")
    if polite.late:
        say(f"   ({polite.late} polite requests left late: the client machine fell behind)")

    served, counted = greedy[WITH][200], sum(greedy[WITH].values())
    refused = greedy[WITH][429]
    other = counted - served - refused
    say(f"\n== the greedy client ({a.greedy_connections} connections, up to "
        f"{a.greedy_rate:g} requests/s; limit {a.limit})")
    run_seconds = seconds[WITH] + seconds[WITHOUT]
    say(f"   in the phases with it ({seconds[WITH]:.0f} s): {counted} requests "
        f"({counted / seconds[WITH]:.0f}/s), {refused} answered 429, {served} answered 200 - "
        f"{served / run_seconds * 60:.0f} a minute over the {run_seconds:.0f} s run"
        + (f"; {other} failed" if other else ""))
    warm = greedy["warm-up"]
    say(f"   in the warm-up ({WARMUP_SECONDS:.0f} s): {sum(warm.values())} requests, "
        f"{warm[200]} answered 200, {warm[429]} answered 429")
    if retry_after:
        values = sorted(int(v) for v in retry_after)
        say(f"   Retry-After on the 429s: {values[0]}-{values[-1]} s")

    busy = {name: cpu.get(name, 0.0) / seconds[name] for name in (WITHOUT, WITH)}
    say(f"   the gunicorn workers' CPU: {busy[WITHOUT] * 100:.0f} % of a core without the "
        f"greedy client, {busy[WITH] * 100:.0f} % with it"
        + (f" - {(busy[WITH] - busy[WITHOUT]) * seconds[WITH] / counted * 1e6:.0f} µs "
           "a greedy request" if counted else ""))

    failures = sum(n for name in (WITHOUT, WITH)
                   for status, n in polite.statuses[name].items() if status != 200)
    targets = [
        (f"polite p95 with the greedy client ({p95[WITH]:.2f} ms) within "
         f"{(TARGET_P95_RATIO - 1) * 100:.0f} % of without it ({p95[WITHOUT]:.2f} ms): "
         f"ratio {ratio:.3f}", ratio <= TARGET_P95_RATIO),
        (f"the greedy client refused ({refused} answers 429)", refused > 0),
        (f"no polite request refused or failed ({failures})", failures == 0),
    ]
    say("\n== targets")
    for text, held in targets:
        say(f"  [{'ok' if held else 'MISSED'}] {text}")
    if polite.failures:
        say(f"  first failures: {polite.failures[:3]}")
    return 0 if all(held for _, held in targets) else 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60.0, help="the timed run (phases)")
    p.add_argument("--phase-seconds", type=float, default=2.0)
    p.add_argument("--polite", type=int, default=8, help="polite clients")
    p.add_argument("--polite-rate", type=float, default=4.0, help="requests/s each")
    p.add_argument("--greedy-connections", type=int, default=2)
    p.add_argument("--greedy-rate", type=float, default=100.0, help="requests/s at most")
    p.add_argument("--limit", default=DEFAULT_LIMIT, help="SOR_RATELIMIT_API for the server")
    p.add_argument("--greedy-without-token", action="store_true",
                   help="the greedy client sends a made-up token (counted by its address, "
                        "SOR_RATELIMIT_ANONYMOUS)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args(argv)
    if min(a.polite, a.greedy_connections) < 1 or min(a.polite_rate, a.greedy_rate) <= 0:
        p.error("clients, connections and rates must be positive")
    terminate_on_signal()
    try:
        with temp_dir(a.keep, "sorbench-ratelimit-") as workdir:
            os.chmod(workdir, 0o755)
            return bench(a, workdir)
    except BenchError as exc:
        say(f"\n[FAILED] {exc}")
        return 1
    except KeyboardInterrupt:
        say("\n[bench] interrupted: cleaned up")
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmark scripts share: output, the export generator, signals, ports,
finding the project's commands, running them, percentiles, gunicorn serving the app,
the machine's load, and a throwaway PostgreSQL server (the one the test suite uses,
tests/support/postgres.py)."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import postgres  # noqa: E402  (needs ROOT on the path)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def load_generator() -> ModuleType:
    """bench/generate_sor_export.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "generate_sor_export", HERE / "generate_sor_export.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def terminate_on_signal() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so that every ``finally`` (cleanup) runs."""

    def handler(signum, frame):
        print(f"\n[bench] signal {signum}: stopping, cleaning up", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # Ctrl-C is KeyboardInterrupt even when started in the background (where SIGINT
    # arrives ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_command(name: str) -> str | None:
    """The project's console command *name*: beside this Python, in .venv, or on PATH."""
    for candidate in (Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def stop_stray_postgres(base: Path) -> None:
    """Stop a server whose start was interrupted before ``Server.start`` returned."""
    data = base / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            postgres._as_postgres(
                [str(postgres._bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            ),
            check=False,
            capture_output=True,
        )


# PYTHONPATH for this tree with its change feed's entries switched off (bench/feed_off).
FEED_OFF_PATH = f"{ROOT / 'bench' / 'feed_off'}{os.pathsep}{ROOT}"


@contextlib.contextmanager
def postgres_server(
    base: Path, keep: bool = False, shared_buffers: str = "256MB", **settings: str
) -> Iterator[postgres.Server]:
    """A private PostgreSQL server in *base* (*settings*: more of its settings), stopped
    (and removed unless *keep*) after."""
    server = None
    try:
        server = postgres.Server.start(base, shared_buffers=shared_buffers, **settings)
        yield server
    finally:
        if server is not None:
            server.stop()
        else:
            stop_stray_postgres(base)
        if keep:
            say(f"kept the PostgreSQL cluster (stopped) in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


# --- moved from bench_lookups: commands, statistics, the service ---------------------------


class BenchError(RuntimeError):
    """Something the benchmark needs failed; the message says what."""


def required_command(name: str) -> str:
    found = find_command(name)
    if not found:
        raise BenchError(f"{name} is not installed (pip install -e . in the project's venv)")
    return found


def code_version() -> str:
    """The commit the service runs and the files that differ from it (the working tree is
    what gunicorn imports)."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                           check=False)
        return r.stdout if r.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return "(not a git checkout)"
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no",
                                        "--", "sorregistry", "hierarchy").splitlines()]
    return f"commit {commit}" + (f" + uncommitted changes to {', '.join(changed)}"
                                 if changed else "")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of *values*."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def run_command(command: list[str], env: dict[str, str], log: Path, timeout: float = 1800,
                what: str = "") -> str:
    """Run a command (output appended to *log*); return its stdout; raise when it fails."""
    t0 = time.perf_counter()
    r = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(command)}\n{r.stdout}{r.stderr}[exit {r.returncode}, "
                 f"{seconds:.1f} s]\n")
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-10:])
        raise BenchError(f"{what or ' '.join(command[1:3])} failed (exit {r.returncode}):\n"
                         f"{tail}\n(full output in {log})")
    say(f"   {what or ' '.join(command[1:3])}: {seconds:.1f} s")
    return r.stdout


# The project's threaded worker (gunicorn.conf.py's): gthread on a thread pool that wakes
# the thread idle last. A checkout from before it (--compare-with) runs gthread.
THREAD_WORKER = "sorregistry.serving.ThreadWorker"


class Gunicorn:
    """``gunicorn -w N -k CLASS [--threads T]`` in its own process group, stopped (the
    whole group) at the end. The class by default: the tree's threaded worker
    (``THREAD_WORKER``, or gthread in a tree without it)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2,
                 worker_class: str | None = None, threads: int = 4,
                 root: Path = ROOT) -> None:
        self.env = env
        self.root = root
        self.log = log
        self.workers = workers
        if worker_class is None:
            worker_class = (THREAD_WORKER if (root / "sorregistry" / "serving.py").exists()
                            else "gthread")
        self.worker_class = worker_class
        self.threads = threads
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def options(self) -> list[str]:
        options = ["-w", str(self.workers), "-k", self.worker_class]
        if self.worker_class in ("gthread", THREAD_WORKER):
            options += ["--threads", str(self.threads)]
        return options

    def start(self, timeout: float = 60.0) -> None:
        gunicorn = (str(self.root / ".venv" / "bin" / "gunicorn") if self.root != ROOT
                    else required_command("gunicorn"))
        command = [gunicorn, *self.options,
                   "-b", f"127.0.0.1:{self.port}",
                   "sorregistry:create_app()"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, env=self.env, cwd=self.root, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/openapi.json")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group of the gunicorn we started
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


def psycopg_connect(url: str, **kwargs: Any):

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                           dbname=u.database, **kwargs)


def worker_rss(master_pid: int) -> list[float]:
    """VmRSS (MB) of the gunicorn master's children (its workers)."""
    sizes = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines()
                          if ":" in line)
            if int(fields.get("PPid", "0")) == master_pid:
                sizes.append(int(fields["VmRSS"].split()[0]) / 1024)
    return sorted(sizes)


@contextlib.contextmanager
def temp_dir(keep: bool, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            say(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def uptime() -> str:
    """``uptime``'s line: the machine's load, to print beside the figures."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()

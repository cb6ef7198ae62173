"""What the benchmark scripts share: output, the export generator, signals, ports,
finding the project's commands, and a throwaway PostgreSQL server (the one the
test suite uses, tests/support/postgres.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

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


@contextlib.contextmanager
def postgres_server(
    base: Path, keep: bool = False, shared_buffers: str = "256MB"
) -> Iterator[postgres.Server]:
    """A private PostgreSQL server in *base*, stopped (and removed unless *keep*) after."""
    server = None
    try:
        server = postgres.Server.start(base, shared_buffers=shared_buffers)
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

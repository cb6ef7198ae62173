"""The app served by a real gunicorn with the repository's ``gunicorn.conf.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import _free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"


@dataclass
class Gunicorn:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, environment: dict[str, str], log: Path, *, workers: int = 2,
              threads: int = 2, timeout: float = 90.0) -> Gunicorn:
        """``gunicorn -c gunicorn.conf.py`` on a free port of 127.0.0.1, its standard error
        (the JSON log) in *log*; returns when /api/v1/health answers."""
        port = _free_port()
        environment = {**environment, "SOR_BIND": f"127.0.0.1:{port}",
                       "SOR_WORKERS": str(workers), "SOR_THREADS": str(threads)}
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(GUNICORN), "-c", str(ROOT / "gunicorn.conf.py"), "sorregistry:create_app()"],
                env=environment, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        server = cls(process, port, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}/api/v1/health", timeout=5):
                    return server
            except OSError:
                time.sleep(0.2)
        server.stop()
        raise RuntimeError(f"gunicorn did not answer in {timeout:.0f} s: {log.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop), then its exit status; the whole group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

"""A real Prometheus (Debian's ``prometheus`` package) on 127.0.0.1, scraping one target,
and a small client of its HTTP query API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import _free_port

BINARY = "/usr/bin/prometheus"


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, workdir: Path, target: str, token: str, interval: str = "1s",
              timeout: float = 60.0) -> Prometheus:
        """Scrape ``http://<target>/metrics`` every *interval* with *token* as bearer."""
        binary = shutil.which("prometheus") or BINARY
        if not Path(binary).exists():
            raise RuntimeError("prometheus not found: install Debian's prometheus package "
                               "(make system-packages does)")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "token").write_text(token)
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  scrape_timeout: {interval}\n"
            "scrape_configs:\n"
            "  - job_name: sor\n"
            "    metrics_path: /metrics\n"
            "    authorization:\n"
            f"      credentials_file: {workdir / 'token'}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        port = _free_port()
        log = workdir / "prometheus.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = cls(process, port, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                    return server
            except OSError:
                time.sleep(0.2)
        server.stop()
        raise RuntimeError(f"prometheus was not ready in {timeout:.0f} s")

    def query(self, expression: str) -> list[dict]:
        """The instant vector of *expression* (the API's ``data.result``)."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expression}))
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expression: str) -> float | None:
        """The one value of *expression*, or None when it has no sample (yet)."""
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str, predicate, timeout: float = 30.0) -> float:
        """Wait (bounded) until *expression*'s value satisfies *predicate*; return it."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expression)
            if value is not None and predicate(value):
                return value
            time.sleep(0.25)
        raise AssertionError(f"{expression} stayed {value} for {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

"""A PostgreSQL primary and a real streaming standby of it, for the replica tests.

The primary is ``tests.support.postgres.Server`` (initdb as the ``postgres`` user);
the standby is ``pg_basebackup -R`` of it (streaming replication over 127.0.0.1, the
primary_conninfo and standby.signal written by -R) started on a port of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.postgres import Server, _as_postgres, _bindir, _free_port


def _pg_ctl(datadir: Path, *arguments: str, check: bool = True) -> None:
    subprocess.run(_as_postgres([str(_bindir() / "pg_ctl"), "-D", str(datadir), *arguments]),
                   check=check, capture_output=True, timeout=120)


@dataclass
class Standby:
    port: int
    datadir: Path
    workdir: Path
    host: str = "127.0.0.1"

    @classmethod
    def of(cls, primary: Server, workdir: Path) -> Standby:
        """Base-backup *primary* into *workdir* and start it as its streaming standby."""
        workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chmod(workdir, 0o777)
            shutil.chown(workdir, "postgres", "postgres")
        datadir = workdir / "data"
        subprocess.run(
            _as_postgres([str(_bindir() / "pg_basebackup"), "-D", str(datadir), "-R",
                          "-X", "stream", "-c", "fast", "-h", primary.host,
                          "-p", str(primary.port), "-U", primary.user]),
            check=True, capture_output=True, timeout=120,
        )
        standby = cls(port=_free_port(), datadir=datadir, workdir=workdir)
        standby.start()
        return standby

    def start(self) -> None:
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.workdir} -c hot_standby=on")
        _pg_ctl(self.datadir, "-l", str(self.workdir / "server.log"), "-o", options, "-w",
                "-t", "60", "start")

    def connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, user="postgres",
                               dbname=database, autocommit=True)

    def promote(self) -> None:
        _pg_ctl(self.datadir, "-w", "-t", "30", "promote")

    def stop(self) -> None:
        _pg_ctl(self.datadir, "-m", "fast", "-w", "stop", check=False)


def stop_now(server: Server) -> None:
    """Stop *server* as a crash would (``pg_ctl stop -m immediate``: no shutdown
    checkpoint, connections cut)."""
    assert server.datadir is not None
    _pg_ctl(server.datadir, "-m", "immediate", "-w", "stop")


def wait_for(condition, timeout: float = 20.0, every: float = 0.05):
    """Poll *condition* until it returns something true; that value (fails after *timeout*)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {condition}")
        time.sleep(every)

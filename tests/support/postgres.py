"""A throwaway PostgreSQL server for the tests (and the benchmarks)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def _bindir() -> Path:
    configured = os.environ.get("SOR_PG_BINDIR")
    if configured:
        return Path(configured)
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin/initdb")), key=lambda p: int(p.parent.parent.name)
    ) if root.exists() else []
    if not versions:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql; "
            "install Debian's postgresql package (make test does this) or set "
            "SOR_TEST_BACKENDS=sqlite"
        )
    return versions[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unreachable_url(database: str = "sor") -> str:
    """A PostgreSQL URL on 127.0.0.1 where nothing listens: every connection is refused."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/{database}"


class RefusesListen:
    """A stand-in connection to a server that takes connections but refuses LISTEN, as a
    standby in recovery does ("cannot execute LISTEN during recovery")."""

    def execute(self, *_args: object, **_kwargs: object) -> None:
        raise psycopg.errors.FeatureNotSupported("cannot execute LISTEN during recovery")

    def close(self) -> None:
        pass


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Server:
    port: int
    host: str = "127.0.0.1"
    user: str = "postgres"
    datadir: Path | None = None
    base_url: str | None = None

    @classmethod
    def start(cls, workdir: Path, **settings: str) -> Server:
        bindir = _bindir()
        workdir.mkdir(parents=True, exist_ok=True)
        datadir = workdir / "data"
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # fails clearly when the user is missing
            os.chmod(workdir, 0o777)
            for parent in workdir.parents:
                if str(parent) in ("/", "/tmp"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            shutil.chown(workdir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                 "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
            ),
            check=True,
            capture_output=True,
        )
        port = _free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(workdir),
            "max_connections": "100",
            **settings,
        }
        opts = " ".join(f"-c {key}={value}" for key, value in options.items())
        subprocess.run(
            _as_postgres(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(workdir / "server.log"),
                 "-o", opts, "-w", "-t", "60", "start"]
            ),
            check=True,
            capture_output=True,
        )
        return cls(port=port, datadir=datadir)

    @classmethod
    def external(cls, url: str) -> Server:
        parsed = make_url(url)
        return cls(port=parsed.port or 5432, host=parsed.host or "127.0.0.1",
                   user=parsed.username or "postgres", base_url=url)

    def url(self, database: str) -> str:
        if self.base_url:
            return make_url(self.base_url).set(database=database).render_as_string(
                hide_password=False
            )
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str, autocommit: bool = True) -> psycopg.Connection:
        url = make_url(self.url(database))
        return psycopg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password,
            dbname=database, autocommit=autocommit,
        )

    def _admin(self) -> psycopg.Connection:
        return self.connect("postgres")

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new, empty database *name* (any old one dropped); or a copy of *template*,
        a database nobody is connected to."""
        copy = f' TEMPLATE "{template}"' if template else ""
        with self._admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self._admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.datadir is None:
            return
        subprocess.run(
            _as_postgres([str(_bindir() / "pg_ctl"), "-D", str(self.datadir), "-m", "fast",
                          "-w", "stop"]),
            check=False,
            capture_output=True,
        )

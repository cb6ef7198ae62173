"""``sorregistry backup FILE`` and ``sorregistry restore FILE``: the database in one file.

**PostgreSQL** (production): ``backup`` runs ``pg_dump --format=custom`` against the
configured database - a consistent snapshot taken while the service runs (pg_dump reads
in one repeatable-read transaction), compressed, and readable table by table
(``pg_restore --list FILE``). ``restore`` runs ``pg_restore`` into the configured
database, which must be empty (``createdb`` it first: restoring over a live register is
not something to do by accident), as one transaction (``--single-transaction
--exit-on-error``): it restores everything or nothing. The objects become the restoring
user's (``--no-owner --no-acl``), the service's own user in practice. Afterwards
``sorregistry db upgrade`` brings a dump of an older release up to this code (a no-op
for a dump of this one).

**SQLite** (the embedded default): SQLite's online backup API copies the file
consistently while the service runs; ``restore`` copies a backup into an empty (or
absent) database file the same way.

The password never appears on a command line (``PGPASSWORD`` in pg_dump's environment);
the file appears whole or not at all (written beside it, renamed at the end). The tools
come from ``SOR_PG_BINDIR``, else the ``PATH``, else the newest of Debian's
``/usr/lib/postgresql/*/bin``: pg_dump must be at least the server's major version.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url

from sorregistry.commands import fail
from sorregistry.extensions import db


class BackupError(RuntimeError):
    """A backup or restore cannot be done; says why in a line."""


def tool(name: str) -> str:
    """The path of PostgreSQL's *name* (pg_dump, pg_restore)."""
    configured = current_app.config.get("PG_BINDIR")
    if configured:
        path = Path(configured) / name
        if not path.exists():
            raise BackupError(f"{name} is not in SOR_PG_BINDIR={configured}")
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    if not versions:
        raise BackupError(f"{name} not found: install PostgreSQL's client programs "
                          "(Debian: postgresql-client) or set SOR_PG_BINDIR")
    return str(versions[-1])


def libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq connection URI of *url* without its password, and the environment that
    carries the password (``PGPASSWORD``)."""
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), environment


def _run(command: list[str], environment: dict[str, str]) -> None:
    done = subprocess.run(command, env=environment, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {done.returncode}"
        raise BackupError(f"{Path(command[0]).name} failed: {reason}")


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


def backup_postgresql(url: URL, target: Path) -> None:
    uri, environment = libpq_target(url)
    partial = _partial(target)
    try:
        _run([tool("pg_dump"), "--format=custom", "--file", str(partial), "--dbname", uri],
             environment)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def restore_postgresql(url: URL, source: Path) -> None:
    uri, environment = libpq_target(url)
    _run([tool("pg_restore"), "--single-transaction", "--exit-on-error", "--no-owner",
          "--no-acl", "--dbname", uri, str(source)], environment)


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(url.database)


def _copy_sqlite(source: str, target: str, *, read_only: bool = False) -> None:
    """SQLite's online backup of the database *source* into *target*."""
    origin = sqlite3.connect(f"file:{source}?mode=ro", uri=True) if read_only else \
        sqlite3.connect(source)
    try:
        copy = sqlite3.connect(target)
        try:
            origin.backup(copy)
        finally:
            copy.close()
    finally:
        origin.close()


def backup_sqlite(url: URL, target: Path) -> None:
    partial = _partial(target)
    partial.unlink(missing_ok=True)
    try:
        _copy_sqlite(str(_sqlite_path(url)), str(partial))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def restore_sqlite(url: URL, source: Path) -> None:
    _copy_sqlite(str(source), str(_sqlite_path(url)), read_only=True)


def _database_is_empty() -> bool:
    tables = inspect(db.engine).get_table_names()
    db.engine.dispose()  # pg_restore must not find a connection of ours in its way
    return not tables


def _url() -> URL:
    return make_url(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))


@click.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup(target: Path) -> None:
    """Write a backup of the database to TARGET (PostgreSQL: pg_dump's custom format)."""
    url = _url()
    if target.exists():
        fail(f"{target} exists: give a new file (a backup never overwrites one)")
    if not target.parent.is_dir():
        fail(f"{target.parent} is not a folder")
    try:
        if url.get_backend_name() == "postgresql":
            backup_postgresql(url, target)
        else:
            backup_sqlite(url, target)
    except (BackupError, OSError, sqlite3.Error) as exc:
        fail(exc)
    click.echo(f"Backed up {url.render_as_string()} to {target} "
               f"({target.stat().st_size:,} bytes).")


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def restore(source: Path) -> None:
    """Restore the backup SOURCE into the configured database, which must be empty."""
    url = _url()
    try:
        if not _database_is_empty():
            fail(f"{url.render_as_string()} is not empty: restore into a new database "
                 "(createdb), then point SOR_DATABASE_URL at it")
        if url.get_backend_name() == "postgresql":
            restore_postgresql(url, source)
        else:
            restore_sqlite(url, source)
    except (BackupError, OSError, sqlite3.Error) as exc:
        fail(exc)
    click.echo(f"Restored {source} into {url.render_as_string()}. Next: sorregistry db "
               "upgrade (nothing to do when the backup is of this release).")


def init_app(app: Flask) -> None:
    app.cli.add_command(backup)
    app.cli.add_command(restore)

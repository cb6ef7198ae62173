"""``sorregistry export``: the register to a file (or stdout), in one snapshot."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from hierarchy.export import FORMATS
from hierarchy.export.snapshot import Write, open_snapshot
from sorregistry.commands import fail
from sorregistry.extensions import db


@click.command("export")
@click.option("--format", "format_name", required=True, type=click.Choice(sorted(FORMATS)),
              help="The file's format.")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Only the organisations active on this day (YYYY-MM-DD); default: all, "
                   "closed and future ones too.")
@click.option("--all-history", is_flag=True,
              help="Every version of every organisation, one a line, with its valid and "
                   "recorded times (ndjson, csv; not with --on).")
@click.argument("out")
@with_appcontext
def export_command(format_name: str, on: datetime | None, all_history: bool, out: str) -> None:
    """Export the register to OUT ('-': standard output), from one consistent snapshot.

    The file names the change feed's position it was taken at, and the cursor to follow
    the feed from (/api/v1/changes?after=CURSOR). OUT is written whole or not at all.
    """
    chosen = FORMATS[format_name]
    if all_history and chosen.history_writer is None:
        fail(f"--all-history: the {chosen.name} format carries no history (ndjson and csv "
             "do; so do the change feed and /api/v1/organisations/{code}/history)")
    if all_history and on is not None:
        fail("--all-history holds every version, --on the organisations in force on a day: "
             "give one or the other")
    writer = chosen.history_writer if all_history and chosen.history_writer else chosen.writer
    target = None if out == "-" else Path(out)
    if target is not None and not target.parent.is_dir():
        fail(f"{out}: no such directory: {target.parent}")
    snapshot = open_snapshot(db.session, format=chosen.name, order=chosen.order,
                             on=on.date() if on else None, all_history=all_history)
    try:
        if target is None:
            writer(snapshot.lines(), sys.stdout.buffer.write, snapshot.info)
            sys.stdout.buffer.flush()
        else:
            _write_whole(target, lambda write: writer(snapshot.lines(), write, snapshot.info))
    except OSError as exc:
        fail(f"{out}: cannot write ({exc.strerror or exc}); nothing was written")
    finally:
        snapshot.close()
    info = snapshot.info
    versions = f" ({info.versions} versions)" if all_history else ""
    click.echo(f"Exported {info.count} organisations{versions} ({chosen.name}) at feed position "
               f"{info.position} to {out}; follow the feed with "
               f"/api/v1/changes?after={info.cursor}", err=target is None)


def _write_whole(target: Path, write_all: Callable[[Write], None]) -> None:
    """Write through a temporary file beside *target*, renamed over it when complete."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            write_all(file.write)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def register(app: Flask) -> None:
    app.cli.add_command(export_command)

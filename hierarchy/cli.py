"""Commands that load the register: ``import-sor`` and ``import-shak``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@click.command("import-sor")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--full",
    "full",
    is_flag=True,
    help="The files are the whole register: close every entity they do not contain. "
    "All files are then imported in one transaction.",
)
@click.option(
    "--no-close",
    is_flag=True,
    help="Only add and update; close nothing that is missing from the files.",
)
@click.option("--strict", is_flag=True, help="Refuse the file if any entity in it is invalid.")
@click.option("--actor", default=None, help="Who runs the import (recorded on every version).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def import_sor(
    files: tuple[str, ...], full: bool, no_close: bool, strict: bool, actor: str | None,
    quiet: bool,
) -> None:
    """Import SOR XML export FILES (v1.0.0 or v2.0.0, detected from the namespace).

    Re-importing updates in place and records a version only where something
    changed. Without --full, an entity missing from a file is closed when its
    owner (IE) is in the file; owners missing altogether are left alone.
    Each file is one transaction: a file that cannot be read changes nothing.
    """
    from hierarchy.sor_import import SorFileError, import_sor_files
    from sorregistry.extensions import db

    if full and no_close:
        _fail("--full and --no-close contradict each other")
    for name in files:
        if not os.path.isfile(name):
            _fail(f"{name}: no such file")
        if not os.access(name, os.R_OK):
            _fail(f"{name}: not readable")
    scope = "full" if full else ("none" if no_close else "owners")
    actor = actor or f"import-sor by {os.environ.get('USER', 'unknown')}"
    groups = [list(files)] if full else [[name] for name in files]
    for group in groups:
        size = sum(os.path.getsize(name) for name in group)
        label = ", ".join(Path(name).name for name in group)
        show = not quiet and sys.stderr.isatty()
        try:
            with click.progressbar(
                length=size, label=f"Reading {label}", file=sys.stderr, hidden=not show
            ) as bar:
                result = import_sor_files(
                    db.session, group, actor=actor, scope=scope, strict=strict,
                    progress=bar.update,
                )
            db.session.commit()
        except SorFileError as exc:
            db.session.rollback()
            _fail(f"{label}: {exc} — nothing was imported from this file")
        except OSError as exc:
            db.session.rollback()
            _fail(f"{label}: cannot read the file ({exc.strerror or exc}) — nothing was imported")
        click.echo(result.summary())


@click.command("import-shak")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--actor", default=None, help="Who runs the import.")
@with_appcontext
def import_shak(file: str, actor: str | None) -> None:
    """Import the SHAK register FILE (fixed-width SHAKCOMPLETE.TXT, ISO-8859-1).

    The file is the complete register with its history: it replaces what the
    service holds, in one transaction; a file that cannot be read changes nothing.
    """
    from hierarchy.shak_format import ShakFormatError
    from hierarchy.shak_import import import_shak_file
    from sorregistry.extensions import db

    if not os.path.isfile(file):
        _fail(f"{file}: no such file")
    actor = actor or f"import-shak by {os.environ.get('USER', 'unknown')}"
    try:
        result = import_shak_file(db.session, file, actor=actor)
        db.session.commit()
    except ShakFormatError as exc:
        db.session.rollback()
        _fail(f"{Path(file).name}: {exc} — nothing was imported")
    except OSError as exc:
        db.session.rollback()
        _fail(f"{Path(file).name}: cannot read the file ({exc.strerror or exc}) — "
              "nothing was imported")
    click.echo(result.summary())


def register(app: Flask) -> None:
    app.cli.add_command(import_sor)
    app.cli.add_command(import_shak)

"""Commands that load the register: ``import-sor`` and ``import-shak`` (``load-demo``, which
also makes demo logins, is the composition root's: ``sorregistry.cli``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from hierarchy.import_close import MassWithdrawalError
from hierarchy.shak_format import ShakFormatError
from hierarchy.shak_import import import_shak_file
from hierarchy.sor_import import Scope, SorFileError, import_sor_files
from sorregistry import audit
from sorregistry.commands import bulk_work, fail
from sorregistry.extensions import db


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
@click.option(
    "--allow-mass-withdrawal",
    is_flag=True,
    help="With --full: close what the files leave out even when it is more than "
    "SOR_MAX_WITHDRAWAL_SHARE (default 0.10) of the open entities, or everything.",
)
@click.option("--actor", default=None, help="Who runs the import (recorded on every version).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def import_sor(
    files: tuple[str, ...], full: bool, no_close: bool, strict: bool,
    allow_mass_withdrawal: bool, actor: str | None, quiet: bool,
) -> None:
    """Import SOR XML export FILES (v1.0.0 or v2.0.0, detected from the namespace).

    Re-importing updates in place and records a version only where something
    changed. Without --full, an entity missing from a file is closed when its
    owner (IE) is in the file; owners missing altogether are left alone.
    Each file is one transaction: a file that cannot be read changes nothing.
    With --full, files that hold no entity or would close more than
    SOR_MAX_WITHDRAWAL_SHARE of the open entities are refused (exit 1, nothing
    changed) unless --allow-mass-withdrawal is given.
    """
    if full and no_close:
        fail("--full and --no-close contradict each other")
    for name in files:
        if not os.path.isfile(name):
            fail(f"{name}: no such file")
        if not os.access(name, os.R_OK):
            fail(f"{name}: not readable")
    scope: Scope = "full" if full else ("none" if no_close else "owners")
    actor = actor or f"import-sor by {os.environ.get('USER', 'unknown')}"
    groups = [list(files)] if full else [[name] for name in files]
    share = _withdrawal_share(allow_mass_withdrawal)
    for group in groups:
        size = sum(os.path.getsize(name) for name in group)
        label = ", ".join(Path(name).name for name in group)
        show = not quiet and sys.stderr.isatty()
        try:
            with bulk_work(), click.progressbar(
                length=size, label=f"Reading {label}", file=sys.stderr, hidden=not show
            ) as bar:
                result = import_sor_files(
                    db.session, group, actor=actor, scope=scope, strict=strict,
                    progress=bar.update, max_withdrawal_share=share,
                )
            _audit_import(label, result.summary(), allow_mass_withdrawal)
            db.session.commit()
        except MassWithdrawalError as exc:
            fail(f"{label}: {exc}; nothing was imported")
        except SorFileError as exc:
            fail(f"{label}: {exc} — nothing was imported from this file")
        except OSError as exc:
            fail(f"{label}: cannot read the file ({exc.strerror or exc}) — nothing was imported")
        click.echo(result.summary())


@click.command("import-shak")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--actor", default=None, help="Who runs the import.")
@click.option(
    "--allow-mass-withdrawal",
    is_flag=True,
    help="Import even an empty file, or one that withdraws more than "
    "SOR_MAX_WITHDRAWAL_SHARE (default 0.10) of the records held.",
)
@with_appcontext
def import_shak(file: str, actor: str | None, allow_mass_withdrawal: bool) -> None:
    """Import the SHAK register FILE (fixed-width SHAKCOMPLETE.TXT, ISO-8859-1).

    The file is the complete register with its history: it replaces what the
    service holds, in one transaction; a file that cannot be read changes nothing.
    An empty file, or one that would withdraw more than SOR_MAX_WITHDRAWAL_SHARE
    of the records held (an excerpt), is refused (exit 1, nothing changed) unless
    --allow-mass-withdrawal is given.
    """
    if not os.path.isfile(file):
        fail(f"{file}: no such file")
    actor = actor or f"import-shak by {os.environ.get('USER', 'unknown')}"
    try:
        result = import_shak_file(db.session, file, actor=actor,
                                  max_withdrawal_share=_withdrawal_share(allow_mass_withdrawal))
        _audit_import(Path(file).name, result.summary(), allow_mass_withdrawal)
        db.session.commit()
    except MassWithdrawalError as exc:
        fail(f"{Path(file).name}: {exc}; nothing was imported")
    except ShakFormatError as exc:
        fail(f"{Path(file).name}: {exc} — nothing was imported")
    except OSError as exc:
        fail(f"{Path(file).name}: cannot read the file ({exc.strerror or exc}) — "
              "nothing was imported")
    click.echo(result.summary())


def _audit_import(label: str, summary: str, allowed: bool) -> None:
    """The import in the audit log, in its own transaction: who ran it (the system user),
    which files, what it did, and whether a mass withdrawal was allowed."""
    audit.record(db.session, "register_imported", audit.Actor.system(), target=label[:120],
                 details={"summary": summary[:4000], "allow_mass_withdrawal": allowed})


def _withdrawal_share(allowed: bool) -> float | None:
    """The share of the register an import may withdraw; None when the operator allows all."""
    if allowed:
        return None
    share: float = current_app.config["MAX_WITHDRAWAL_SHARE"]
    return share


def register(app: Flask) -> None:
    app.cli.add_command(import_sor)
    app.cli.add_command(import_shak)

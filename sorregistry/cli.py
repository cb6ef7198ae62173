"""The ``sorregistry`` command: Flask's CLI around ``create_app`` plus our commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from importlib import resources
from typing import Any, NoReturn, TypeVar

import click
from flask.cli import FlaskGroup, with_appcontext

T = TypeVar("T")


def _create_app():  # FlaskGroup calls this without arguments
    from sorregistry.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app)
def main() -> None:
    """The SOR registry service."""


def format_time(moment: datetime | None) -> str:
    """A timestamp for a table: to the minute, in UTC like the database, ``-`` when unset."""
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print aligned columns of plain text: no borders or colour, so that a listing
    reads the same in a terminal, a pasted ticket and a log."""
    lines = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def fail(exc: Exception) -> NoReturn:
    """Undo the command's changes, say why on stderr and exit 1."""
    from sorregistry.extensions import db

    db.session.rollback()
    click.echo(f"Error: {exc}", err=True)
    sys.exit(1)


def echo_listing(items: Sequence[T], *, show_all: bool, shown_by_default: Callable[[T], bool],
                 headers: Sequence[str], row: Callable[[T], Sequence[str]], nothing: str,
                 hidden: str) -> None:
    """A table of *items*, those not *shown_by_default* (revoked, inactive) only with
    ``--all``, and a line saying how many were left out."""
    shown = list(items) if show_all else [item for item in items if shown_by_default(item)]
    if shown:
        echo_table(headers, [row(item) for item in shown])
    else:
        click.echo(nothing)
    left_out = len(items) - len(shown)
    if left_out:
        click.echo(f"({left_out} {hidden} not shown; --all lists them.)")


def _role_option() -> Callable[[Any], Any]:
    from sorregistry.auth import ROLES

    return click.option("--role", "roles", multiple=True, required=True,
                        type=click.Choice(list(ROLES)),
                        help="Repeatable: " + ", ".join(ROLES) + ".")


# --role, the same for API clients (create-client) and people (create-user).
ROLE_OPTION = _role_option()


@click.command("load-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the register holds data.")
@with_appcontext
def load_demo(if_empty: bool) -> None:
    """Load the demo register shipped with the project (real SOR and SHAK extracts)."""
    from hierarchy import service
    from hierarchy.shak_import import import_shak_file
    from hierarchy.sor_import import import_sor_files
    from sorregistry.extensions import db

    if if_empty and not service.register_is_empty(db.session):
        click.echo("The register holds data; demo data not loaded.")
        return
    demo = resources.files("hierarchy") / "demo"
    sor_files = sorted(
        (entry for entry in demo.iterdir() if entry.name.endswith(".xml")),
        key=lambda entry: entry.name,
    )
    with resources.as_file(demo) as folder:
        paths = [folder / entry.name for entry in sor_files]
        result = import_sor_files(db.session, paths, actor="demo")
        db.session.commit()
        click.echo(result.summary())
        shak = folder / "SHAK_DEMO.TXT"
        if shak.exists():
            shak_result = import_shak_file(db.session, shak, actor="demo")
            db.session.commit()
            click.echo(shak_result.summary())


@click.command("create-client")
@click.argument("name")
@click.option("--cvr", required=True, help="The client's CVR number (used by the Mit CVR lookups).")
@ROLE_OPTION
@click.option("--municipality-code", default=None, help="Kommunekode of a municipality client.")
@with_appcontext
def create_client(name: str, cvr: str, roles: tuple[str, ...], municipality_code: str | None):
    """Make an API client and print its bearer token once, alone on the last line."""
    from sorregistry.auth import ClientError
    from sorregistry.auth import create_client as make_client
    from sorregistry.extensions import db

    try:
        client, token = make_client(
            db.session, name, cvr=cvr, roles=list(roles), municipality_code=municipality_code
        )
        db.session.commit()
    except ClientError as exc:
        fail(exc)
    click.echo(
        f"Client {client.id} '{client.name}' (CVR {client.cvr}, roles {', '.join(client.roles)}"
        + (f", kommunekode {client.municipality_code}" if client.municipality_code else "")
        + "). Its token is shown this once; keep it secret:"
    )
    click.echo(token)


@click.command("list-clients")
@click.option("--all", "all_", is_flag=True, help="Show revoked clients too.")
@with_appcontext
def list_clients(all_: bool) -> None:
    """List the API clients, revoked ones with --all (times in UTC). Tokens are never
    shown: only their digests are stored, and those are not printed either."""
    from sorregistry.auth import list_clients as all_clients
    from sorregistry.extensions import db

    echo_listing(
        all_clients(db.session), show_all=all_,
        shown_by_default=lambda client: client.revoked_at is None,
        headers=["id", "name", "CVR", "roles", "kommunekode", "created", "revoked"],
        row=lambda c: [str(c.id), c.name, c.cvr, ",".join(c.roles), c.municipality_code or "-",
                       format_time(c.created_at), format_time(c.revoked_at)],
        nothing="No API clients.", hidden="revoked",
    )


@click.command("revoke-client")
@click.argument("client_id", metavar="ID", type=int)
@with_appcontext
def revoke_client(client_id: int) -> None:
    """Revoke the API client ID (see list-clients): its token is refused from now on.

    A running server's workers remember a token they have seen for up to a
    minute, so a revoked token may still work that long; restart the server if
    it must stop at once. Revoking cannot be undone: make a new client instead.
    """
    from sorregistry.auth import _IDENTITY_SECONDS, ClientError
    from sorregistry.auth import revoke_client as revoke
    from sorregistry.extensions import db

    try:
        client = revoke(db.session, client_id)
        db.session.commit()
    except ClientError as exc:
        fail(exc)
    click.echo(
        f"Client {client.id} '{client.name}' (CVR {client.cvr}) revoked at "
        f"{format_time(client.revoked_at)} UTC. A running server may still accept its "
        f"token for up to {_IDENTITY_SECONDS:.0f} seconds (each worker caches a token's "
        "identity that long); restart it if the token must stop at once."
    )

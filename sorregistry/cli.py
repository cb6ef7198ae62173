"""The ``sorregistry`` command: Flask's CLI around ``create_app`` plus our commands."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib import resources

import click
from flask.cli import FlaskGroup, with_appcontext


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
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(["reporter", "municipality", "sds"]),
    help="Repeatable: reporter, municipality, sds.",
)
@click.option("--municipality-code", default=None, help="Kommunekode of a municipality client.")
@with_appcontext
def create_client(name: str, cvr: str, roles: tuple[str, ...], municipality_code: str | None):
    """Make an API client and print its bearer token once, alone on the last line."""
    import sys

    from sorregistry.auth import ClientError
    from sorregistry.auth import create_client as make_client
    from sorregistry.extensions import db

    try:
        client, token = make_client(
            db.session, name, cvr=cvr, roles=list(roles), municipality_code=municipality_code
        )
        db.session.commit()
    except ClientError as exc:
        db.session.rollback()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
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

    clients = all_clients(db.session)
    shown = clients if all_ else [client for client in clients if client.revoked_at is None]
    if shown:
        echo_table(
            ["id", "name", "CVR", "roles", "kommunekode", "created", "revoked"],
            [
                [str(c.id), c.name, c.cvr, ",".join(c.roles), c.municipality_code or "-",
                 format_time(c.created_at), format_time(c.revoked_at)]
                for c in shown
            ],
        )
    else:
        click.echo("No API clients.")
    hidden = len(clients) - len(shown)
    if hidden:
        click.echo(f"({hidden} revoked not shown; --all lists them.)")


@click.command("revoke-client")
@click.argument("client_id", metavar="ID", type=int)
@with_appcontext
def revoke_client(client_id: int) -> None:
    """Revoke the API client ID (see list-clients): its token is refused from now on.

    A running server's workers remember a token they have seen for up to a
    minute, so a revoked token may still work that long; restart the server if
    it must stop at once. Revoking cannot be undone: make a new client instead.
    """
    import sys

    from sorregistry.auth import _IDENTITY_SECONDS, ClientError
    from sorregistry.auth import revoke_client as revoke
    from sorregistry.extensions import db

    try:
        client = revoke(db.session, client_id)
        db.session.commit()
    except ClientError as exc:
        db.session.rollback()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"Client {client.id} '{client.name}' (CVR {client.cvr}) revoked at "
        f"{format_time(client.revoked_at)} UTC. A running server may still accept its "
        f"token for up to {_IDENTITY_SECONDS:.0f} seconds (each worker caches a token's "
        "identity that long); restart it if the token must stop at once."
    )

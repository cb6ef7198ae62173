"""The ``sorregistry`` command: Flask's CLI around ``create_app`` plus our commands."""

from __future__ import annotations

from importlib import resources

import click
from flask.cli import FlaskGroup, with_appcontext


def _create_app():  # FlaskGroup calls this without arguments
    from sorregistry.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app)
def main() -> None:
    """The SOR registry service."""


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

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

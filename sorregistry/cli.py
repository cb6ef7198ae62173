"""The ``sorregistry`` command: Flask's CLI around ``create_app``, with every feature's
commands (each feature adds its own in its ``init_app``)."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from sorregistry.app import create_app


@click.group(cls=FlaskGroup, create_app=lambda: create_app())
def main() -> None:
    """The SOR registry service."""

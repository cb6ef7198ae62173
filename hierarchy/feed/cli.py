"""``sorregistry tick``: the feed's daily job (cron, a systemd timer, ``make run``)."""

from __future__ import annotations

from datetime import date, datetime

import click
from flask import Flask
from flask.cli import with_appcontext

from hierarchy.feed.tick import tick
from sorregistry.database import write_step
from sorregistry.extensions import db


@click.command("tick")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day to tick through (YYYY-MM-DD); default today.")
@with_appcontext
def tick_command(on: datetime | None) -> None:
    """Put the organisations whose valid_from or valid_to has arrived into the change
    feed again (took_effect). Idempotent: safe to run several times a day, from several
    hosts at once."""
    day = on.date() if on is not None else date.today()
    with write_step(db.session()) as session:
        result = tick(session, day)
    click.echo(result.summary())


def register(app: Flask) -> None:
    app.cli.add_command(tick_command)

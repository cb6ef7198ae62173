"""The ``sorregistry`` command: Flask's CLI around ``create_app``, with every feature's
commands (each feature adds its own in its ``init_app``).

Commands explain themselves. ``--help`` works with no configuration at all: when the
settings cannot make the app, help is shown from an app made of harmless placeholders
(an in-memory database that no command ever runs against). Anything else ends on a
setting that is missing or wrong - ``SOR_SECRET_KEY`` unset outside development, a
malformed ``SOR_DATABASE_URL``, a database that does not answer - with one line on
stderr naming the setting and what to do, and exit status 2 (click's status for a usage
error: the command was not run as it should be), never a traceback.

``load-demo`` lives here because the first start spans two features: the register's
demo (``hierarchy.demo``) and the demo logins (``sorregistry.accounts.demo``).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from hierarchy import demo_register
from sorregistry.accounts import demo as demo_logins
from sorregistry.app import create_app
from sorregistry.config import ConfigurationError
from sorregistry.extensions import db

# What makes an app for ``--help`` only: never used to run a command.
HELP_ONLY = {"SECRET_KEY": "help-only", "SQLALCHEMY_DATABASE_URI": "sqlite://",
             "SOR_ENV": "production"}
USAGE_ERROR = 2


def stop(message: str) -> NoReturn:
    """End the command with *message* on stderr, one line, exit status 2."""
    click.echo("Error: " + " ".join(message.split()), err=True)
    sys.exit(USAGE_ERROR)


def _asks_only_for_help() -> bool:
    arguments = sys.argv[1:]
    return not arguments or "--help" in arguments


def _load_app() -> Flask:
    try:
        return create_app()
    except ConfigurationError as exc:
        if _asks_only_for_help():
            return create_app(HELP_ONLY)
        stop(str(exc))


def _database_shown() -> str:
    """The configured database URL with its password hidden."""
    try:
        url = make_url(str(current_app.config["SQLALCHEMY_DATABASE_URI"]))
    except (ArgumentError, RuntimeError, KeyError):
        return "SOR_DATABASE_URL"
    return url.render_as_string(hide_password=True)


def _database_problem(exc: DBAPIError) -> str:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if "no such table" in reason or "does not exist" in reason and "relation" in reason:
        return (f"the database {_database_shown()} has no tables yet ({reason}): "
                "run `sorregistry db upgrade` first")
    return (f"the database in SOR_DATABASE_URL ({_database_shown()}) does not answer "
            f"({reason}): start it, or set SOR_DATABASE_URL to one that answers")


class SorGroup(FlaskGroup):
    """Flask's group, ending on an unusable database with one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                stop(_database_problem(exc))
            raise
        except ConfigurationError as exc:  # raised by a feature when a command needs it
            stop(str(exc))


@click.group(cls=SorGroup, create_app=lambda: _load_app())
def main() -> None:
    """The SOR registry service.

    Settings are SOR_ environment variables (README, "Settings"). For a local
    run: SOR_ENV=development (what `make run` sets).
    """


@main.command("load-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the register holds data.")
@with_appcontext
def load_demo(if_empty: bool) -> None:
    """Load the demo register and make three demo logins (development only).

    A few thousand organisations of every ownership (the project's seeded
    generator, with the real SOR samples), the SHAK demo, and the logins of an
    SDS employee, a municipality and a reporter with random passwords, printed
    once. Refused unless SOR_ENV=development.
    """
    if current_app.config.get("SOR_ENV") != "development":
        stop("load-demo loads demo data and demo logins, for development only: "
             "it runs only with SOR_ENV=development")
    if if_empty and not demo_register.register_is_empty(db.session):
        click.echo("The register holds data; demo data not loaded.")
        return
    summary = demo_register.load(db.session)
    db.session.commit()
    click.echo(summary.text())
    town = summary.municipality
    logins = demo_logins.create_logins(
        db.session, municipality_code=town.code if town else None,
        municipality_name=town.name if town else None, municipality_cvr=town.cvr if town else None,
        reporter_cvr=summary.reporter_cvr)
    db.session.commit()
    click.echo("Demo logins (shown this once; the passwords are not stored readably):")
    for login in logins:
        click.echo(f"  {login.role:<12}  {login.email:<28}  {login.password}")

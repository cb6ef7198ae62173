"""The applications commands: ``add-contact`` and ``fetch-mail``."""

from __future__ import annotations

import threading

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from applications.mail_imap import ImapSettings, MailIntakeError
from applications.mail_intake import fetch_mail as fetch
from applications.mail_service import ContactError
from applications.mail_service import add_contact as add
from applications.mail_trust import SenderPolicy, TrustConfigurationError
from hierarchy.codes import municipalities
from sorregistry.commands import fail
from sorregistry.extensions import db
from sorregistry.queue import stopping_on_signals


@click.command("add-contact")
@click.argument("municipality_code", metavar="KOMMUNEKODE")
@click.argument("email")
@click.option("--name", default=None, help="Who the address belongs to.")
@with_appcontext
def add_contact(municipality_code: str, email: str, name: str | None) -> None:
    """Let EMAIL send applications by mail for the municipality KOMMUNEKODE."""
    try:
        contact = add(db.session, municipality_code, email, name=name)
        db.session.commit()
    except ContactError as exc:
        fail(exc)
    click.echo(
        f"{contact.email} may now apply by mail for {contact.municipality_code} "
        f"{municipalities()[contact.municipality_code]}."
    )


@click.command("fetch-mail")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None,
    help="Read at most this many new messages in this run.",
)
@with_appcontext
def fetch_mail(limit: int | None) -> None:
    """Read new mails in the SOR mailbox into applications and triage items.

    Each message is recorded once (its Message-ID) and committed before it is
    flagged \\Seen, so a run that is stopped can simply be run again. SIGTERM or
    SIGINT ends the run after the mail under way (a second one at once).
    """
    config = current_app.config
    stop = threading.Event()
    try:
        settings = ImapSettings.from_config(config)
        senders = SenderPolicy.from_config(config)
        with stopping_on_signals(stop):
            result = fetch(
                db.session, settings, max_size=int(config["IMAP_MAX_MESSAGE_SIZE"]),
                senders=senders, max_per_sender_hour=int(config["MAIL_MAX_PER_SENDER_HOUR"]),
                limit=limit, echo=click.echo, should_stop=stop.is_set,
            )
    except TrustConfigurationError as exc:
        fail(exc)
    except MailIntakeError as exc:
        if exc.result is not None and exc.result.lines:
            click.echo(f"Before the error: {exc.result.summary()}")
        fail(exc)
    click.echo(result.summary())


def register(app: Flask) -> None:
    """Add the applications commands to the `sorregistry` group."""
    app.cli.add_command(add_contact)
    app.cli.add_command(fetch_mail)

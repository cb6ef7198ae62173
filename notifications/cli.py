"""The notifications commands: ``send-notifications``, a thin wrapper around the worker."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from notifications.sender import RunResult
from notifications.worker import Worker, WorkerError
from sorregistry.commands import fail, warn, worker_options
from sorregistry.extensions import db


@click.command("send-notifications")
@worker_options("mails", "Mails claimed at a time (their claims are renewed after each mail).",
                30.0, "Run as a daemon: send what is due every --interval seconds until "
                "stopped.")
@with_appcontext
def send_notifications(
    limit: int | None, batch: int, name: str | None, loop: bool, interval: float
) -> None:
    """Send the mails that are due in the outbox.

    Safe from cron and as several workers at once: each mail is claimed before
    it is sent and recorded when sent; a failed mail is retried with an
    exponential backoff and given up after SOR_NOTIFY_MAX_ATTEMPTS attempts.
    SIGTERM or SIGINT finishes the mail being sent, puts the rest back and stops.
    Exits 1 when the SMTP server cannot be reached or a mail failed (nothing is
    lost: it stays queued); 0 otherwise.
    """
    try:
        worker = Worker.from_app(current_app, db.session, name=name, batch=batch, limit=limit,
                                 report=warn)
    except WorkerError as exc:
        fail(exc)
    if worker.mailer.state.suppress:
        warn("Note: MAIL_SUPPRESS_SEND is on (testing): mails are recorded as sent "
              "but not sent.")
    with worker.stopping_on_signals():
        if loop:
            worker.serve(interval, on_result=_summarise_busy_round,
                         on_error=lambda exc: warn(f"Error: {exc}"))
            return
        try:
            result = worker.run_once()
        except WorkerError as exc:
            fail(exc)
    _summarise(result)
    if not result.ok:
        sys.exit(1)


def _summarise_busy_round(result: RunResult) -> None:
    """A daemon's round: a summary when it did something, silence when idle."""
    if result.sent or result.retrying or result.failed or result.released:
        _summarise(result)


def _summarise(result: RunResult) -> None:
    line = f"Sent {result.sent} mail{'s' if result.sent != 1 else ''}"
    if result.retrying:
        line += f"; {result.retrying} to retry later"
    if result.failed:
        line += f"; {result.failed} given up (status failed)"
    if result.lost_claims:
        line += f"; {result.lost_claims} whose claim had expired"
    if result.released:
        line += f"; {result.released} put back in the queue (stopped)"
    click.echo(line + ".")
    if result.unavailable:
        when = (
            f"; the next attempt is due after {result.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
            if result.next_attempt_at else ""
        )
        warn(f"Error: {result.unavailable}. Nothing was lost: the mails stay in the "
              f"outbox{when}.")


def register(app: Flask) -> None:
    """Add the notifications commands to the `sorregistry` group."""
    app.cli.add_command(send_notifications)

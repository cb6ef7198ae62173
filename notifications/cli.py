"""The notifications commands: ``send-notifications``."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


@click.command("send-notifications")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Try at most this many mails in this run (default: all that are due).")
@click.option("--batch", type=click.IntRange(min=1, max=500), default=10, show_default=True,
              help="Mails claimed at a time (their claims are renewed after each mail).")
@click.option("--worker", default=None,
              help="This worker's name in the outbox (default: host:pid).")
@click.option("--loop", is_flag=True,
              help="Run as a daemon: send what is due every --interval seconds until stopped.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds between rounds with --loop.")
@with_appcontext
def send_notifications(
    limit: int | None, batch: int, worker: str | None, loop: bool, interval: float
) -> None:
    """Send the mails that are due in the outbox.

    Safe from cron and as several workers at once: each mail is claimed before
    it is sent and recorded when sent; a failed mail is retried with an
    exponential backoff and given up after SOR_NOTIFY_MAX_ATTEMPTS attempts.
    Exits 1 when the SMTP server cannot be reached or a mail failed (nothing is
    lost: it stays queued); 0 otherwise.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from notifications.sender import Mailer, send_due
    from notifications.service import Policy
    from sorregistry.extensions import db

    config = current_app.config
    state = current_app.extensions["mail"]
    sender = config.get("MAIL_DEFAULT_SENDER")
    if not sender:
        _fail("no sender address: set SOR_MAIL_DEFAULT_SENDER")
    worker = (worker or f"{socket.gethostname()}:{os.getpid()}")[:200]
    policy = Policy.from_config(config)
    mailer = Mailer(state, timeout=float(config.get("NOTIFY_SMTP_TIMEOUT_SECONDS") or 30))
    if state.suppress:
        click.echo("Note: MAIL_SUPPRESS_SEND is on (testing): mails are recorded as sent "
                   "but not sent.", err=True)

    stop = threading.Event()
    restore = _stop_on_signals(stop)
    failed_round = False
    try:
        while True:
            try:
                result = send_due(
                    db.session, worker=worker, policy=policy, mailer=mailer, sender=sender,
                    limit=limit, batch=batch, should_stop=stop.is_set,
                    report=lambda line: click.echo(line, err=True),
                )
            except SQLAlchemyError as exc:
                db.session.rollback()
                # Claimed mails stay claimed until the claim expires: none is lost.
                cause = getattr(exc, "orig", None) or exc
                message = f"the database failed: {str(cause).strip().splitlines()[0]}"
                if not loop:
                    _fail(message)
                click.echo(f"Error: {message}", err=True)
                failed_round = True
            else:
                failed_round = not result.ok
                if not loop or result.sent or result.retrying or result.failed:
                    _summarise(result)
                if result.unavailable and not loop:
                    sys.exit(1)
            finally:
                db.session.remove()
            if not loop or stop.wait(interval):
                break
    finally:
        restore()
    if failed_round and not loop:
        sys.exit(1)


def _summarise(result: Any) -> None:
    line = f"Sent {result.sent} mail{'s' if result.sent != 1 else ''}"
    if result.retrying:
        line += f"; {result.retrying} to retry later"
    if result.failed:
        line += f"; {result.failed} given up (status failed)"
    if result.lost_claims:
        line += f"; {result.lost_claims} whose claim had expired"
    click.echo(line + ".")
    if result.unavailable:
        when = (
            f"; the next attempt is due after {result.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
            if result.next_attempt_at else ""
        )
        click.echo(f"Error: {result.unavailable}. Nothing was lost: the mails stay in the "
                   f"outbox{when}.", err=True)


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _stop_on_signals(stop: threading.Event) -> Any:
    """SIGTERM and SIGINT let the claimed batch be sent and recorded, then stop: a
    daemon stopped by its supervisor leaves no mail claimed (a second signal stops
    at once; its claims then wait for the claim timeout)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second signal: stop now
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)
        stop.set()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def register(app: Flask) -> None:
    """Add the notifications commands to the `sorregistry` group."""
    app.cli.add_command(send_notifications)

"""``sorregistry deliver-webhooks``: a thin wrapper around the webhook worker."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from hierarchy.webhooks.worker import RunResult, WebhookWorker
from sorregistry.commands import fail
from sorregistry.extensions import db
from sorregistry.queue import RoundFailed


def _warn(line: str) -> None:
    click.echo(line, err=True)


@click.command("deliver-webhooks")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Try at most this many deliveries in this run (default: all that are due).")
@click.option("--batch", type=click.IntRange(min=1, max=500), default=10, show_default=True,
              help="Deliveries claimed at a time.")
@click.option("--worker", "name", default=None,
              help="This worker's name on the deliveries (default: host:pid).")
@click.option("--loop", is_flag=True,
              help="Run as a daemon: a round every --interval seconds until stopped.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between rounds with --loop.")
@with_appcontext
def deliver_webhooks(limit: int | None, batch: int, name: str | None, loop: bool,
                     interval: float) -> None:
    """Queue the feed's new entries for each webhook subscription and deliver what is due.

    Safe from cron and as several workers at once. A failed delivery is retried with an
    exponential backoff and given up after SOR_WEBHOOK_MAX_ATTEMPTS attempts (its
    subscription is then paused). SIGTERM or SIGINT finishes the delivery under way,
    puts the rest back and stops.
    """
    options: dict[str, object] = {"batch": batch, "limit": limit, "report": _warn}
    if name:
        options["name"] = name[:200]
    worker = WebhookWorker.from_app(current_app, db.session, **options)
    with worker.stopping_on_signals():
        if loop:
            worker.serve(interval, on_result=_summarise_busy,
                         on_error=lambda exc: _warn(f"Error: {exc}"))
            return
        try:
            result = worker.run_once()
        except RoundFailed as exc:
            fail(exc)
    _summarise(result)


def _summarise_busy(result: RunResult) -> None:
    if result.queued or result.delivered or result.retrying or result.failed:
        _summarise(result)


def _summarise(result: RunResult) -> None:
    line = f"Queued {result.queued}, delivered {result.delivered}"
    if result.retrying:
        line += f"; {result.retrying} to retry later"
    if result.failed:
        line += f"; {result.failed} given up (subscription paused)"
    if result.released:
        line += f"; {result.released} put back (stopped)"
    click.echo(line + ".")


def register(app: Flask) -> None:
    app.cli.add_command(deliver_webhooks)

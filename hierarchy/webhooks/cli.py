"""``sorregistry deliver-webhooks``: a thin wrapper around the webhook worker."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from hierarchy.webhooks.worker import RunResult, WebhookWorker
from sorregistry.commands import fail, warn, worker_options
from sorregistry.extensions import db
from sorregistry.queue import RoundFailed


@click.command("deliver-webhooks")
@worker_options("deliveries", "Deliveries claimed at a time.", 5.0,
                "Run as a daemon: a round every --interval seconds until stopped.")
@with_appcontext
def deliver_webhooks(limit: int | None, batch: int, name: str | None, loop: bool,
                     interval: float) -> None:
    """Queue the feed's new entries for each webhook subscription and deliver what is due.

    Safe from cron and as several workers at once. A failed delivery is retried with an
    exponential backoff and given up after SOR_WEBHOOK_MAX_ATTEMPTS attempts (its
    subscription is then paused). SIGTERM or SIGINT finishes the delivery under way,
    puts the rest back and stops.
    """
    options: dict[str, object] = {"batch": batch, "limit": limit, "report": warn}
    if name:
        options["name"] = name[:200]
    worker = WebhookWorker.from_app(current_app, db.session, **options)
    with worker.stopping_on_signals():
        if loop:
            worker.serve(interval, on_result=_summarise_busy,
                         on_error=lambda exc: warn(f"Error: {exc}"))
            return
        try:
            result = worker.run_once()
        except RoundFailed as exc:
            fail(exc)
    _summarise(result)


def _summarise_busy(result: RunResult) -> None:
    if result.queued or result.delivered or result.retrying or result.failed or result.pruned:
        _summarise(result)


def _summarise(result: RunResult) -> None:
    line = f"Queued {result.queued}, delivered {result.delivered}"
    if result.retrying:
        line += f"; {result.retrying} to retry later"
    if result.failed:
        line += f"; {result.failed} given up (subscription paused)"
    if result.released:
        line += f"; {result.released} put back (stopped)"
    if result.pruned:
        line += f"; {result.pruned} delivered long ago deleted"
    click.echo(line + ".")


def register(app: Flask) -> None:
    app.cli.add_command(deliver_webhooks)

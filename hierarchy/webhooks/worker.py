"""The webhook worker: dispatch the feed's new entries, deliver what is due; once, or as
a daemon (``sorregistry deliver-webhooks [--loop]``).

A round dispatches every page of the feed not yet dispatched (each page its own
transaction), then claims and delivers until nothing is due, then deletes up to 1,000
deliveries delivered more than ``SOR_WEBHOOK_KEEP_DAYS`` days ago. SIGTERM or SIGINT lets the
delivery under way finish and be recorded, hands the rest of the batch back and stops
(``sorregistry.queue.StoppableLoop``, shared with ``send-notifications``).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from hierarchy.webhooks.deliveries import (
    Outgoing,
    Policy,
    claim,
    dispatch,
    prune_delivered,
    record_delivered,
    record_failure,
    release,
    send,
)
from sorregistry.database import DbSession, write_step
from sorregistry.queue import RoundFailed, StoppableLoop


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _ignore(_line: str) -> None:
    pass


@dataclass
class RunResult:
    queued: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    pruned: int = 0


@dataclass
class WebhookWorker(StoppableLoop):
    app: Flask
    session: DbSession
    policy: Policy
    name: str = field(default_factory=default_name)
    batch: int = 10
    limit: int | None = None  # deliveries tried per round; None: all that are due
    report: Callable[[str], None] = _ignore
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_app(cls, app: Flask, session: DbSession, **options: object) -> WebhookWorker:
        return cls(app=app, session=session, policy=Policy.from_config(app.config),
                   **options)  # type: ignore[arg-type]

    def run_once(self) -> RunResult:
        """One round. Raises RoundFailed when the database fails (claimed deliveries
        stay claimed until the claim expires: none is lost)."""
        try:
            return self._round()
        except SQLAlchemyError as exc:
            self.session.rollback()
            cause = getattr(exc, "orig", None) or exc
            raise RoundFailed(
                f"the database failed: {str(cause).strip().splitlines()[0]}") from exc
        finally:
            self.session.close()

    def _round(self) -> RunResult:
        result = RunResult()
        more = True
        while more and not self.stop.is_set():
            with write_step(self.session) as session:
                dispatched = dispatch(session)
            result.queued += dispatched.queued
            more = dispatched.more
        tried = 0
        while not self.stop.is_set():
            room = self.batch if self.limit is None else min(self.batch, self.limit - tried)
            if room <= 0:
                break
            with write_step(self.session) as session:
                batch = claim(session, worker=self.name, limit=room, policy=self.policy)
            if not batch:
                break
            for index, outgoing in enumerate(batch):
                if self.stop.is_set():
                    with write_step(self.session) as session:
                        result.released += release(session, batch[index:], worker=self.name)
                    break
                self._deliver(outgoing, result)
                tried += 1
        if not self.stop.is_set():
            keep_days = int(self.app.config.get("WEBHOOK_KEEP_DAYS", 30))
            with write_step(self.session) as session:
                result.pruned = prune_delivered(session, keep_days=keep_days)
        return result

    def _deliver(self, outgoing: Outgoing, result: RunResult) -> None:
        outcome = send(self.app, outgoing)
        with write_step(self.session) as session:
            if outcome.delivered:
                if record_delivered(session, outgoing, outcome.status_code or 200,
                                    worker=self.name):
                    result.delivered += 1
                return
            status = record_failure(
                session, outgoing, outcome.error or "failed", worker=self.name,
                policy=self.policy, status_code=outcome.status_code,
                permanent=outcome.permanent)
        if status == "failed":
            result.failed += 1
            self.report(f"Delivery {outgoing.id} (subscription {outgoing.subscription_id}, "
                        f"position {outgoing.position}) given up: {outcome.error}")
        elif status == "queued":
            result.retrying += 1

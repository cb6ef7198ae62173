"""The outbox worker: one run over what is due, or a daemon that sends until stopped.

``send-notifications`` is a thin wrapper around :class:`Worker`: it parses the
options, builds the worker from the app's settings and prints what it did. The
worker owns the loop, the stop event and the signals: SIGTERM or SIGINT lets the
mail being sent finish and be recorded, hands the rest of the batch back to the
queue and stops - a daemon stopped by its supervisor leaves no mail claimed. A
second signal stops at once (the signal's previous handler, by default the end of
the process); the mail being sent then waits for the claim timeout.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from notifications.sender import Mailer, RunResult, send_due
from notifications.service import Policy
from sorregistry.database import DbSession
from sorregistry.queue import RoundFailed, StoppableLoop


class WorkerError(RoundFailed):
    """The worker cannot start, or a round failed on the database; says why in a line."""


def default_name() -> str:
    """This worker's name in the outbox when none is given: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _ignore(_line: str) -> None:
    pass


@dataclass
class Worker(StoppableLoop):
    """Sends what the outbox holds, *batch* claims at a time, as *name*."""

    session: DbSession
    mailer: Mailer
    sender: str | tuple[str, str]
    policy: Policy
    name: str = field(default_factory=default_name)
    batch: int = 10
    limit: int | None = None  # mails tried per round; None: all that are due
    report: Callable[[str], None] = _ignore  # one line per mail that failed
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_app(
        cls,
        app: Flask,
        session: DbSession,
        *,
        name: str | None = None,
        batch: int = 10,
        limit: int | None = None,
        report: Callable[[str], None] = _ignore,
    ) -> Worker:
        """The worker the app's settings describe (MAIL_*, NOTIFY_*, Flask-Mail's
        state). Raises WorkerError when no sender address is set."""
        config = app.config
        sender = config.get("MAIL_DEFAULT_SENDER")
        if not sender:
            raise WorkerError("no sender address: set SOR_MAIL_DEFAULT_SENDER")
        timeout = float(config.get("NOTIFY_SMTP_TIMEOUT_SECONDS") or 30)
        return cls(
            session=session, mailer=Mailer(app.extensions["mail"], timeout=timeout),
            sender=sender, policy=Policy.from_config(config),
            name=(name or default_name())[:200],  # the outbox's column
            batch=batch, limit=limit, report=report,
        )

    def run_once(self) -> RunResult:
        """One round: send what is due now. Raises WorkerError when the database fails
        (claimed mails stay claimed until the claim expires: none is lost)."""
        try:
            return send_due(
                self.session, worker=self.name, policy=self.policy, mailer=self.mailer,
                sender=self.sender, limit=self.limit, batch=self.batch,
                should_stop=self.stop.is_set, report=self.report,
            )
        except SQLAlchemyError as exc:
            self.session.rollback()
            cause = getattr(exc, "orig", None) or exc
            raise WorkerError(
                f"the database failed: {str(cause).strip().splitlines()[0]}") from exc
        finally:
            self.session.close()  # no connection held between rounds

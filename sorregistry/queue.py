"""What every queue of outgoing work shares: the mail outbox (``notifications``) and the
webhook deliveries (``hierarchy.webhooks``).

Both follow one machinery: a row is *claimed* (``queued`` and due, or ``sending`` under
a claim older than the claim timeout - its worker died) in a short transaction, the work
is done outside any transaction, and the outcome is recorded only while the row is
still this worker's claim; a failure is retried after an exponential backoff and given
up after a number of attempts. This module holds the parts that do not depend on the
table: the policy (:class:`RetryPolicy`), the "due" condition (:func:`due`) and the
worker's loop with its graceful stop on SIGTERM (:class:`StoppableLoop`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, ClassVar, TypeVar

from sqlalchemy import and_, or_

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

@dataclass(frozen=True)
class RetryPolicy:
    """How a queue retries and gives up; from the app's ``<prefix>*`` settings."""

    prefix: ClassVar[str] = "QUEUE_"

    max_attempts: int = 10
    retry_base_seconds: int = 60
    retry_max_seconds: int = 6 * 3600
    claim_timeout_seconds: int = 600

    @classmethod
    def from_config(cls: type[P], config: Mapping[str, Any]) -> P:
        def read(name: str, default: int, least: int) -> int:
            return max(least, int(config.get(cls.prefix + name, default)))

        return cls(
            max_attempts=read("MAX_ATTEMPTS", cls.max_attempts, 1),
            retry_base_seconds=read("RETRY_BASE_SECONDS", cls.retry_base_seconds, 0),
            retry_max_seconds=read("RETRY_MAX_SECONDS", cls.retry_max_seconds, 0),
            claim_timeout_seconds=read("CLAIM_TIMEOUT_SECONDS", cls.claim_timeout_seconds, 1),
        )

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff: base, 2 x base, 4 x base … after attempt 1, 2, 3 …, capped."""
        exponent = min(max(attempts - 1, 0), 30)  # 2**30 x base is past any cap
        return timedelta(seconds=min(self.retry_base_seconds * 2**exponent,
                                     self.retry_max_seconds))


P = TypeVar("P", bound=RetryPolicy)


def due(model: Any, now: datetime, policy: RetryPolicy) -> Any:
    """The condition on *model*'s rows that a worker may claim at *now*: queued and due,
    or ``sending`` under a claim older than the claim timeout (its worker died)."""
    stale = now - timedelta(seconds=policy.claim_timeout_seconds)
    return or_(
        and_(model.status == "queued", model.next_attempt_at <= now),
        and_(model.status == "sending", model.claimed_at <= stale),
    )


class RoundFailed(RuntimeError):
    """A worker's round failed (the database); says why in a line. The next is tried."""


class StoppableLoop:
    """A worker's loop: rounds every *interval* seconds until :attr:`stop` is set, and
    SIGTERM/SIGINT setting it (the round under way finishes; a second signal stops at
    once). A subclass provides ``stop`` (a :class:`threading.Event`) and ``run_once``."""

    stop: threading.Event

    def run_once(self) -> Any:  # pragma: no cover - provided by the subclass
        raise NotImplementedError

    def serve(
        self,
        interval: float,
        *,
        on_result: Callable[[Any], None] = lambda result: None,
        on_error: Callable[[RoundFailed], None] = lambda error: None,
    ) -> None:
        """Run a round every *interval* seconds until :attr:`stop` is set. A failed
        round is reported to *on_error* and the next one tried: a daemon outlives a
        database restart."""
        while not self.stop.is_set():
            try:
                result = self.run_once()
            except RoundFailed as exc:
                on_error(exc)
            else:
                on_result(result)
            if self.stop.wait(interval):
                break

    def stopping_on_signals(self) -> AbstractContextManager[None]:
        """While in the block, SIGTERM and SIGINT set :attr:`stop` (see
        :func:`stopping_on_signals`)."""
        return stopping_on_signals(self.stop)


@contextmanager
def stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """While in the block, SIGTERM and SIGINT set *stop* (a second one runs the signal's
    previous handler: the process ends at once). Does nothing outside the main thread,
    where Python allows no signal handlers. For a command that works in steps and checks
    *stop* between them (``fetch-mail`` between mails)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # None: a handler not set from Python; the default is the nearest we can restore.
    previous = {sig: signal.getsignal(sig) or signal.SIG_DFL for sig in STOP_SIGNALS}

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # the second signal: stop now, as if never caught
            signal.signal(signum, previous[signal.Signals(signum)])
            signal.raise_signal(signum)
            return
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

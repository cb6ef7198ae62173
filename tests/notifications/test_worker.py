"""The outbox worker without click: a round, the daemon's loop, stopping, signals."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType

import pytest
from flask import Flask
from sqlalchemy import select, update

from notifications import service
from notifications.models import OutboxAttempt, OutboxMessage
from notifications.sender import RunResult
from notifications.service import enqueue
from notifications.worker import Worker, WorkerError
from sorregistry.extensions import db
from sorregistry.models import utcnow
from tests.notifications.conftest import (
    COMMAND,
    SmtpServer,
    approve,
    command_environment,
    issued_context,
)


def _enqueue(app: Flask, count: int) -> set[str]:
    with app.app_context():
        ids = {
            enqueue(db.session, kind="sor_code_issued", to=f"institution{n}@example.dk",
                    context=issued_context("institution", f"A-2026-{n:04d}")).message_id
            for n in range(count)
        }
        db.session.commit()
    return ids


def _outbox(app: Flask) -> tuple[list[OutboxMessage], list[OutboxAttempt]]:
    with app.app_context():
        messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        attempts = db.session.scalars(select(OutboxAttempt).order_by(OutboxAttempt.id)).all()
        db.session.expunge_all()
        return list(messages), list(attempts)


def test_one_round_sends_what_is_due(make_app, smtp: SmtpServer) -> None:
    app = make_app()
    with app.app_context():
        approve(db.session)
        db.session.commit()
        worker = Worker.from_app(app, db.session, name="unit-1")
        result = worker.run_once()
    assert (result.sent, result.released, result.ok) == (2, 0, True)
    assert len(smtp.received) == 2
    messages, attempts = _outbox(app)
    assert {m.status for m in messages} == {"sent"}
    assert {a.worker for a in attempts} == {"unit-1"}


def test_without_a_sender_the_worker_does_not_start(make_app) -> None:
    app = make_app(MAIL_DEFAULT_SENDER=None)
    with app.app_context(), pytest.raises(WorkerError, match="SOR_MAIL_DEFAULT_SENDER"):
        Worker.from_app(app, db.session)


def test_stopped_mid_batch_it_finishes_the_mail_and_hands_the_rest_back(
    make_app, smtp: SmtpServer
) -> None:
    app = make_app()
    ids = _enqueue(app, 4)
    with app.app_context():
        worker = Worker.from_app(app, db.session, name="stopping", batch=4)
        # Told to stop while the first mail is at the SMTP server.
        smtp.handler.on_received = lambda received: worker.stop.set()
        result = worker.run_once()
    assert (result.sent, result.released) == (1, 3)
    assert len(smtp.received) == 1
    messages, attempts = _outbox(app)
    assert sorted(m.status for m in messages) == ["queued", "queued", "queued", "sent"]
    for message in messages:
        if message.status == "queued":  # as if never claimed: due, uncounted, unclaimed
            assert message.attempts == 0 and message.claimed_by is None
            assert message.claimed_at is None and message.last_error is None
    assert [(a.worker, a.outcome) for a in attempts] == [("stopping", "sent")]

    smtp.handler.on_received = None
    with app.app_context():
        again = Worker.from_app(app, db.session, name="next").run_once()
    assert again.sent == 3
    assert sorted(r.message["Message-ID"] for r in smtp.received) == sorted(ids)


def test_a_release_leaves_a_claim_another_worker_took_over(make_app) -> None:
    """Releasing is guarded like recording: only this worker's live claim goes back."""
    app = make_app(NOTIFY_CLAIM_TIMEOUT_SECONDS=60)
    _enqueue(app, 1)
    policy = service.Policy.from_config(app.config)
    with app.app_context():
        late = service.claim(db.session, worker="late", limit=1, policy=policy)
        db.session.commit()
        db.session.execute(
            update(OutboxMessage).values(claimed_at=utcnow() - timedelta(seconds=61)))
        db.session.commit()
        taken = service.claim(db.session, worker="rescuer", limit=1, policy=policy)
        db.session.commit()
        assert service.release_claims(db.session, late, worker="late") == 0
        db.session.commit()
    messages, _ = _outbox(app)
    assert (messages[0].status, messages[0].claimed_by) == ("sending", "rescuer")
    assert messages[0].attempts == taken[0].attempt == 2


def test_a_failed_database_is_a_worker_error_and_the_loop_goes_on(make_app, tmp_path) -> None:
    # A database that answers but was never migrated: every round fails.
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}")
    errors: list[WorkerError] = []
    with app.app_context():
        worker = Worker.from_app(app, db.session)
        with pytest.raises(WorkerError, match="^the database failed: .*outbox_messages"):
            worker.run_once()

        def on_error(error: WorkerError) -> None:
            errors.append(error)
            if len(errors) == 3:
                worker.stop.set()

        worker.serve(0.01, on_error=on_error)
    assert len(errors) == 3


def test_the_loop_runs_rounds_until_stopped(make_app, smtp: SmtpServer) -> None:
    app = make_app()
    results: list[RunResult] = []
    with app.app_context():
        worker = Worker.from_app(app, db.session)

        def on_result(result: RunResult) -> None:
            results.append(result)
            if len(results) == 1:
                _enqueue(app, 2)  # arrives between rounds
            elif result.sent:
                worker.stop.set()

        worker.serve(0.01, on_result=on_result)
    assert results[0].sent == 0 and sum(r.sent for r in results) == 2
    assert len(smtp.received) == 2


@pytest.fixture
def sigterm_recorder() -> Iterator[list[int]]:
    """SIGTERM's handler before the worker's: records instead of ending pytest."""
    calls: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        calls.append(signum)

    original = signal.signal(signal.SIGTERM, record)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGTERM, original)


def test_a_signal_sets_stop_and_a_second_one_goes_to_the_previous_handler(
    app: Flask, sigterm_recorder: list[int]
) -> None:
    worker = Worker.from_app(app, db.session)
    before, before_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with worker.stopping_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.raise_signal(signal.SIGTERM)
        assert worker.stop.is_set() and sigterm_recorder == []
        signal.raise_signal(signal.SIGTERM)  # the supervisor insists
        assert sigterm_recorder == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is before_int


def test_outside_the_main_thread_signals_are_left_alone(app: Flask) -> None:
    worker = Worker.from_app(app, db.session)
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def inside() -> None:
        with worker.stopping_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=inside)
    thread.start()
    thread.join(timeout=30)
    assert seen == [before]


def test_sigterm_mid_batch_stops_the_daemon_after_the_current_mail(
    make_app, smtp: SmtpServer, fresh_database: str
) -> None:
    """A real process, a real signal: the supervisor's SIGTERM ends the daemon after
    the mail in flight; nothing is left claimed and nothing is lost."""
    smtp.handler.delay = 0.3  # a slow server: the batch takes a while
    app = make_app()
    ids = _enqueue(app, 6)
    daemon = subprocess.Popen(
        [str(COMMAND), "send-notifications", "--loop", "--interval", "0.2", "--batch", "6"],
        env=command_environment(fresh_database, smtp.port),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not smtp.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert smtp.received, "the daemon sent nothing"
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err and "put back in the queue (stopped)" in out
    sent = len(smtp.received)
    assert 1 <= sent < len(ids)
    messages, attempts = _outbox(app)
    assert sum(m.status == "sent" for m in messages) == sent
    assert {m.status for m in messages} == {"sent", "queued"}
    assert all(m.claimed_by is None for m in messages)
    assert all(a.outcome == "sent" for a in attempts) and len(attempts) == sent

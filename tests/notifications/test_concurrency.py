"""Several workers at once send each mail exactly once (counted at the SMTP server)."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter

from sqlalchemy import select

from notifications.models import OutboxAttempt, OutboxMessage
from notifications.sender import Mailer, send_due
from notifications.service import Policy, enqueue
from sorregistry.extensions import db
from tests.notifications.conftest import COMMAND, SENDER, command_environment, issued_context

MAILS = 50


def _enqueue_many(app, count: int = MAILS) -> set[str]:
    with app.app_context():
        ids = {
            enqueue(db.session, kind="sor_code_issued", to=f"institution{n}@example.dk",
                    context=issued_context("institution", f"A-2026-{n:04d}")).message_id
            for n in range(count)
        }
        db.session.commit()
    return ids


def _check_exactly_once(app, smtp, ids: set[str]) -> Counter:
    counted = Counter(r.message["Message-ID"] for r in smtp.received)
    assert set(counted) == ids
    assert all(n == 1 for n in counted.values()), [k for k, n in counted.items() if n > 1]
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage)).all()
        assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}
        log = db.session.scalars(select(OutboxAttempt)).all()
        assert len(log) == len(ids) and {a.outcome for a in log} == {"sent"}
        return Counter(a.worker for a in log)


def test_two_worker_threads_send_each_mail_once(make_app, smtp):
    smtp.handler.delay = 0.01  # a slow server, so that the workers overlap
    app = make_app()
    ids = _enqueue_many(app)
    policy = Policy.from_config(app.config)
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    results = {}

    def work(name: str) -> None:
        try:
            with app.app_context():  # its own session, hence its own connection
                start.wait()
                results[name] = send_due(
                    db.session, worker=name, policy=policy, sender=SENDER, batch=5,
                    mailer=Mailer(app.extensions["mail"], timeout=10),
                )
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert sum(r.sent for r in results.values()) == MAILS
    by_worker = _check_exactly_once(app, smtp, ids)
    assert set(by_worker) == {"worker-1", "worker-2"}, by_worker


def test_two_worker_processes_send_each_mail_once(make_app, smtp, fresh_database):
    smtp.handler.delay = 0.01
    app = make_app()
    ids = _enqueue_many(app)
    command = COMMAND
    environment = command_environment(fresh_database, smtp.port)
    workers = [
        subprocess.Popen(
            [str(command), "send-notifications", "--batch", "3", "--worker", f"process-{n}"],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in (1, 2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "Traceback" not in err
    sent = sum(int(out.split()[1]) for out, _ in outputs)  # "Sent N mails."
    assert sent == MAILS
    _check_exactly_once(app, smtp, ids)

"""send-notifications against a real SMTP server (aiosmtpd), on both back ends."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

from sqlalchemy import select, update

from notifications import service
from notifications.models import OutboxAttempt, OutboxMessage
from notifications.sender import Mailer, build_message
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from sorregistry.models import utcnow
from tests.notifications.conftest import (
    COMMAND,
    INSTITUTION,
    SENDER,
    approve,
    command_environment,
)

SOR_CODE = "900000011000016001"


def _enqueue_approval(app, **kwargs):
    with app.app_context():
        messages = approve(db.session, **kwargs)
        db.session.commit()
        return {m.recipients[0]: m.message_id for m in messages}


def _rows(app):
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return rows


def _attempts(app, message_id):
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxAttempt).where(OutboxAttempt.message_id == message_id)
            .order_by(OutboxAttempt.id)
        ).all()
        return [(a.number, a.outcome, a.error) for a in rows]


def _make_due(app):
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db.session.commit()


def _check_mail(received, message_id, greeting):
    message = received.message
    assert message["Message-ID"] == message_id
    assert str(message["Subject"]) == f"SOR-kode tildelt: {INSTITUTION} (ansøgning A-2026-0042)"
    assert message["From"] == SENDER
    assert message["Auto-Submitted"] == "auto-generated"
    # Headers travel encoded (RFC 2047), bodies as quoted-printable UTF-8.
    assert b"=?utf-8?" in received.raw.split(b"\r\n\r\n", 1)[0].lower()
    assert received.raw.isascii()
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    for part in (text, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        content = part.get_content()
        assert SOR_CODE in content and INSTITUTION in content and "A-2026-0042" in content
    assert text.get_content().startswith(greeting)


def test_an_approval_mails_the_institution_and_the_municipality_once_each(make_app, smtp):
    app = make_app()
    ids = _enqueue_approval(app)
    result = app.test_cli_runner().invoke(args=["send-notifications"])
    assert result.exit_code == 0, result.output
    assert "Sent 2 mails." in result.output
    institution = smtp.to("leder@plejehjem-aeroe.dk")
    municipality = smtp.to("sundhed@aeroe.dk")
    assert len(institution) == 1 and len(municipality) == 1 and len(smtp.received) == 2
    _check_mail(institution[0], ids["leder@plejehjem-aeroe.dk"], f"Kære {INSTITUTION}")
    _check_mail(municipality[0], ids["Ærø Kommune <sundhed@aeroe.dk>"], "Kære Ærø Kommune")
    assert "Ærø Kommune" in str(municipality[0].message["To"])
    assert municipality[0].mail_from == "sorpost@sundhedsdata.example"
    for row in _rows(app):
        assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
        assert row.claimed_by is None and row.last_error is None
        assert _attempts(app, row.id) == [(1, "sent", None)]
    # Nothing is due any more: a second run sends nothing.
    again = app.test_cli_runner().invoke(args=["send-notifications"])
    assert again.exit_code == 0 and "Sent 0 mails." in again.output
    assert len(smtp.received) == 2


def test_the_installed_command_sends_with_sor_settings(make_app, smtp, fresh_database):
    app = make_app()
    ids = _enqueue_approval(app)
    command = COMMAND
    environment = command_environment(fresh_database, smtp.port)
    done = subprocess.run(
        [str(command), "send-notifications", "--worker", "cron-1"],
        env=environment, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Sent 2 mails." in done.stdout
    assert sorted(r.message["Message-ID"] for r in smtp.received) == sorted(ids.values())
    assert _attempts(app, _rows(app)[0].id)[0][:2] == (1, "sent")


def test_with_the_smtp_server_down_nothing_is_lost_and_nothing_repeats(make_app, smtp_down):
    app = make_app(NOTIFY_RETRY_BASE_SECONDS=60)
    ids = _enqueue_approval(app)
    runner = app.test_cli_runner()
    down = runner.invoke(args=["send-notifications"])
    assert down.exit_code == 1
    assert down.exception is None or isinstance(down.exception, SystemExit)
    assert "Traceback" not in down.output
    assert f"Error: the SMTP server 127.0.0.1:{smtp_down.port} cannot be reached" in down.output
    assert "Nothing was lost" in down.output
    before = utcnow()
    for row in _rows(app):
        assert row.status == "queued" and row.attempts == 1
        assert "cannot be reached" in row.last_error
        assert row.next_attempt_at > before + timedelta(seconds=50)
        assert [a[:2] for a in _attempts(app, row.id)] == [(1, "error")]

    smtp_down.start()
    early = runner.invoke(args=["send-notifications"])  # the backoff has not passed
    assert early.exit_code == 0 and "Sent 0 mails." in early.output
    assert smtp_down.received == []

    _make_due(app)
    up = runner.invoke(args=["send-notifications"])
    assert up.exit_code == 0, up.output
    assert "Sent 2 mails." in up.output
    assert sorted(r.message["Message-ID"] for r in smtp_down.received) == sorted(ids.values())
    for row in _rows(app):
        assert row.status == "sent" and row.attempts == 2
        assert [a[:2] for a in _attempts(app, row.id)] == [(1, "error"), (2, "sent")]
    runner.invoke(args=["send-notifications"])
    _make_due(app)
    runner.invoke(args=["send-notifications"])
    assert len(smtp_down.received) == 2


def test_the_backoff_doubles_until_its_cap():
    policy = service.Policy(retry_base_seconds=60, retry_max_seconds=600)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 40)] == [
        60, 120, 240, 480, 600, 600,
    ]


def test_giving_up_after_the_configured_attempts(make_app, smtp_down):
    app = make_app(NOTIFY_MAX_ATTEMPTS=3, NOTIFY_RETRY_BASE_SECONDS=0)
    _enqueue_approval(app)
    runner = app.test_cli_runner()
    for attempt in (1, 2, 3):
        result = runner.invoke(args=["send-notifications"])
        assert result.exit_code == 1
        statuses = {row.status for row in _rows(app)}
        assert statuses == ({"queued"} if attempt < 3 else {"failed"})
    assert "failed for good after attempt 3" in result.output
    for row in _rows(app):
        assert row.attempts == 3 and "cannot be reached" in row.last_error
        assert [a[:2] for a in _attempts(app, row.id)] == [(1, "error")] * 1 + [
            (2, "error"), (3, "error")
        ]
    # A failed mail is not tried again by the command ...
    smtp_down.start()
    assert runner.invoke(args=["send-notifications"]).exit_code == 0
    assert smtp_down.received == []
    # ... staff see it, and put it back once the cause is fixed.
    with app.app_context():
        _, token = create_client(db.session, "SDS", cvr="35095748", roles=["sds"])
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/outbox?status=failed", headers=headers).get_json()
    assert listed["total"] == 2
    for item in listed["items"]:
        assert item["last_error"].startswith(
            f"the SMTP server 127.0.0.1:{smtp_down.port} cannot be reached"
        )
    retried = client.post(f"/api/v1/outbox/{listed['items'][0]['id']}/retry", headers=headers)
    assert retried.status_code == 200 and retried.get_json()["status"] == "queued"
    result = runner.invoke(args=["send-notifications"])
    assert result.exit_code == 0 and "Sent 1 mail." in result.output
    assert [r.message["Message-ID"] for r in smtp_down.received] == [
        listed["items"][0]["message_id"]
    ]
    assert client.get("/api/v1/outbox?status=failed", headers=headers).get_json()["total"] == 1


def test_as_a_daemon_it_sends_what_arrives_and_stops_on_sigterm(make_app, smtp, fresh_database):
    app = make_app()
    command = COMMAND
    environment = command_environment(fresh_database, smtp.port)
    daemon = subprocess.Popen(
        [str(command), "send-notifications", "--loop", "--interval", "0.2"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ids = _enqueue_approval(app)
        deadline = time.monotonic() + 60
        while len(smtp.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(r.message["Message-ID"] for r in smtp.received) == sorted(ids.values())
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err and "Sent 2 mails." in out


def test_a_refused_recipient_fails_at_once(make_app, smtp):
    smtp.handler.refuse.add("leder@plejehjem-aeroe.dk")
    app = make_app()
    _enqueue_approval(app)
    result = app.test_cli_runner().invoke(args=["send-notifications"])
    assert result.exit_code == 1
    assert "Sent 1 mail; 1 given up" in result.output
    rows = {row.recipients[0]: row for row in _rows(app)}
    refused = rows["leder@plejehjem-aeroe.dk"]
    assert refused.status == "failed" and refused.attempts == 1
    assert "550" in refused.last_error
    assert rows["Ærø Kommune <sundhed@aeroe.dk>"].status == "sent"


def test_a_claim_whose_worker_died_is_taken_over(make_app, smtp):
    app = make_app(NOTIFY_CLAIM_TIMEOUT_SECONDS=300)
    _enqueue_approval(app)
    policy = service.Policy.from_config(app.config)
    with app.app_context():
        claimed = service.claim(db.session, worker="dead-worker", limit=10, policy=policy)
        db.session.commit()  # ... and the worker dies here
    assert len(claimed) == 2
    runner = app.test_cli_runner()
    fresh = runner.invoke(args=["send-notifications"])
    assert fresh.exit_code == 0 and "Sent 0 mails." in fresh.output  # the claim still holds
    assert {row.status for row in _rows(app)} == {"sending"}

    with app.app_context():
        db.session.execute(
            update(OutboxMessage).values(claimed_at=utcnow() - timedelta(seconds=301))
        )
        db.session.commit()
    taken_over = runner.invoke(args=["send-notifications", "--worker", "rescuer"])
    assert taken_over.exit_code == 0 and "Sent 2 mails." in taken_over.output
    assert len(smtp.received) == 2
    for row in _rows(app):
        assert row.status == "sent" and row.attempts == 2
        log = _attempts(app, row.id)
        assert [entry[:2] for entry in log] == [(1, "abandoned"), (2, "sent")]
        assert "dead-worker stopped while sending" in log[0][2]


def test_a_crash_after_the_server_accepted_resends_with_the_same_message_id(make_app, smtp):
    """The documented edge: sent, then the worker died before recording it."""
    app = make_app(NOTIFY_CLAIM_TIMEOUT_SECONDS=60)
    with app.app_context():
        message = approve(db.session)[0]
        db.session.commit()
        message_id = message.message_id
        policy = service.Policy.from_config(app.config)
        outgoing = service.claim(db.session, worker="doomed", limit=1, policy=policy)[0]
        db.session.commit()
        mailer = Mailer(app.extensions["mail"], timeout=10)
        mailer.send(build_message(outgoing, SENDER))
        mailer.close()  # ... and the worker dies before record_sent
        db.session.execute(
            update(OutboxMessage).values(claimed_at=utcnow() - timedelta(seconds=61))
        )
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["send-notifications"])
    assert result.exit_code == 0, result.output
    assert [r.message["Message-ID"] for r in smtp.to("leder@plejehjem-aeroe.dk")] == [
        message_id, message_id,
    ]


def test_a_late_worker_does_not_overwrite_the_one_that_took_over(make_app, smtp):
    app = make_app()
    policy = service.Policy.from_config(app.config)
    with app.app_context():
        approve(db.session)
        db.session.commit()
        slow = service.claim(db.session, worker="slow", limit=1, policy=policy)[0]
        db.session.commit()
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == slow.id).values(
            claimed_at=utcnow() - timedelta(seconds=policy.claim_timeout_seconds + 1)))
        db.session.commit()
        fast = service.claim(db.session, worker="fast", limit=1, policy=policy)[0]
        db.session.commit()
        assert fast.id == slow.id and fast.attempt == 2
        assert service.record_failure(db.session, slow, "late", worker="slow",
                                      policy=policy) is None
        assert service.record_sent(db.session, slow, worker="slow") is False
        assert service.record_sent(db.session, fast, worker="fast") is True
        db.session.commit()
        row = db.session.get(OutboxMessage, slow.id)
        assert row.status == "sent" and row.last_error.startswith("slow stopped while sending")


def test_a_live_worker_renews_the_claims_of_its_batch(make_app):
    app = make_app(NOTIFY_CLAIM_TIMEOUT_SECONDS=60)
    policy = service.Policy.from_config(app.config)
    with app.app_context():
        approve(db.session)
        db.session.commit()
        batch = service.claim(db.session, worker="busy", limit=2, policy=policy)
        db.session.commit()
        old = utcnow() - timedelta(seconds=59)
        db.session.execute(update(OutboxMessage).values(claimed_at=old))
        db.session.commit()
        assert service.renew_claims(db.session, batch[1:], worker="busy") == 1
        db.session.commit()
        later = utcnow() + timedelta(seconds=30)
        # Only the mail whose claim was not renewed can be taken over.
        taken = service.claim(db.session, worker="other", limit=2, policy=policy, now=later)
        db.session.commit()
        assert [o.id for o in taken] == [batch[0].id]
        assert service.renew_claims(db.session, batch[:1], worker="busy") == 0

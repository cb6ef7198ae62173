"""Sending what is due in the outbox with Flask-Mail: claim, send, record.

See ``notifications.service`` for the guarantees (never lost, not sent twice by
two live workers) and the one duplicate SMTP cannot rule out.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.charset import QP, Charset
from email.mime.text import MIMEText
from typing import Any

import flask_mail

from notifications.service import (
    Outgoing,
    Policy,
    claim,
    record_failure,
    record_sent,
    release_claims,
    renew_claims,
)
from sorregistry.database import DbSession


class SmtpUnavailable(Exception):
    """The SMTP server cannot be reached or refuses the session (not one mail)."""


@dataclass
class RunResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    lost_claims: int = 0
    released: int = 0  # claimed, then handed back unsent because the worker was stopped
    unavailable: str | None = None
    next_attempt_at: datetime | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.unavailable is None and not self.retrying and not self.failed


class _Message(flask_mail.Message):
    """Flask-Mail's message with quoted-printable UTF-8 bodies.

    Flask-Mail registers UTF-8 bodies as raw 8-bit, which only a relay with
    8BITMIME carries intact; quoted-printable survives any 7-bit hop, and the
    Danish letters with it.
    """

    def _mimetext(self, text: str | None, subtype: str = "plain") -> MIMEText:
        charset = Charset("utf-8")
        charset.body_encoding = QP
        return MIMEText(text or "", _subtype=subtype, _charset=charset)  # type: ignore[arg-type]


def build_message(outgoing: Outgoing, sender: str | tuple[str, str]) -> flask_mail.Message:
    """The mail exactly as enqueued, with its stored Message-ID and the enqueue time as Date."""
    headers = {"Auto-Submitted": "auto-generated"}  # RFC 3834: no auto-replies
    if outgoing.reference and outgoing.reference.isascii():
        headers["X-SOR-Reference"] = outgoing.reference
    message = _Message(
        subject=outgoing.subject,
        recipients=list(outgoing.recipients),
        body=outgoing.body_text,
        html=outgoing.body_html,
        sender=sender,
        date=outgoing.created_at.timestamp(),
        charset="utf-8",
        extra_headers=headers,
    )
    message.msgId = outgoing.message_id
    return message


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{rcpt}: {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
            for rcpt, (code, msg) in exc.recipients.items()
        )
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _is_permanent(exc: BaseException) -> bool:
    """A 5xx answer about this mail will not change by trying again; everything
    else (4xx, timeouts, a dropped connection, our sender refused) may."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return False  # the server's view of our configuration, not of this mail
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return isinstance(exc, flask_mail.BadHeaderError)


class Mailer:
    """One SMTP session at a time through Flask-Mail, with a socket timeout.

    Flask-Mail's own ``configure_host`` opens the socket without a timeout, and
    a server that stops answering would then hold a claim past its expiry; this
    opens it the same way with one.
    """

    def __init__(self, state: Any, timeout: float) -> None:
        self.state = state
        self.timeout = timeout
        self.connection: flask_mail.Connection | None = None

    @property
    def server(self) -> str:
        return f"{self.state.server}:{self.state.port}"

    def _open(self) -> flask_mail.Connection:
        state = self.state
        connection = flask_mail.Connection(state)
        connection.num_emails = 0
        if state.suppress:
            connection.host = None
            return connection
        try:
            host: smtplib.SMTP
            if state.use_ssl:
                host = smtplib.SMTP_SSL(state.server, state.port, timeout=self.timeout)
            else:
                host = smtplib.SMTP(state.server, state.port, timeout=self.timeout)
            if state.use_tls:
                host.starttls()
            if state.username and state.password:
                host.login(state.username, state.password)
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpUnavailable(
                f"the SMTP server {self.server} cannot be reached: {_describe(exc)}"
            ) from exc
        connection.host = host
        return connection

    def send(self, message: flask_mail.Message) -> None:
        if self.connection is None:
            self.connection = self._open()
        try:
            self.connection.send(message)
        except (OSError, smtplib.SMTPServerDisconnected):
            self.close()  # the session is gone; the next mail opens a new one
            raise

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None or connection.host is None:
            return
        try:
            connection.host.quit()
        except (OSError, smtplib.SMTPException):
            connection.host.close()


def send_due(
    session: DbSession,
    *,
    worker: str,
    policy: Policy,
    mailer: Mailer,
    sender: str | tuple[str, str],
    limit: int | None = None,
    batch: int = 10,
    should_stop: Callable[[], bool] = lambda: False,
    report: Callable[[str], None] = lambda line: None,
) -> RunResult:
    """Send what is due, *batch* claims at a time, until none is due or *limit* were tried.

    Every claim, outcome and failure is committed as it happens. When the SMTP
    server cannot be reached, the failure is recorded on the claimed mails
    (they go back to the queue with their backoff) and the run stops. When
    *should_stop* says so (asked after each mail), the rest of the batch is
    handed back unsent and the run stops: no claim is left to time out.
    """
    result = RunResult()
    tried = 0
    try:
        while not should_stop():
            size = batch if limit is None else min(batch, limit - tried)
            if size <= 0:
                break
            claimed = claim(session, worker=worker, limit=size, policy=policy)
            session.commit()
            if not claimed:
                break
            tried += len(claimed)
            for position, outgoing in enumerate(claimed):
                try:
                    mailer.send(build_message(outgoing, sender))
                except SmtpUnavailable as exc:
                    # Nothing more goes out this run: record it on every mail still held.
                    result.unavailable = str(exc)
                    for rest in claimed[position:]:
                        _failed(session, rest, str(exc), False, worker, policy, result, report)
                    session.commit()
                    return result
                except (OSError, smtplib.SMTPException, flask_mail.BadHeaderError) as exc:
                    _failed(session, outgoing, _describe(exc), _is_permanent(exc), worker,
                            policy, result, report)
                else:
                    if record_sent(session, outgoing, worker=worker):
                        result.sent += 1
                    else:
                        result.lost_claims += 1
                        report(f"mail {outgoing.id} was sent, but its claim had expired and "
                               "another worker may have sent it too (same Message-ID)")
                remaining = claimed[position + 1:]
                if should_stop():  # told to stop: this mail is done, the rest go back
                    result.released += release_claims(session, remaining, worker=worker)
                    session.commit()
                    return result
                renew_claims(session, remaining, worker=worker)
                session.commit()
    finally:
        mailer.close()
    return result


def _failed(
    session: DbSession,
    outgoing: Outgoing,
    error: str,
    permanent: bool,
    worker: str,
    policy: Policy,
    result: RunResult,
    report: Callable[[str], None],
) -> None:
    message = record_failure(
        session, outgoing, error, worker=worker, policy=policy, permanent=permanent
    )
    to = ", ".join(outgoing.recipients)
    if message is None:
        result.lost_claims += 1
    elif message.status == "failed":
        result.failed += 1
        report(f"mail {outgoing.id} to {to} failed for good after attempt "
               f"{outgoing.attempt}: {error}")
    else:
        result.retrying += 1
        due = message.next_attempt_at
        if result.next_attempt_at is None or due < result.next_attempt_at:
            result.next_attempt_at = due
        report(f"mail {outgoing.id} to {to}: attempt {outgoing.attempt} failed ({error}); "
               f"next attempt after {due:%Y-%m-%d %H:%M:%S} UTC")

"""Reading the SOR mailbox over IMAP, each message exactly once, none blocking the next.

Which messages: every message with a UID above the highest one in the ledger
for the mailbox's current UIDVALIDITY, and every message not yet \\Seen. The
UID cursor means a message a person opened in a mail program (and so marked
\\Seen) is still read; the \\Seen search picks up a message whose ledger row was
committed but whose flag was never set. When the UIDVALIDITY changes (the
mailbox was rebuilt or moved) there is no cursor and the whole mailbox is
scanned once; the ledger keeps anything from being read twice.

The protocol, per message, in UID order:

1. fetch its Message-ID (``BODY.PEEK``: reading never sets \\Seen by itself); if
   the ledger has it from this very UID, only set \\Seen (a previous run died
   after its commit);
2. fetch the raw message; if the ledger holds it already - the same Message-ID
   with the same content (one mail delivered twice), or its bytes - only set
   \\Seen. A known Message-ID with other content is recorded anew
   (``message_id_reused``);
3. record it and its application or triage item
   (:func:`applications.mail_service.record_mail`) and COMMIT — one transaction
   (:func:`~sorregistry.database.write_step`);
4. THEN set \\Seen.

No message may block the ones after it. Should step 3 raise anything - a parser
giving up, a value the database refuses, a bug - its work is rolled back and the
message is recorded as ``failed`` with its raw bytes and the error, in a
transaction of its own (:func:`applications.mail_service.record_failure`). Should
even that fail, the error is logged and the message left unseen for the next run,
and the run goes on - unless the database itself no longer answers, or the
applications service cannot be imported: then every message would fail alike, and
the run stops with an error (exit status 1), leaving the rest unread.

Dying before 3's commit records nothing and leaves the message unseen; dying
between 3 and 4 leaves a ledger row and an unseen message, which step 1 of the
next run only flags. Two runs at once cannot both record a message: the
ledger's Message-ID is unique, and the loser's commit fails and is undone.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from applications import mail_service
from applications.mail_headers import message_key
from applications.mail_imap import (
    FetchResult,
    ImapSettings,
    Mailbox,
    MailIntakeError,
    MessageHeader,
    error_text,
)
from applications.mail_models import IncomingMail
from applications.mail_trust import SenderPolicy
from sorregistry.database import DbSession, write_step

__all__ = ["Checkpoint", "CheckpointName", "fetch_mail"]

_FETCH_CHUNK = 100
logger = logging.getLogger(__name__)

# Called with the point and the number of the new message (1, 2, ...) just before
# its commit ("before-commit") and before flagging it \Seen ("before-flag"): the
# crash-recovery test passes one that kills the process there.
CheckpointName = Literal["before-commit", "before-flag"]
Checkpoint = Callable[[CheckpointName, int], None]


# -- the run -----------------------------------------------------------------------------


def fetch_mail(
    session: DbSession,
    settings: ImapSettings,
    *,
    max_size: int,
    senders: SenderPolicy | None = None,
    max_per_sender_hour: int | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = lambda line: None,
    checkpoint: Checkpoint | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> FetchResult:
    """Read the mailbox's new messages into the ledger; returns what was done.

    Unlike the services, this commits: once per message, before the message is
    flagged \\Seen on the server (see the module's docstring). *limit* caps the
    new messages recorded in this run; *senders* and *max_per_sender_hour* are
    :func:`applications.mail_service.record_mail`'s. Raises :class:`MailIntakeError`
    when the server cannot be reached or read, or the database fails (with
    ``result``: what was done before). *checkpoint* (see :data:`Checkpoint`) lets a
    test stop the run between steps. When *should_stop* says so (SIGTERM, in the
    command), the run ends after the message under way, recorded and flagged.
    """
    result = FetchResult()
    mailbox = Mailbox(settings)
    try:
        uidvalidity = mailbox.select()
        after = mail_service.last_uid(session, settings.mailbox, uidvalidity)
        session.commit()  # end the read: no transaction held open while IMAP talks
        run = _Run(session, mailbox, uidvalidity, result, echo, checkpoint, limit, {
            "max_size": max_size, "senders": senders,
            "max_per_sender_hour": max_per_sender_hour,
        })
        uids = mailbox.candidates(after)
        for start in range(0, len(uids), _FETCH_CHUNK):
            for header in mailbox.headers(uids[start:start + _FETCH_CHUNK]):
                if should_stop():
                    result.stopped = True
                    return result
                run.message(header)
    except MailIntakeError as exc:
        session.rollback()
        exc.result = result
        raise
    except (OSError, imaplib.IMAP4.error) as exc:
        session.rollback()
        raise MailIntakeError(
            f"lost the IMAP server {settings.host}:{settings.port}: {error_text(exc)}", result
        ) from None
    finally:
        mailbox.close()
    return result


class _Run:
    """One run over the mailbox: each message to the ledger, then flagged \\Seen."""

    def __init__(self, session: DbSession, mailbox: Mailbox, uidvalidity: int,
                 result: FetchResult, echo: Callable[[str], None],
                 checkpoint: Checkpoint | None, limit: int | None,
                 rules: dict[str, Any]) -> None:
        self.session, self.mailbox, self.uidvalidity = session, mailbox, uidvalidity
        self.result, self.echo, self.checkpoint, self.limit = result, echo, checkpoint, limit
        self.rules = rules
        self.recorded = 0

    def _full(self) -> bool:
        return self.limit is not None and self.recorded >= self.limit

    def message(self, header: MessageHeader) -> None:
        """Read one message into the ledger (or see that it is there), then flag it."""
        key = message_key(header.message_id, b"") if header.message_id else None
        known = key is not None and mail_service.is_processed(self.session, key)
        if known and key is not None and mail_service.recorded_at(
            self.session, key, self.mailbox.settings.mailbox, self.uidvalidity, header.uid
        ):
            self._already(header)
            return
        if not known and self._full():
            self.result.left += 1
            return
        raw = self.mailbox.raw(header.uid)
        if mail_service.already_recorded(self.session, key if known else None, raw):
            self._already(header)
            return
        if self._full():
            self.result.left += 1
            return
        self.recorded += 1
        recorded = self._record(header, raw, key)
        if recorded is None:
            return
        line, outcome = recorded
        if self.checkpoint is not None:
            self.checkpoint("before-flag", self.recorded)
        self.mailbox.mark_seen(header.uid)
        if outcome == "application":
            self.result.applications += 1
        else:
            self.result.triage += 1
        self.result.lines.append(line)
        self.echo(line)

    def _place(self, header: MessageHeader) -> dict[str, Any]:
        return {"mailbox": self.mailbox.settings.mailbox, "uidvalidity": self.uidvalidity,
                "uid": header.uid, "received_at": header.received_at}

    def _record(self, header: MessageHeader, raw: bytes, key: str | None) -> tuple[str, str] | None:
        """Record the message in a transaction of its own: ``(line, outcome)``, or None
        when it was there already or could not be recorded at all."""
        try:
            with write_step(self.session) as session:
                mail = mail_service.record_mail(session, raw, **self._place(header),
                                                **self.rules)
                described = _describe(mail), mail.outcome
                if self.checkpoint is not None:
                    self.checkpoint("before-commit", self.recorded)
            return described
        except mail_service.AlreadyRecorded:
            self._recorded_by_another(header)
            return None
        except ImportError as exc:
            raise MailIntakeError(
                f"the applications service cannot be loaded ({exc}); "
                f"UID {header.uid} and the messages after it are left unread"
            ) from None
        except IntegrityError as exc:
            if key is not None and mail_service.is_processed(self.session, key):
                # Another run recorded it first (the Message-ID is unique).
                self._recorded_by_another(header)
                return None
            return self._failed(header, raw, exc)
        except Exception as exc:  # noqa: BLE001 - no message may block the ones after it
            return self._failed(header, raw, exc)

    def _failed(
        self, header: MessageHeader, raw: bytes, error: Exception
    ) -> tuple[str, str] | None:
        """Record a message whose handling failed (rolled back) as ``failed``, in a
        transaction of its own; should even that fail, leave it unseen for the next run."""
        logger.warning("UID %s could not be handled: %s: %s", header.uid,
                       type(error).__name__, error, exc_info=error)
        try:
            with write_step(self.session) as session:
                mail = mail_service.record_failure(
                    session, raw, **self._place(header), message_id=header.message_id,
                    error=error)
                return _describe(mail), mail.outcome
        except mail_service.AlreadyRecorded:
            self._recorded_by_another(header)
            return None
        except Exception as exc:  # noqa: BLE001 - said, and the message is left for later
            logger.exception("UID %s could not be recorded either", header.uid)
            self._check_database(header, exc)
            self.recorded -= 1
            self.result.skipped += 1
            line = (f"UID {header.uid}: could not be recorded ({type(exc).__name__}: "
                    f"{error_text(exc)[:200]}); left unread for the next run")
            self.result.lines.append(line)
            self.echo(line)
            return None

    def _check_database(self, header: MessageHeader, error: Exception) -> None:
        """Stop the run when the database itself is failing: every message would fail."""
        try:
            self.session.rollback()
            self.session.execute(select(1))
            self.session.rollback()
        except (OperationalError, InterfaceError):
            raise MailIntakeError(
                f"the database failed ({type(error).__name__}: {error_text(error)[:200]}); "
                f"UID {header.uid} and the messages after it are left unread"
            ) from None

    def _recorded_by_another(self, header: MessageHeader) -> None:
        self.recorded -= 1
        self._already(header)

    def _already(self, header: MessageHeader) -> None:
        if not header.seen:
            self.mailbox.mark_seen(header.uid)
        self.result.already += 1
        line = f"UID {header.uid}: already processed ({header.message_id or 'no Message-ID'})"
        self.result.lines.append(line)
        self.echo(line)


def _describe(mail: IncomingMail) -> str:
    where = f"UID {mail.uid} from {mail.sender or '(no sender)'}"
    if mail.outcome == "application":
        reference = f" ({mail.application_reference})" if mail.application_reference else ""
        return f"{where}: application {mail.application_id}{reference}"
    return f"{where}: triage item {mail.id} ({mail.triage_reason})"

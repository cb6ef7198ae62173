"""Reading the SOR mailbox over IMAP, each message exactly once.

Which messages: every message with a UID above the highest one in the ledger
for the mailbox's current UIDVALIDITY, and every message not yet \\Seen. The
UID cursor means a message a person opened in a mail program (and so marked
\\Seen) is still read; the \\Seen search picks up a message whose ledger row was
committed but whose flag was never set. When the UIDVALIDITY changes (the
mailbox was rebuilt or moved) there is no cursor and the whole mailbox is
scanned once; the Message-IDs in the ledger keep anything from being read twice.

The protocol, per message, in UID order:

1. fetch its Message-ID (``BODY.PEEK``: reading never sets \\Seen by itself);
   if the ledger has it, only set \\Seen (a previous run died after its commit);
2. fetch the raw message, record it and its application or triage item
   (:func:`applications.mail_service.record_mail`) and COMMIT — one transaction;
3. THEN set \\Seen.

Dying before 2's commit records nothing and leaves the message unseen; dying
between 2 and 3 leaves a ledger row and an unseen message, which step 1 of the
next run only flags. Two runs at once cannot both record a message: the
ledger's Message-ID is unique, and the loser's commit fails and is undone.
"""

from __future__ import annotations

import base64
import imaplib
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from applications import mail_service
from applications.mail_template import message_key
from sorregistry.database import DbSession

__all__ = [
    "Checkpoint",
    "CheckpointName",
    "FetchResult",
    "ImapSettings",
    "MailIntakeError",
    "fetch_mail",
    "imap_utf7",
]

_FETCH_CHUNK = 100

# Called with the point and the number of the new message (1, 2, ...) just before
# its commit ("before-commit") and before flagging it \Seen ("before-flag"): the
# crash-recovery test passes one that kills the process there.
CheckpointName = Literal["before-commit", "before-flag"]
Checkpoint = Callable[[CheckpointName, int], None]


class MailIntakeError(RuntimeError):
    """The mailbox cannot be read; the message says why. ``result`` is what was done."""

    def __init__(self, message: str, result: FetchResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    mailbox: str = "INBOX"
    use_ssl: bool = True
    starttls: bool = False
    timeout: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImapSettings:
        """From the app's IMAP_* settings; SSL by default on port 993 only."""
        missing = [
            f"SOR_{key}" for key in ("IMAP_HOST", "IMAP_USER", "IMAP_PASSWORD")
            if not config.get(key)
        ]
        if missing:
            raise MailIntakeError(f"the mailbox is not configured: set {', '.join(missing)}")
        port = int(config.get("IMAP_PORT") or 993)
        use_ssl = config.get("IMAP_SSL")
        return cls(
            host=config["IMAP_HOST"],
            port=port,
            user=config["IMAP_USER"],
            password=config["IMAP_PASSWORD"],
            mailbox=config.get("IMAP_MAILBOX") or "INBOX",
            use_ssl=port == 993 if use_ssl is None else bool(use_ssl),
            starttls=bool(config.get("IMAP_STARTTLS")),
            timeout=float(config.get("IMAP_TIMEOUT") or 60),
        )


@dataclass
class FetchResult:
    applications: int = 0
    triage: int = 0
    already: int = 0
    left: int = 0  # new messages not read because of --limit
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.applications} application{'s' * (self.applications != 1)}, "
            f"{self.triage} triage item{'s' * (self.triage != 1)}, "
            f"{self.already} already processed"
        )
        if self.left:
            text += f"; {self.left} left for the next run (--limit)"
        return text


# -- IMAP --------------------------------------------------------------------------------


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3).

    "Ansøgninger" -> "Ans&APg-gninger": imaplib sends names as they are given.
    """

    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _quoted(name: str) -> str:
    encoded = imap_utf7(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class _Header:
    uid: int
    seen: bool
    size: int
    received_at: datetime | None
    message_id: str | None


_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def _fetched(data: Iterable[Any]) -> list[tuple[bytes, bytes | None]]:
    """imaplib's FETCH answer as (attributes, literal) per message."""
    records: list[tuple[bytes, bytes | None]] = []
    for item in data:
        if isinstance(item, tuple):
            records.append((item[0], item[1]))
        elif isinstance(item, bytes) and records and item.strip() != b")":
            # Attributes the server sent after the literal, e.g. b' UID 7)'.
            attributes, literal = records[-1]
            records[-1] = (attributes + b" " + item, literal)
        elif isinstance(item, bytes) and item.strip() not in (b"", b")"):
            records.append((item, None))
    return records


def _internaldate(attributes: bytes) -> datetime | None:
    parsed = imaplib.Internaldate2tuple(attributes)
    return datetime.fromtimestamp(time.mktime(parsed), UTC) if parsed else None


class _Mailbox:
    """The few IMAP operations the intake needs, on one connection."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        where = f"{settings.host}:{settings.port}"
        try:
            if settings.use_ssl:
                self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    settings.host, settings.port, timeout=settings.timeout
                )
            else:
                self.imap = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
                if settings.starttls:
                    self.imap.starttls(ssl.create_default_context())
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailIntakeError(f"cannot connect to the IMAP server {where}: {exc}") from None
        try:
            self.imap.login(settings.user, settings.password)
        except (OSError, imaplib.IMAP4.error) as exc:
            self.close()
            raise MailIntakeError(
                f"IMAP login as {settings.user} at {where} failed: {_text(exc)}"
            ) from None

    def select(self) -> int:
        """Open the mailbox read-write; return its UIDVALIDITY."""
        status, data = self.imap.select(_quoted(self.settings.mailbox))
        if status != "OK":
            raise MailIntakeError(
                f"cannot open the mailbox {self.settings.mailbox!r}: {_text(data)}"
            )
        _, values = self.imap.response("UIDVALIDITY")
        if not values or values[0] is None:
            raise MailIntakeError("the IMAP server did not say the mailbox's UIDVALIDITY")
        return int(values[0])

    def _uids(self, *criteria: str) -> set[int]:
        status, data = self.imap.uid("SEARCH", None, *criteria)
        if status != "OK":
            raise MailIntakeError(f"IMAP SEARCH {' '.join(criteria)} failed: {_text(data)}")
        return {int(uid) for uid in (data[0] or b"").split()}

    def candidates(self, after: int | None) -> list[int]:
        """Unseen messages, and every message above the cursor (all without one)."""
        if after is None:
            new = self._uids("ALL")
        else:
            # "n:*" always includes the last message, even below n: filter here.
            new = {uid for uid in self._uids("UID", f"{after + 1}:*") if uid > after}
        return sorted(new | self._uids("UNSEEN"))

    def headers(self, uids: list[int]) -> list[_Header]:
        status, data = self.imap.uid(
            "FETCH",
            ",".join(map(str, uids)),
            "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
        )
        if status != "OK":
            raise MailIntakeError(f"IMAP FETCH failed: {_text(data)}")
        found = []
        for attributes, literal in _fetched(data):
            uid = _UID.search(attributes)
            if uid is None:
                continue  # an unsolicited FETCH (a flag change by someone else)
            flags = _FLAGS.search(attributes)
            size = _SIZE.search(attributes)
            header = BytesParser(policy=policy.default).parsebytes(
                literal or b"", headersonly=True
            )
            message_id = header.get("Message-ID")
            found.append(
                _Header(
                    uid=int(uid.group(1)),
                    seen=bool(flags and b"\\seen" in flags.group(1).lower()),
                    size=int(size.group(1)) if size else 0,
                    received_at=_internaldate(attributes),
                    message_id=str(message_id) if message_id else None,
                )
            )
        return sorted(found, key=lambda header: header.uid)

    def raw(self, uid: int) -> bytes:
        status, data = self.imap.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
        if status == "OK":
            for attributes, literal in _fetched(data):
                found = _UID.search(attributes)
                if literal is not None and found and int(found.group(1)) == uid:
                    return literal
        raise MailIntakeError(f"IMAP could not fetch message UID {uid}: {_text(data)}")

    def mark_seen(self, uid: int) -> None:
        status, data = self.imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen)")
        if status != "OK":
            raise MailIntakeError(f"IMAP could not flag message UID {uid}: {_text(data)}")

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _text(value: Any) -> str:
    if isinstance(value, BaseException):
        value = value.args[0] if value.args else str(value)
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


# -- the run -----------------------------------------------------------------------------


def fetch_mail(
    session: DbSession,
    settings: ImapSettings,
    *,
    max_size: int,
    limit: int | None = None,
    echo: Callable[[str], None] = lambda line: None,
    checkpoint: Checkpoint | None = None,
) -> FetchResult:
    """Read the mailbox's new messages into the ledger; returns what was done.

    Unlike the services, this commits: once per message, before the message is
    flagged \\Seen on the server (see the module's docstring). *limit* caps the
    new messages recorded in this run. Raises :class:`MailIntakeError` when the
    server cannot be reached or read (with ``result``: what was done before).
    *checkpoint* (see :data:`Checkpoint`) lets a test stop the run between steps.
    """
    result = FetchResult()
    mailbox = _Mailbox(settings)
    try:
        uidvalidity = mailbox.select()
        after = mail_service.last_uid(session, settings.mailbox, uidvalidity)
        session.commit()  # end the read: no transaction held open while IMAP talks
        uids = mailbox.candidates(after)
        recorded = 0
        for start in range(0, len(uids), _FETCH_CHUNK):
            for header in mailbox.headers(uids[start:start + _FETCH_CHUNK]):
                known = header.message_id and mail_service.is_processed(
                    session, message_key(header.message_id, b"")
                )
                if known:
                    _already(mailbox, header, result, echo)
                    continue
                if limit is not None and recorded >= limit:
                    result.left += 1
                    continue
                raw = mailbox.raw(header.uid)
                if not header.message_id and mail_service.is_processed(
                    session, message_key(None, raw)
                ):
                    _already(mailbox, header, result, echo)
                    continue
                recorded += 1
                key = message_key(header.message_id, raw)
                try:
                    mail = mail_service.record_mail(
                        session, raw, mailbox=settings.mailbox, uidvalidity=uidvalidity,
                        uid=header.uid, received_at=header.received_at, max_size=max_size,
                    )
                    line, outcome = _describe(mail), mail.outcome
                    if checkpoint is not None:
                        checkpoint("before-commit", recorded)
                    session.commit()
                except ImportError as exc:
                    raise MailIntakeError(
                        f"the applications service cannot be loaded ({exc}); "
                        f"UID {header.uid} and the messages after it are left unread"
                    ) from None
                except IntegrityError:
                    session.rollback()
                    if not mail_service.is_processed(session, key):
                        raise
                    # Another run recorded it first (the Message-ID is unique).
                    recorded -= 1
                    _already(mailbox, header, result, echo)
                    continue
                if checkpoint is not None:
                    checkpoint("before-flag", recorded)
                mailbox.mark_seen(header.uid)
                if outcome == "application":
                    result.applications += 1
                else:
                    result.triage += 1
                result.lines.append(line)
                echo(line)
    except MailIntakeError as exc:
        session.rollback()
        exc.result = result
        raise
    except (OSError, imaplib.IMAP4.error) as exc:
        session.rollback()
        raise MailIntakeError(
            f"lost the IMAP server {settings.host}:{settings.port}: {_text(exc)}", result
        ) from None
    finally:
        mailbox.close()
    return result


def _already(
    mailbox: _Mailbox, header: _Header, result: FetchResult, echo: Callable[[str], None]
) -> None:
    if not header.seen:
        mailbox.mark_seen(header.uid)
    result.already += 1
    line = f"UID {header.uid}: already processed ({header.message_id or 'no Message-ID'})"
    result.lines.append(line)
    echo(line)


def _describe(mail: Any) -> str:
    where = f"UID {mail.uid} from {mail.sender or '(no sender)'}"
    if mail.outcome == "application":
        reference = f" ({mail.application_reference})" if mail.application_reference else ""
        return f"{where}: application {mail.application_id}{reference}"
    return f"{where}: triage item {mail.id} ({mail.triage_reason})"

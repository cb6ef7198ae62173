"""The intake's side of IMAP: the settings, the few operations a run needs, what it did.

:class:`Mailbox` is one connection: select the mailbox (its UIDVALIDITY), find the
candidates (unseen, and above the UID cursor), fetch their Message-IDs and then one
raw message at a time (``BODY.PEEK``: reading sets no flag), flag one \\Seen. How a
run uses them, and in what order, is :mod:`applications.mail_intake`'s.
"""

from __future__ import annotations

import base64
import imaplib
import re
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from applications.mail_headers import header_values, read_headers

__all__ = [
    "FetchResult",
    "ImapSettings",
    "MailIntakeError",
    "Mailbox",
    "MessageHeader",
    "error_text",
    "imap_utf7",
]


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
    skipped: int = 0  # could not even be recorded as failed: left unseen for the next run
    stopped: bool = False  # SIGTERM: stopped after the mail under way
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.applications} application{'s' * (self.applications != 1)}, "
            f"{self.triage} triage item{'s' * (self.triage != 1)}, "
            f"{self.already} already processed"
        )
        if self.left:
            text += f"; {self.left} left for the next run (--limit)"
        if self.skipped:
            text += f"; {self.skipped} could not be recorded, left for the next run"
        if self.stopped:
            text += "; stopped (a signal): the rest is left for the next run"
        return text


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
class MessageHeader:
    """What a run needs to know of a message before it fetches the message itself."""

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


class Mailbox:
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
                f"IMAP login as {settings.user} at {where} failed: {error_text(exc)}"
            ) from None

    def select(self) -> int:
        """Open the mailbox read-write; return its UIDVALIDITY."""
        status, data = self.imap.select(_quoted(self.settings.mailbox))
        if status != "OK":
            raise MailIntakeError(
                f"cannot open the mailbox {self.settings.mailbox!r}: {error_text(data)}"
            )
        _, values = self.imap.response("UIDVALIDITY")
        if not values or values[0] is None:
            raise MailIntakeError("the IMAP server did not say the mailbox's UIDVALIDITY")
        return int(values[0])

    def _uids(self, *criteria: str) -> set[int]:
        status, data = self.imap.uid("SEARCH", *criteria)
        if status != "OK":
            raise MailIntakeError(f"IMAP SEARCH {' '.join(criteria)} failed: {error_text(data)}")
        return {int(uid) for uid in (data[0] or b"").split()}

    def candidates(self, after: int | None) -> list[int]:
        """Unseen messages, and every message above the cursor (all without one)."""
        if after is None:
            new = self._uids("ALL")
        else:
            # "n:*" always includes the last message, even below n: filter here.
            new = {uid for uid in self._uids("UID", f"{after + 1}:*") if uid > after}
        return sorted(new | self._uids("UNSEEN"))

    def headers(self, uids: list[int]) -> list[MessageHeader]:
        status, data = self.imap.uid(
            "FETCH",
            ",".join(map(str, uids)),
            "(UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
        )
        if status != "OK":
            raise MailIntakeError(f"IMAP FETCH failed: {error_text(data)}")
        found = []
        for attributes, literal in _fetched(data):
            uid = _UID.search(attributes)
            if uid is None:
                continue  # an unsolicited FETCH (a flag change by someone else)
            flags = _FLAGS.search(attributes)
            size = _SIZE.search(attributes)
            message_ids = header_values(read_headers(literal or b""), "Message-ID")
            found.append(
                MessageHeader(
                    uid=int(uid.group(1)),
                    seen=bool(flags and b"\\seen" in flags.group(1).lower()),
                    size=int(size.group(1)) if size else 0,
                    received_at=_internaldate(attributes),
                    message_id=message_ids[0] if message_ids else None,
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
        raise MailIntakeError(f"IMAP could not fetch message UID {uid}: {error_text(data)}")

    def mark_seen(self, uid: int) -> None:
        status, data = self.imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen)")
        if status != "OK":
            raise MailIntakeError(f"IMAP could not flag message UID {uid}: {error_text(data)}")

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def error_text(value: Any) -> str:
    """An IMAP answer or an exception as one line of text."""
    if isinstance(value, BaseException):
        value = value.args[0] if value.args else str(value)
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()

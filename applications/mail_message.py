"""Reading an emailed application's MIME message: its text, its files, its headers.

:func:`parse_mail` is the intake's one reading of a raw message: the headers on their
own (:mod:`applications.mail_headers`, which never raises), then the body - the plain
text, or the HTML made text, in any transfer encoding and charset - read into the
template's fields (:mod:`applications.mail_template`), and the attachments. A body
with more parts or nesting than :data:`MAX_PARTS` and :data:`MAX_MULTIPARTS` is not
parsed at all, and whatever else a hostile body does to Python's MIME parser (a
RecursionError at about 1,000 nested multiparts, measured: 500 pass) is caught; both
are said in ``error``, and the caller keeps the raw bytes either way.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

from applications.mail_headers import (
    clean_text,
    header_text,
    header_values,
    message_key,
    read_headers,
    safe_filename,
    sender_address,
)
from applications.mail_template import parse_template

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_MULTIPARTS",
    "MAX_PARTS",
    "Attachment",
    "ParsedMail",
    "body_text",
    "html_to_text",
    "parse_mail",
]

# -- HTML --------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """HTML to text: blocks become lines, table cells are separated by tabs."""

    _BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
               "ul", "ol", "blockquote", "pre", "hr", "section", "article", "header",
               "footer", "dt", "dd"}
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "blockquote":
            self.parts.append(_QUOTE_START)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "blockquote":
            self.parts.append(_QUOTE_END)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


# Private-use characters marking a blockquote's start and end in the extracted text.
_QUOTE_START, _QUOTE_END = "\ue000", "\ue001"


def html_to_text(html: str) -> str:
    """Readable text from an HTML mail body (stdlib only).

    Quoted replies (``<blockquote>``) come out with "> " before each line, as
    mail programs write them in plain text, so the template parser stops there.
    """
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines: list[str] = []
    depth = 0
    for line in "".join(extractor.parts).replace("\xa0", " ").split("\n"):
        quoted = depth > 0 or _QUOTE_START in line
        depth += line.count(_QUOTE_START) - line.count(_QUOTE_END)
        line = line.replace(_QUOTE_START, "").replace(_QUOTE_END, "")
        # Collapse spaces, drop a row's leading empty cell; tabs between cells stay.
        line = re.sub(r" {2,}", " ", line).strip(" \t")
        lines.append("> " + line if quoted and line else line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- the message ---------------------------------------------------------------------------

# More attachments than this and the mail is not made an application: a person looks.
MAX_ATTACHMENTS = 100
# A body with more MIME parts, or more multipart containers, is not parsed: Python's
# parser spends about 1.3 ms a part (2,000 parts: 2.6 s, measured) and recurses once a
# level. 100 containers bound the nesting far below the recursion limit; a real mail,
# a forwarded thread included, has a handful.
MAX_PARTS = 500
MAX_MULTIPARTS = 100
_CONTENT_TYPE = re.compile(rb"^content-type:", re.IGNORECASE | re.MULTILINE)
_MULTIPART = re.compile(rb"^content-type:\s*multipart/", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class ParsedMail:
    """What the intake reads from one message.

    ``error`` says why the body could not be parsed at all (the MIME parser gave up:
    nesting beyond Python's recursion limit, ...); the headers are read all the same,
    and kept in ``headers`` (for the sender's authentication).
    """

    message_id: str
    sender: str | None
    subject: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    error: str | None = None
    headers: EmailMessage = field(default_factory=EmailMessage, repr=False)

    @property
    def readable(self) -> bool:
        return not self.problems


def _decode(part: Message) -> str:
    """A text part's content as str, whatever its transfer encoding and charset.

    ISO-8859-1 is read as windows-1252 (its superset, and what Windows mail
    programs really send); a wrong or unknown charset falls back to UTF-8, then
    windows-1252, rather than failing.
    """
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = (part.get_content_charset() or "").lower()
    if charset in ("iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1"):
        charset = "windows-1252"
    elif charset in ("", "us-ascii", "ascii"):
        charset = "utf-8"  # undeclared 8-bit text is nowadays UTF-8 more often than not
    for attempt in (charset, "utf-8"):  # a charset that does not exist: UTF-8, likely
        try:
            return data.decode(attempt)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("windows-1252", errors="replace")


def body_text(message: EmailMessage) -> str:
    """The mail's text: its plain body, or its HTML body made text; no control characters."""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    text = _decode(body)
    if body.get_content_subtype() == "html":
        text = html_to_text(text)
    return clean_text(text, multiline=True)


def _attachment(part: Message, number: int) -> Attachment:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        data = first.as_bytes() if isinstance(first, Message) else b""
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    filename = part.get_filename()
    if not filename:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        filename = f"bilag-{number}{extension}"
    return Attachment(filename=safe_filename(filename), content_type=clean_text(content_type),
                      data=data)


def _attachments(message: EmailMessage, problems: list[str]) -> list[Attachment]:
    """The files that came with the mail; a part that cannot be read is a problem."""
    body = message.get_body(preferencelist=("plain", "html"))
    found: list[Attachment] = []
    for number, part in enumerate(message.walk(), start=1):
        if part is body or part.is_multipart():
            continue
        try:
            if part.get_content_disposition() != "attachment" and not part.get_filename():
                continue  # an alternative body or an unnamed inline part
            if len(found) == MAX_ATTACHMENTS:
                problems.append(f"the mail has more than {MAX_ATTACHMENTS} attachments")
                break
            found.append(_attachment(part, len(found) + 1))
        except Exception as exc:  # noqa: BLE001 - one hostile part must not lose the others
            problems.append(clean_text(f"MIME part {number} could not be read: "
                                       f"{type(exc).__name__}: {exc}")[:500])
    return found


def parse_mail(raw: bytes, *, body: bool = True) -> ParsedMail:
    """Parse a raw RFC 822 message into the template's fields, problems and attachments.

    Never raises for what a mail contains: the headers are read on their own
    (:mod:`applications.mail_headers`), and a body the MIME parser gives up on leaves
    ``error`` set, no text and the reason in ``problems``. Without *body* (a mail too
    large to read) only the headers are.
    """
    headers = read_headers(raw)
    message_ids = header_values(headers, "Message-ID")
    parsed = ParsedMail(
        message_id=message_key(message_ids[0] if message_ids else None, raw),
        sender=sender_address(headers),
        subject="".join(header_text(value) for value in header_values(headers, "Subject")[:1]),
        text="",
        headers=headers,
    )
    if not body:
        return parsed
    parts, containers = len(_CONTENT_TYPE.findall(raw)), len(_MULTIPART.findall(raw))
    if parts > MAX_PARTS or containers > MAX_MULTIPARTS:
        parsed.error = (f"{parts} MIME parts, {containers} of them multipart; at most "
                        f"{MAX_PARTS} and {MAX_MULTIPARTS} are read")
        parsed.problems = [f"the message could not be parsed ({parsed.error})"]
        return parsed
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)  # policy.default makes EmailMessages
        parsed.text = body_text(message)
        parsed.fields, parsed.problems = parse_template(parsed.text)
        parsed.attachments = _attachments(message, parsed.problems)
    except Exception as exc:  # noqa: BLE001 - RecursionError, and whatever else a body does
        parsed.error = clean_text(f"{type(exc).__name__}: {exc}")[:500]
        parsed.text, parsed.fields, parsed.attachments = "", {}, []
        parsed.problems = [f"the message could not be parsed ({parsed.error})"]
    return parsed

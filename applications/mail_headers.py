"""What the mail intake reads from a message's headers, none of it trusted.

A mail comes from anyone, so every header is read as bytes someone else chose:

- never through the email package's structured header parsers, which raise on
  input they dislike (``From: =?utf-8?q?X=0D=0AY?= <a@b.dk>``, an encoded CR LF in
  a display name, raises ``ValueError`` at the first look): the raw values of
  :meth:`email.message.Message.raw_items` are read and decoded here, and a value
  that does not decode is kept as written;
- every value the service stores or shows is made :func:`clean_text`: no NUL
  (PostgreSQL's text refuses it), no other control character, no lone surrogate
  (from 8-bit headers; orjson and psycopg refuse those);
- the sender is read strictly (:func:`sender_address`): one From header with one
  address, in the two shapes every mail program writes. Anything else has no
  sender, so that the address the service looks up and the address a receiving
  server authenticated (:mod:`applications.mail_trust`) cannot be two different
  readings of one ambiguous header.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from email import policy
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser

__all__ = [
    "FALLBACK_FILENAME",
    "clean_text",
    "content_digest",
    "digest_key",
    "header_text",
    "header_values",
    "message_key",
    "read_headers",
    "safe_filename",
    "sender_address",
    "sender_domain",
]

# C0 controls but tab and line feed, DEL and the C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\t]")
# Invisible characters that make a file name read other than it is ("gpj.exe" shown as
# "exe.jpg"): the bidirectional controls and the zero-width ones (Unicode category Cf).
FALLBACK_FILENAME = "vedhæftet fil"
MAX_FILENAME = 255

# An address as stored and compared: lower-cased, no white space, no control character,
# no specials in the local part, an ASCII (or IDNA) domain with at least one dot.
_ADDRESS = re.compile(
    r"[^\s\x00-\x1f\x7f@<>()\[\],;:\"\\]{1,64}"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME_AND_ADDRESS = re.compile(r"^(?P<name>[^<>]*)<(?P<address>[^<>]*)>\s*$")
_TRAILING_COMMENT = re.compile(r"\s*\([^()<>@,;:\"]*\)\s*$")


def _unsurrogate(value: str) -> str:
    """8-bit header bytes come back from the parser as lone surrogates: read them as UTF-8
    (else as the replacement character)."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte
        return value.encode("utf-8", "replace").decode("utf-8")


def clean_text(value: str, *, multiline: bool = False) -> str:
    """*value* fit to store and to show: no NUL or other control character, valid UTF-8.

    Line breaks and tabs become spaces, unless *multiline* (a body's text), which keeps
    ``\\n`` and tabs and makes every CR LF or lone CR a ``\\n``. Other control characters
    become U+FFFD, so that staff see that something was there.
    """
    text = _unsurrogate(value)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    else:
        text = _LINE_BREAKS.sub(" ", text)
    return _CONTROL.sub("\ufffd", text)


def safe_filename(name: str | None) -> str:
    """A file name that can be stored, shown and sent in a Content-Disposition header.

    The last path component only (no ``../``), without control characters, invisible
    format characters (bidirectional overrides) or leading dots, at most 255
    characters with the extension kept; :data:`FALLBACK_FILENAME` when nothing is left.
    """
    text = clean_text(name or "").replace("\ufffd", "")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = re.split(r"[/\\]", text)[-1]
    text = " ".join(text.split()).lstrip(". ")
    if len(text) > MAX_FILENAME:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            text = stem[: MAX_FILENAME - len(extension) - 1] + "." + extension
        else:
            text = text[:MAX_FILENAME]
    return text or FALLBACK_FILENAME


def header_values(message: Message, name: str) -> list[str]:
    """The raw values of every *name* header, in order, as the parser kept them."""
    wanted = name.lower()
    return [str(value) for key, value in message.raw_items() if key.lower() == wanted]


def header_text(value: str) -> str:
    """A header's value for people: encoded words decoded, unfolded, :func:`clean_text`.

    A value whose encoded words do not decode (an unknown charset, broken base64) is
    kept as written.
    """
    text = _unsurrogate(value)
    try:
        text = str(make_header(decode_header(text)))
    except (LookupError, ValueError, MessageError):
        pass
    return " ".join(clean_text(text).split())


def read_headers(raw: bytes) -> EmailMessage:
    """The message's header block only: no body is parsed, nothing recurses."""
    message = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessages
    return message


def _address(text: str) -> str | None:
    address = text.strip().lower()
    return address if len(address) <= 254 and _ADDRESS.fullmatch(address) else None


def sender_address(message: Message) -> str | None:
    """The From address, lower-cased; None unless exactly one unambiguous address.

    Two shapes are read, as every mail program writes them: ``addr@example.dk`` (with an
    optional ``(comment)`` after it) and ``Display Name <addr@example.dk>``, the display
    name quoted or encoded or neither. No second From header, no list of addresses, no
    second ``<…>``.
    """
    values = header_values(message, "From")
    if len(values) != 1:
        return None
    value = " ".join(_unsurrogate(values[0]).split())
    shaped = _NAME_AND_ADDRESS.match(value)
    if shaped is None:
        return _address(_TRAILING_COMMENT.sub("", value))
    name = _QUOTED.sub("", shaped["name"])
    if any(ch in name for ch in ',;<>"'):
        return None  # a list of addresses, or a broken quote: not one sender
    return _address(shaped["address"])


def sender_domain(address: str | None) -> str | None:
    """The domain of an address (``sor@kk.dk`` -> ``kk.dk``)."""
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].lower().rstrip(".") or None


def message_key(message_id: str | None, raw: bytes) -> str:
    """The ledger's key: the Message-ID, or a digest of the raw bytes when it has none.

    White space is collapsed and control characters replaced; an overlong Message-ID
    (the column holds 255) is replaced by its own digest, which is as stable as the id.
    """
    if message_id:
        cleaned = " ".join(clean_text(message_id).split())
        if cleaned:
            if len(cleaned) <= 255:
                return cleaned
            return "sha256-id:" + hashlib.sha256(cleaned.encode("utf-8")).hexdigest()
    return digest_key(raw)


def digest_key(raw: bytes) -> str:
    """The ledger's key for a message by its bytes alone."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# The headers its author wrote: two deliveries of one mail differ only in the others
# (Received, Delivered-To, Return-Path, Authentication-Results, ...).
_AUTHOR_HEADERS = (b"from", b"sender", b"to", b"cc", b"subject", b"date", b"message-id",
                   b"content-type")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def content_digest(raw: bytes) -> str:
    """A digest of what the author wrote: the author's headers and the body.

    Two copies of one mail delivered twice (to two aliases, or before and after a
    mailbox was rebuilt) have the same digest; another mail that reuses a Message-ID
    has another. Line endings and trailing white space do not count.
    """
    split = _HEADER_END.search(raw)
    head, body = (raw[: split.start()], raw[split.end():]) if split else (raw, b"")
    fields: list[bytes] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        else:
            fields.append(line.strip())
    digest = hashlib.sha256()
    for name in _AUTHOR_HEADERS:
        for field in fields:
            found, colon, value = field.partition(b":")
            if colon and found.strip().lower() == name:
                digest.update(name + b":" + b" ".join(value.split()) + b"\n")
    lines = [line.rstrip() for line in body.replace(b"\r\n", b"\n").split(b"\n")]
    digest.update(b"\n" + b"\n".join(lines).rstrip(b"\n"))
    return digest.hexdigest()

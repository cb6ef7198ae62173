"""Hostile mails, as an outside probe sent them to the SOR mailbox (issue 12).

Each is built here as bytes, by hand where the stdlib would refuse to write it. The
three *poison* mails each stopped ``fetch-mail`` for good before the fix: it died
before recording the message, and again on the same UID at every later run.
"""

from __future__ import annotations

import base64
import itertools

from tests.applications.messages import AARHUS, mail, template_text

_numbers = itertools.count(1)


def _id(name: str) -> bytes:
    return f"<{name}-{next(_numbers)}@probe.example>".encode()


def _message(headers: list[bytes], body: bytes = b"Hej\r\n") -> bytes:
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


# -- the three poison mails ----------------------------------------------------------------


def crlf_display_name(sender: str = "a@b.dk") -> bytes:
    """An encoded CR LF in the From display name: ValueError from the address parser."""
    return _message([
        f"From: =?utf-8?q?X=0D=0AY?= <{sender}>".encode(),
        b"To: sor@sundhedsdata.dk",
        b"Subject: =?utf-8?q?Ans=C3=B8gning?=",
        b"Message-ID: " + _id("crlf"),
    ], template_text().replace("\n", "\r\n").encode())


def nested_multipart(levels: int = 1000, sender: str = AARHUS) -> bytes:
    """About 1,000 nested multiparts (64 KB; 500 pass): RecursionError in the parser."""
    inner = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(1, levels))
    closing = b"".join(b"\r\n--b%d--" % i for i in reversed(range(levels)))
    return _message([
        f"From: {sender}".encode(), b"To: sor@sundhedsdata.dk", b"Subject: deep",
        b"Message-ID: " + _id("deep"), b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b0"',
    ], b"--b0\r\n" + inner + b"Content-Type: text/plain\r\n\r\nAns\xc3\xb8gning: ny\r\n"
       + closing + b"\r\n")


def nul_subject(sender: str = AARHUS) -> bytes:
    """From a registered contact, unreadable, ``Subject: =?utf-8?q?a=00b?=``: on
    PostgreSQL a DataError (NUL) while writing the notice to the sender."""
    return _message([
        f"From: {sender}".encode(), b"To: sor@sundhedsdata.dk",
        b"Subject: =?utf-8?q?a=00b?=", b"Message-ID: " + _id("nul"),
    ], b"Hej, kan I give os en SOR-kode?\r\n")


POISON = {"crlf": crlf_display_name, "deep": nested_multipart, "nul": nul_subject}


# -- the rest of the corpus ------------------------------------------------------------


def forged(sender: str = AARHUS, *, results: str = "spf=fail smtp.mailfrom=evil.example; "
           "dmarc=fail header.from=aarhus.dk", authserv_id: str = "mx.sds.dk",
           reply_to: str = "attacker@evil.example") -> bytes:
    """A registered contact's From, sent from elsewhere, asking for replies elsewhere."""
    raw = mail(template_text(Kontakt_e_mail=reply_to), sender=sender)
    return f"Authentication-Results: {authserv_id}; {results}\r\n".encode() + raw


def authenticated(sender: str = AARHUS, *, reply_to: str | None = None,
                  authserv_id: str = "mx.sds.dk", **changes: str) -> bytes:
    """What the receiving server says of a genuine mail: DMARC passed."""
    if reply_to is not None:
        changes["Kontakt_e_mail"] = reply_to
    domain = sender.rpartition("@")[2]
    raw = mail(template_text(**changes), sender=sender)
    return (f"Authentication-Results: {authserv_id}; spf=pass smtp.mailfrom={domain}; "
            f"dkim=pass header.d={domain}; dmarc=pass header.from={domain}\r\n").encode() + raw


def huge(size: int = 10 * 1024 * 1024 + 1) -> bytes:
    """More than 10 MB (SOR_IMAP_MAX_MESSAGE_SIZE's default)."""
    blob = base64.encodebytes(b"\x00" * (size * 3 // 4 + 1024)).replace(b"\n", b"\r\n")
    return _message([
        f"From: {AARHUS}".encode(), b"Subject: scan", b"Message-ID: " + _id("huge"),
        b"MIME-Version: 1.0", b"Content-Type: application/octet-stream",
        b"Content-Transfer-Encoding: base64",
    ], blob)


def many_parts(parts: int = 2000, sender: str = "a@b.dk") -> bytes:
    """One multipart with 2,000 named parts."""
    body = b"".join(
        b'--x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; '
        b'filename="f%d.txt"\r\n\r\n%d\r\n' % (i, i) for i in range(parts)) + b"--x--\r\n"
    return _message([
        f"From: {sender}".encode(), b"Subject: parts", b"Message-ID: " + _id("parts"),
        b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="x"',
    ], body)


def invalid_charsets() -> bytes:
    """Charsets that do not exist, in the Subject's encoded word and the body."""
    return _message([
        f"From: {AARHUS}".encode(), b"Subject: =?x-bogus?q?Ans=F8gning?=",
        b"Message-ID: " + _id("charset"), b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=x-bogus-8",
        b"Content-Transfer-Encoding: 8bit",
    ], template_text().encode("utf-8").replace(b"\n", b"\r\n") + b"\xff\xfe\x01")


def hostile_attachment_names() -> bytes:
    """Attachments named with CR LF, a path, a bidirectional override and 10,000 letters."""
    parts = [
        (b"attachment; filename*=utf-8''plan%0D%0AX-Evil%3A%201.zip", b"PK\x03\x04"),
        (b'attachment; filename="../../../etc/passwd"', b"root:x:0:0"),
        (b"attachment; filename*=utf-8''faktura%E2%80%AEfdp.exe", b"MZ"),
        (b'attachment; filename="' + b"a" * 10_000 + b'.zip"', b"PK\x05\x06"),
    ]
    body = (b"--x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + template_text().encode().replace(b"\n", b"\r\n") + b"\r\n")
    for disposition, data in parts:
        body += (b"--x\r\nContent-Type: application/zip\r\nContent-Disposition: "
                 + disposition + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                 + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    return _message([
        f"From: {AARHUS}".encode(), b"Subject: bilag", b"Message-ID: " + _id("names"),
        b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="x"',
    ], body + b"--x--\r\n")


def subject_injection(sender: str = AARHUS) -> bytes:
    """A Subject that decodes to a second header line (Bcc) for whoever writes it back."""
    return _message([
        f"From: {sender}".encode(), b"To: sor@sundhedsdata.dk",
        b"Subject: =?utf-8?q?Hej=0D=0ABcc:_victim@example.dk=0D=0A=0D=0Abody?=",
        b"Message-ID: " + _id("inject"),
    ], b"Hej, kan I give os en SOR-kode?\r\n")


def eight_bit_headers() -> bytes:
    """Raw UTF-8 and a stray Latin-1 byte in the headers, no encoded words."""
    return _message([
        "From: Kirsten Ølgaard <sor@aarhus.dk>".encode(), b"To: sor@sundhedsdata.dk",
        "Subject: Ansøgning om SOR-kode, Æblehaven ".encode() + b"\xe6\xf8",
        b"Message-ID: " + _id("8bit"),
    ], template_text().encode().replace(b"\n", b"\r\n"))


def empty() -> bytes:
    """Nothing but the line that ends the (absent) headers; an IMAP server refuses b""."""
    return b"\r\n"


def headers_only() -> bytes:
    """Headers and no body, not even the empty line."""
    return b"From: sor@aarhus.dk\r\nSubject: kun hoved\r\nMessage-ID: " + _id("head") + b"\r\n"


CORPUS = {
    "crlf": crlf_display_name,
    "deep": nested_multipart,
    "nul": nul_subject,
    "forged": forged,
    "huge": huge,
    "many_parts": many_parts,
    "invalid_charsets": invalid_charsets,
    "attachment_names": hostile_attachment_names,
    "subject_injection": subject_injection,
    "eight_bit_headers": eight_bit_headers,
    "empty": empty,
    "headers_only": headers_only,
}

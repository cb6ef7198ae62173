"""Files the applications serve as downloads: the raw mails and the attachments.

Their content came from outside, so it is sent as a download and never rendered
(``Content-Disposition: attachment``, ``X-Content-Type-Options: nosniff``). The
API and the staff pages answer with the same response.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response

from applications.mail_headers import safe_filename
from applications.mail_models import IncomingMail
from applications.models import ApplicationAttachment


def raw_mail(mail: IncomingMail) -> Response:
    """The original message, attachments included, to open in a mail program."""
    response = Response(mail.raw, mimetype="message/rfc822")
    response.headers["Content-Disposition"] = f'attachment; filename="mail-{mail.id}.eml"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def attachment(file: ApplicationAttachment) -> Response:
    """An application's attachment under its own name, with the type it came with beside."""
    response = Response(file.data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = _disposition(file.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Original-Content-Type"] = file.content_type
    return response


def _disposition(filename: str) -> str:
    """A download named *filename*: an ASCII fallback and the UTF-8 name (RFC 6266).

    The name is made safe again here (:func:`~applications.mail_headers.safe_filename`):
    names stored before the intake cleaned them may hold CR, LF or other control
    characters, which no header may carry.
    """
    name = safe_filename(filename)
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"

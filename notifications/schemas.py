"""Marshmallow schemas of the outbox API (staff only).

Descriptions in English and Danish, as in the rest of the API.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from notifications.mails import KINDS
from notifications.models import OUTCOMES, STATUSES


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class OutboxArgsSchema(Schema):
    class Meta:
        ordered = True

    status = fields.String(
        validate=validate.OneOf(STATUSES),
        **_d("Only mails with this status: queued, sending, sent, failed", "Kun mails med status"),
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=500),
        **_d("Page size, at most 500", "Sidestørrelse"),
    )
    cursor = fields.String(
        validate=validate.Regexp(r"^[1-9][0-9]{0,17}$"),
        **_d("From the previous page's next", "Fra forrige sides next"),
    )


class OutboxAttemptSchema(Schema):
    number = fields.Integer(
        **_d("Attempt number (for a retry: the attempts before it)", "Forsøg nummer")
    )
    worker = fields.String(**_d("The worker (or, for a retry, the staff client)", "Afsender"))
    started_at = fields.DateTime(**_d("Started", "Startet"))
    finished_at = fields.DateTime(allow_none=True, **_d("Finished", "Afsluttet"))
    outcome = fields.String(
        allow_none=True,
        validate=validate.OneOf(OUTCOMES),
        **_d(f"{', '.join(OUTCOMES)}; null while running", "Udfald"),
    )
    error = fields.String(allow_none=True, **_d("What went wrong", "Fejl"))


class OutboxMessageSchema(Schema):
    id = fields.Integer(required=True, **_d("Outbox id", "Id i udbakken"))
    kind = fields.String(
        validate=validate.OneOf(sorted(KINDS)), **_d("Kind of mail", "Slags mail")
    )
    recipients = fields.List(fields.String(), **_d("Recipients", "Modtagere"))
    subject = fields.String(**_d("Subject", "Emne"))
    message_id = fields.String(**_d("RFC 5322 Message-ID", "Message-ID"))
    reference = fields.String(
        allow_none=True, **_d("Application reference", "Ansøgningens reference")
    )
    application_id = fields.Integer(allow_none=True, **_d("Application id", "Ansøgningens id"))
    status = fields.String(validate=validate.OneOf(STATUSES), **_d("Status", "Status"))
    attempts = fields.Integer(**_d("Attempts made", "Antal forsøg"))
    next_attempt_at = fields.DateTime(**_d("Due from", "Næste forsøg tidligst"))
    last_error = fields.String(allow_none=True, **_d("The last error", "Seneste fejl"))
    claimed_by = fields.String(allow_none=True, **_d("Worker sending it now", "Sendes af"))
    claimed_at = fields.DateTime(allow_none=True, **_d("Claimed at", "Taget af afsender"))
    sent_at = fields.DateTime(allow_none=True, **_d("Sent", "Sendt"))
    created_at = fields.DateTime(**_d("Enqueued", "Lagt i udbakken"))


class OutboxMessageDetailSchema(OutboxMessageSchema):
    body_text = fields.String(**_d("Plain-text body", "Tekst"))
    body_html = fields.String(**_d("HTML body", "HTML"))
    attempt_log = fields.List(
        fields.Nested(OutboxAttemptSchema),
        **_d("Every attempt and retry, oldest first", "Alle forsøg, ældste først"),
    )


class OutboxListSchema(Schema):
    items = fields.List(fields.Nested(OutboxMessageSchema), **_d("One page", "Én side"))
    total = fields.Integer(**_d("Matches in the whole list", "Antal i hele listen"))
    next = fields.String(
        allow_none=True,
        **_d("Cursor of the next page; null on the last", "Markør til næste side"),
    )

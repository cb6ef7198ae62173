"""The mail intake's services: contacts, recording a mail, the ledger, triage.

Each function takes the session and flushes; the caller commits. One mail is one unit
of work: :func:`record_mail` writes its ledger row and makes it an application or a
triage item, and the caller commits the two together.

One module per job; import the names from here (``from applications import
mail_service``; ``mail_service.record_mail``):

- :mod:`.contacts` who may send, and where replies go;
- :mod:`.ledger` what the ledger holds: recorded already, the UID cursor, the rate;
- :mod:`.recording` one mail to an application or a triage item, and the failure record;
- :mod:`.triage` the items staff work, and closing them.
"""

from __future__ import annotations

from applications.mail_models import IncomingMail, MunicipalityContact
from applications.mail_service.contacts import (
    ContactError,
    add_contact,
    contact_for_sender,
    reply_address,
)
from applications.mail_service.ledger import (
    AlreadyRecorded,
    already_recorded,
    find_recorded,
    is_processed,
    last_uid,
    mails_in_the_hour_before,
    recorded_at,
)
from applications.mail_service.recording import record_failure, record_mail
from applications.mail_service.triage import (
    MailNotFound,
    TriageError,
    get_mail,
    list_triage,
    mail_attachments,
    open_triage,
    resolve_triage,
)

__all__ = [
    "AlreadyRecorded",
    "ContactError",
    "IncomingMail",
    "MailNotFound",
    "MunicipalityContact",
    "TriageError",
    "add_contact",
    "already_recorded",
    "contact_for_sender",
    "find_recorded",
    "get_mail",
    "is_processed",
    "last_uid",
    "list_triage",
    "mail_attachments",
    "mails_in_the_hour_before",
    "open_triage",
    "record_failure",
    "record_mail",
    "recorded_at",
    "reply_address",
    "resolve_triage",
]

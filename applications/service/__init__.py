"""The application workflow: intake, validation, duplicate detection, review, approval.

Statuses, as SEI's forms habituated the municipalities::

    draft ──submit──▶ submitted ──approve──▶ approved
      │                 │  ▲    └──reject───▶ rejected
      │      request-info│  │submit
      │                 ▼  │
      │            info_requested ──reject──▶ rejected
      └──────── withdraw (before a decision) ──▶ withdrawn

Every step is an :class:`ApplicationEvent`; nothing is deleted. Two kinds of
problem are kept apart, as SEI's "Valider" does: *input errors* (a CVR failing
modulus 11, a postcode that is not four digits) are refused at once and nothing
is stored; *validation findings* are computed on demand for a stored draft —
errors (a required field missing) block submission and approval, warnings (a
possible duplicate, with the candidates) are shown and allowed.

The functions take the session and the acting :class:`Actor`, flush, and leave
the commit to the caller (:func:`sorregistry.database.write_step`), so that an
approval — new SOR code, organisation, version, application status, event and
notifications — is one transaction.

One module per job; import the names from here (``from applications import
service``; ``service.approve_application``):

- :mod:`.errors` the refusals, each with its HTTP status; :mod:`.actor` who acts;
- :mod:`.cleaning` input cleaning, and the limits the API's schemas share;
- :mod:`.access` reading, and who may see and do what; :mod:`.events` the history;
- :mod:`.drafts` making and editing a draft; :mod:`.findings`, :mod:`.validation`
  and :mod:`.duplicates` what "Valider" finds;
- :mod:`.transitions` submit, withdraw, request information, reject;
- :mod:`.approval` the one writer into the register (through ``hierarchy.service``);
- :mod:`.notify` the mails the steps cause (through ``notifications.service.enqueue``);
- :mod:`.mail` the mail intake's entry, :func:`create_from_mail`.
"""

from __future__ import annotations

from applications.service.access import get_application, list_applications, parse_reference
from applications.service.actor import Actor
from applications.service.approval import (
    MUNICIPALITY_OWNER_TYPE,
    PRIVATE_OWNER_TYPE,
    approve_application,
)
from applications.service.cleaning import (
    EDITABLE_FIELDS,
    MAX_NAME,
    MAX_REASON,
    MAX_REMARKS,
    clean_input,
)
from applications.service.drafts import (
    MAX_ATTACHMENT_BYTES,
    add_attachment,
    create_application,
    update_application,
)
from applications.service.duplicates import SIMILAR_NAME, find_duplicates, similar_names
from applications.service.errors import (
    ApplicationError,
    ApplicationNotFound,
    AttachmentNotFound,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotValid,
)
from applications.service.findings import Finding, Validation
from applications.service.mail import create_from_mail
from applications.service.notify import municipality_name
from applications.service.transitions import (
    reject_application,
    request_information,
    submit_application,
    withdraw_application,
)
from applications.service.validation import CHANGE_FIELDS, validate_application

__all__ = [
    "CHANGE_FIELDS",
    "EDITABLE_FIELDS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_REMARKS",
    "MUNICIPALITY_OWNER_TYPE",
    "PRIVATE_OWNER_TYPE",
    "SIMILAR_NAME",
    "Actor",
    "ApplicationError",
    "ApplicationNotFound",
    "AttachmentNotFound",
    "Finding",
    "Forbidden",
    "InvalidInput",
    "InvalidTransition",
    "NotValid",
    "Validation",
    "add_attachment",
    "approve_application",
    "clean_input",
    "create_application",
    "create_from_mail",
    "find_duplicates",
    "get_application",
    "list_applications",
    "municipality_name",
    "parse_reference",
    "reject_application",
    "request_information",
    "similar_names",
    "submit_application",
    "update_application",
    "validate_application",
    "withdraw_application",
]

"""The kinds of mail, the context each needs, and rendering them in Danish.

Each kind has three Jinja templates in ``templates/notifications/``:
``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html`` (autoescaped). The
environment is the package's own, not Flask's, so that a mail renders the same
wherever it is enqueued (a request, a command, a background thread).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


class NotificationError(ValueError):
    """A mail cannot be enqueued as asked; the message says why."""


class UnknownKind(NotificationError):
    pass


class MissingContext(NotificationError):
    pass


class InvalidContext(NotificationError):
    pass


class InvalidRecipient(NotificationError):
    pass


@dataclass(frozen=True)
class Kind:
    name: str
    required: tuple[str, ...]
    # Keys holding a timezone-aware datetime.
    moments: tuple[str, ...] = ()
    # Keys restricted to a few values.
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()


ROLES = ("institution", "municipality")

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "application_received",
            ("reference", "institution_name", "application_kind", "municipality_name",
             "submitted_at"),
            moments=("submitted_at",),
            choices=(("application_kind", ("new", "change")),),
        ),
        Kind(
            "sor_code_issued",
            ("reference", "sor_code", "institution_name", "address", "municipality_name",
             "recipient_role"),
            choices=(("recipient_role", ROLES),),
        ),
        Kind(
            "change_approved",
            ("reference", "sor_code", "institution_name", "changes", "recipient_role"),
            choices=(("recipient_role", ROLES),),
        ),
        Kind(
            "application_rejected",
            ("reference", "institution_name", "reason", "municipality_name"),
        ),
        Kind(
            "information_requested",
            ("reference", "institution_name", "reason", "municipality_name"),
        ),
        Kind(
            "mail_unreadable",
            ("original_subject", "received_at", "reason"),
            moments=("received_at",),
        ),
    )
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def check_context(kind_name: str, context: dict[str, Any]) -> Kind:
    """The kind, once *context* has every key it needs with a usable value."""
    kind = KINDS.get(kind_name)
    if kind is None:
        raise UnknownKind(
            f"unknown kind of mail {kind_name!r}; the kinds are {', '.join(sorted(KINDS))}"
        )
    if not isinstance(context, dict):
        raise InvalidContext(f"{kind_name}: the context must be a dict")
    missing = [key for key in kind.required if context.get(key) is None]
    if missing:
        raise MissingContext(f"{kind_name} needs {', '.join(missing)} in its context")
    for key in kind.moments:
        value = context[key]
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidContext(f"{kind_name}: {key} must be a timezone-aware datetime")
    for key, allowed in kind.choices:
        if context[key] not in allowed:
            raise InvalidContext(
                f"{kind_name}: {key} must be one of {', '.join(allowed)}, not {context[key]!r}"
            )
    if "address" in kind.required and not isinstance(context["address"], dict):
        raise InvalidContext(f"{kind_name}: address must be a dict (street, postal_code, city)")
    if "changes" in kind.required:
        changes = context["changes"]
        if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
            raise InvalidContext(
                f"{kind_name}: changes must be a list of dicts {{field, label, old, new}}"
            )
    return kind


# --- recipients -----------------------------------------------------------------

_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_address(value: str) -> str:
    """One recipient, as given ("a@b.dk" or "Name <a@b.dk>"), once it is a usable address.

    Deliberately plain: an ASCII local part (no SMTPUTF8), a domain of DNS
    labels (Danish letters allowed, sent as IDNA), nothing that could smuggle a
    second address or a header line.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecipient("an empty recipient address")
    value = value.strip()
    if any(ch in value for ch in "\r\n\t\x00,;") or len(value) > 320:
        raise InvalidRecipient(f"{value!r} is not one e-mail address")
    _name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or " " in address:
        raise InvalidRecipient(f"{value!r} is not an e-mail address")
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith(".") \
            or ".." in local:
        raise InvalidRecipient(f"{value!r}: the part before @ is not valid")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidRecipient(f"{value!r}: {domain!r} is not a valid domain") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.match(label) for label in labels) or (
        len(labels) < 2 and ascii_domain.lower() != "localhost"
    ):
        raise InvalidRecipient(f"{value!r}: {domain!r} is not a valid domain")
    return value


def check_recipients(to: str | list[str]) -> list[str]:
    """The recipients as a list without repeats; at least one."""
    if isinstance(to, str):
        values = [to]
    elif isinstance(to, list | tuple):
        values = list(to)
    else:
        raise InvalidRecipient(f"recipients must be an address or a list of them, not {to!r}")
    recipients: list[str] = []
    seen: set[str] = set()
    for value in values:
        address = check_address(value)
        key = parseaddr(address)[1].lower()
        if key not in seen:
            seen.add(key)
            recipients.append(address)
    if not recipients:
        raise InvalidRecipient("a mail needs at least one recipient")
    return recipients


# --- rendering ------------------------------------------------------------------

DANISH_TIME = ZoneInfo("Europe/Copenhagen")
MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
          "september", "oktober", "november", "december")


def danish_time(moment: datetime) -> str:
    """"22. november 2026 kl. 13.50", in Danish time."""
    local = moment.astimezone(DANISH_TIME)
    return f"{local.day}. {MONTHS[local.month - 1]} {local.year} kl. {local:%H.%M}"


def _value(value: Any) -> str:
    """A changed field's value as a person reads it."""
    if value is None or value == "":
        return "(tom)"
    if isinstance(value, dict):
        return ", ".join(str(v) for v in value.values() if v not in (None, ""))
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


_environment = Environment(
    loader=PackageLoader("notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_environment.filters["danish_time"] = danish_time
_environment.filters["value"] = _value


def render(kind_name: str, context: dict[str, Any]) -> RenderedMail:
    """The subject, text and HTML of a mail of *kind_name*, from a checked *context*."""
    kind = check_context(kind_name, context)
    values = {"reference": None, **context}
    subject = _environment.get_template(f"notifications/{kind.name}.subject.txt").render(values)
    # One line whatever the names contain: a header must not break.
    subject = " ".join(subject.split())
    text = _environment.get_template(f"notifications/{kind.name}.txt").render(values)
    html = _environment.get_template(f"notifications/{kind.name}.html").render(values)
    return RenderedMail(subject=subject, text=text, html=html)

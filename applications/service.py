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
the commit to the caller, so that an approval — new SOR code, organisation,
version, application status, event and notifications — is one transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from difflib import SequenceMatcher
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from applications.models import (
    APPLICATION_OWNERSHIPS,
    DECIDED_STATUSES,
    KINDS,
    OPEN_STATUSES,
    REFERENCE_PREFIX,
    SOURCES,
    STATUSES,
    Application,
    ApplicationAttachment,
    ApplicationEvent,
)
from hierarchy import identifiers as ids
from hierarchy import service as register
from hierarchy.codes import entity_type_name, entity_type_names, municipalities
from hierarchy.models import Organisation
from hierarchy.text import fold
from notifications import service as notifications
from sorregistry.database import begin_write
from sorregistry.errors import DomainError
from sorregistry.models import utcnow

# SNOMED CT codes of the owner (IE) types an approval may create.
MUNICIPALITY_OWNER_TYPE = "547211000005108"
PRIVATE_OWNER_TYPE = "550891000005100"
MAX_NAME = 60  # the register's limit on an organisation's name
MAX_REMARKS = 5000
MAX_REASON = 2000
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
SIMILAR_NAME = 0.85
# Fields a change application may change, with the Danish label shown to people.
CHANGE_FIELDS: dict[str, str] = {
    "institution_name": "Navn",
    "street": "Adresse",
    "postal_code": "Postnummer",
    "city": "By",
    "phone": "Telefon",
    "fax": "Fax",
    "email": "E-mail",
    "website": "Hjemmeside",
    "institution_type": "Institutionstype",
    "ydernummer": "Ydernummer",
    "gln": "GLN",
    "shak": "SHAK",
    "closing_date": "Lukkedato",
}
EDITABLE_FIELDS = (
    "kind",
    "contact_email",
    "institution_name",
    "street",
    "postal_code",
    "city",
    "phone",
    "fax",
    "email",
    "website",
    "institution_type",
    "ownership",
    "owner_cvr",
    "owner_name",
    "ydernummer",
    "gln",
    "shak",
    "target_sor_code",
    "closing_date",
    "remarks",
)
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{6,22}$")
_WEBSITE = re.compile(r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:[0-9]{1,5})?(/\S*)?$")
_POSTAL_CODE = re.compile(r"^[0-9]{4}$")


# --- errors -----------------------------------------------------------------------------


class ApplicationError(DomainError):
    """Base of the workflow's errors; each carries its HTTP status (sorregistry.errors)."""


class ApplicationNotFound(ApplicationError, LookupError):
    """No such application — or not one the actor may see (no hint which)."""

    status = 404


class AttachmentNotFound(ApplicationError, LookupError):
    """The application (which the actor may see) has no such attachment."""

    status = 404


class Forbidden(ApplicationError, PermissionError):
    """The actor may see the application but not do this to it."""

    status = 403


class InvalidTransition(ApplicationError):
    """The application's status does not allow the step (e.g. approving a draft)."""

    status = 409


class InvalidInput(ApplicationError, ValueError):
    """Values that can never be right (a bad CVR, a malformed postcode); nothing was stored.

    ``errors`` is ``{field: reason}``; the API shows them as webargs shows a request
    body's errors, ``{"json": {field: [reason]}}``, so a client reads both the same way.
    """

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{name}: {why}" for name, why in errors.items()),
            field_errors={"json": {name: [why] for name, why in errors.items()}},
        )


class NotValid(ApplicationError, ValueError):
    """The application has validation errors, so it cannot be submitted or approved.

    The field errors are the validation's errors, ``{field: [message, ...]}``.
    """

    status = 422

    def __init__(self, validation: Validation) -> None:
        self.validation = validation
        by_field: dict[str, list[str]] = {}
        for finding in validation.errors:
            by_field.setdefault(finding.field, []).append(finding.message)
        summary = "; ".join(f"{f.field}: {f.message}" for f in validation.errors)
        super().__init__(f"the application does not validate: {summary}",
                         field_errors=by_field)


# --- who acts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API client, a logged-in person, or the mail intake.

    ``municipality_code`` is set for a municipality; ``client_id`` identifies
    an API client (or person) so that nobody approves what they sent in.
    """

    name: str
    roles: tuple[str, ...]
    municipality_code: str | None = None
    cvr: str | None = None
    client_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return "sds" in self.roles

    @property
    def is_municipality(self) -> bool:
        return "municipality" in self.roles and self.municipality_code is not None

    @classmethod
    def from_client(cls, client: Any) -> Actor:
        """The actor for an authenticated API client (``sorregistry.auth.ClientIdentity``)."""
        return cls(
            name=f"client:{client.id} {client.name}",
            roles=tuple(client.roles),
            municipality_code=client.municipality_code,
            cvr=client.cvr,
            client_id=client.id,
        )


# --- findings ---------------------------------------------------------------------------


@dataclass
class Finding:
    """One problem found by validation; duplicates carry their candidates."""

    field: str
    code: str
    message: str
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"field": self.field, "code": self.code, "message": self.message}
        if self.candidates:
            found["candidates"] = self.candidates
        return found


@dataclass
class Validation:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": [f.as_dict() for f in self.errors],
            "warnings": [f.as_dict() for f in self.warnings],
        }


# --- reading ----------------------------------------------------------------------------


def parse_reference(value: str) -> int | None:
    """The id in ``ANS-000042`` (or a bare ``42``); None when it is neither."""
    value = value.strip().upper()
    if value.startswith(REFERENCE_PREFIX):
        value = value[len(REFERENCE_PREFIX):]
    return int(value) if value.isdigit() and len(value) <= 18 else None


def _may_see(actor: Actor, application: Application) -> bool:
    if actor.is_staff:
        return True
    return actor.is_municipality and actor.municipality_code == application.municipality_code


def get_application(
    session: Session, actor: Actor, application_id: int, *, for_update: bool = False
) -> Application:
    """The application, if the actor may see it; another municipality's is "not found"."""
    query = select(Application).where(Application.id == application_id)
    if for_update:
        query = query.with_for_update()
    application = session.execute(query).scalar_one_or_none()
    if application is None or not _may_see(actor, application):
        raise ApplicationNotFound(f"no application {REFERENCE_PREFIX}{application_id:06d}")
    return application


def list_applications(
    session: Session,
    actor: Actor,
    *,
    status: Iterable[str] = (),
    municipality_code: str | None = None,
    limit: int = 50,
    after_id: int | None = None,
    submitted_before: datetime | None = None,
) -> tuple[list[Application], int]:
    """Applications the actor may see, newest first, and how many there are in all.

    *submitted_before* keeps those last submitted before that moment (the review
    queue's "older than N days").
    """
    statuses = list(status)
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise InvalidInput({"status": f"unknown status {', '.join(unknown)}; "
                            f"one of {', '.join(STATUSES)}"})
    conditions = []
    if not actor.is_staff:
        if not actor.is_municipality:
            raise Forbidden("only municipalities and SDS staff see applications")
        conditions.append(Application.municipality_code == actor.municipality_code)
    elif municipality_code:
        conditions.append(Application.municipality_code == municipality_code)
    if statuses:
        conditions.append(Application.status.in_(statuses))
    if submitted_before is not None:
        conditions.append(Application.submitted_at < submitted_before)
    total = session.execute(
        select(func.count()).select_from(Application).where(*conditions)
    ).scalar_one()
    query = select(Application).where(*conditions)
    if after_id is not None:
        query = query.where(Application.id < after_id)
    items = session.execute(query.order_by(Application.id.desc()).limit(limit)).scalars().all()
    return list(items), total


# --- input ------------------------------------------------------------------------------


def _text(value: Any, name: str, errors: dict[str, str], limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    value = " ".join(value.split()) if name not in ("remarks",) else value.strip()
    if not value:
        return None
    if len(value) > limit:
        errors[name] = f"at most {limit} characters"
        return None
    return value


def _identifier(
    value: str | None, name: str, errors: dict[str, str], check: Any
) -> str | None:
    if value is None:
        return None
    try:
        return check(value)
    except ids.IdentifierError as exc:
        errors[name] = str(exc)
        return None


def clean_input(data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Normalise what a client sent, refusing values that can never be right.

    *data* uses the contract's names (``address`` as ``{street, postal_code,
    city}``). Returns the application's columns that were given (all of them
    unless *partial*); an empty string clears a field.
    """
    errors: dict[str, str] = {}
    flat = dict(data)
    address = flat.pop("address", None)
    if address is not None:
        if not isinstance(address, Mapping):
            errors["address"] = "must be an object with street, postal_code and city"
        else:
            for key in ("street", "postal_code", "city"):
                if key in address:
                    flat[key] = address[key]
    unknown = sorted(set(flat) - set(EDITABLE_FIELDS) - {"municipality_code"})
    for name in unknown:
        errors[name] = "not a field of an application"
    out: dict[str, Any] = {}
    given = set(flat) if partial else set(EDITABLE_FIELDS)
    for name in given & set(EDITABLE_FIELDS):
        value = flat.get(name)
        if name == "closing_date":
            out[name] = _date(value, name, errors)
            continue
        limit = {"institution_name": MAX_NAME, "remarks": MAX_REMARKS, "website": 300,
                 "contact_email": 254, "email": 254, "street": 200, "city": 100,
                 "owner_name": 200}.get(name, 40)
        out[name] = _text(value, name, errors, limit)
    checks = {
        "owner_cvr": ids.validate_cvr,
        "ydernummer": ids.normalise_ydernummer,
        "gln": ids.validate_gln,
        "shak": ids.validate_shak,
        "target_sor_code": ids.validate_sor_code,
    }
    for name, check in checks.items():
        if out.get(name) is not None:
            out[name] = _identifier(out[name], name, errors, check)
    if out.get("kind") is not None and out["kind"] not in KINDS:
        errors["kind"] = f"one of {', '.join(KINDS)}"
    if out.get("ownership") is not None:
        out["ownership"] = out["ownership"].lower()
        if out["ownership"] not in APPLICATION_OWNERSHIPS:
            errors["ownership"] = f"one of {', '.join(APPLICATION_OWNERSHIPS)}"
    if out.get("postal_code") is not None and not _POSTAL_CODE.match(out["postal_code"]):
        errors["postal_code"] = "a Danish postcode has four digits"
    for name in ("email", "contact_email"):
        if out.get(name) is not None:
            if _EMAIL.match(out[name]):
                local, _, domain = out[name].rpartition("@")
                out[name] = f"{local}@{domain.lower()}"
            else:
                errors[name] = "not an email address"
    for name in ("phone", "fax"):
        if out.get(name) is not None and not _PHONE.match(out[name]):
            errors[name] = "not a telephone number (digits, spaces, an optional +)"
    if out.get("website") is not None and not _WEBSITE.match(out["website"]):
        errors["website"] = "not a web address"
    if out.get("institution_type") is not None and (
        out["institution_type"] not in entity_type_names()
    ):
        errors["institution_type"] = (
            "not an institution type (SNOMED CT code) from the SOR code list"
        )
    if errors:
        raise InvalidInput(errors)
    return out


def _date(value: Any, name: str, errors: dict[str, str]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors[name] = "a date, YYYY-MM-DD"
    return None


def _municipality_for(actor: Actor, data: Mapping[str, Any]) -> str:
    if actor.is_municipality:
        given = data.get("municipality_code")
        if given and given != actor.municipality_code:
            raise InvalidInput({"municipality_code": "a municipality applies for itself only"})
        return actor.municipality_code  # type: ignore[return-value]
    code = data.get("municipality_code")
    if not code:
        raise InvalidInput({"municipality_code": "say which municipality applies"})
    try:
        return ids.validate_kommunekode(str(code))
    except ids.IdentifierError as exc:
        raise InvalidInput({"municipality_code": str(exc)}) from None


# --- events -----------------------------------------------------------------------------


def _event(
    session: Session,
    application: Application,
    actor: Actor,
    action: str,
    to_status: str,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> ApplicationEvent:
    event = ApplicationEvent(
        application=application,
        at=utcnow(),
        actor=actor.name,
        action=action,
        from_status=application.status if application.id is not None else None,
        to_status=to_status,
        version=application.version,
        reason=reason,
        details=details,
    )
    session.add(event)
    application.status = to_status
    application.updated_at = event.at
    return event


def _reason(reason: str | None, *, required: bool) -> str | None:
    reason = (reason or "").strip() or None
    if required and not reason:
        raise InvalidInput({"reason": "give a reason; the municipality is told it"})
    if reason and len(reason) > MAX_REASON:
        raise InvalidInput({"reason": f"at most {MAX_REASON} characters"})
    return reason


# --- creating and editing ---------------------------------------------------------------


def create_application(
    session: Session,
    actor: Actor,
    data: Mapping[str, Any],
    *,
    source: str = "api",
) -> Application:
    """A new draft for the actor's municipality (staff name the municipality)."""
    if not (actor.is_municipality or actor.is_staff):
        raise Forbidden("only a municipality (or SDS staff) applies for SOR codes")
    values = clean_input({k: v for k, v in data.items() if k != "municipality_code"})
    return _new_application(session, actor, values, _municipality_for(actor, data), source)


def _new_application(
    session: Session, actor: Actor, values: dict[str, Any], municipality_code: str, source: str
) -> Application:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    values["kind"] = values.get("kind") or "new"
    now = utcnow()
    application = Application(
        **values,
        status="draft",
        version=0,
        source=source,
        municipality_code=municipality_code,
        municipality_cvr=actor.cvr if actor.is_municipality else None,
        name_search=fold(values.get("institution_name")),
        created_by=actor.name,
        created_by_client=actor.client_id,
        created_at=now,
        updated_at=now,
    )
    session.add(application)
    session.flush()
    event = _event(session, application, actor, "created", "draft")
    event.from_status = None
    session.flush()
    return application


def update_application(
    session: Session, actor: Actor, application_id: int, data: Mapping[str, Any]
) -> Application:
    """Edit a draft (or an application sent back for more information)."""
    application = get_application(session, actor, application_id, for_update=True)
    _check_owner(actor, application, "edit")
    if application.status not in ("draft", "info_requested"):
        raise InvalidTransition(
            f"an application that is {application.status} cannot be edited"
        )
    if "municipality_code" in data and data["municipality_code"] != application.municipality_code:
        raise InvalidInput({"municipality_code": "cannot be changed"})
    values = clean_input({k: v for k, v in data.items() if k != "municipality_code"},
                         partial=True)
    changed = {
        name: [_plain(getattr(application, name)), _plain(value)]
        for name, value in values.items()
        if getattr(application, name) != value
    }
    if not changed:
        return application
    for name, value in values.items():
        setattr(application, name, value)
    application.name_search = fold(application.institution_name)
    _event(session, application, actor, "edited", application.status, details=changed)
    session.flush()
    return application


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _check_owner(actor: Actor, application: Application, what: str) -> None:
    """Only the applying municipality edits, submits and withdraws its application."""
    if not (actor.is_municipality and actor.municipality_code == application.municipality_code):
        raise Forbidden(f"only the applying municipality may {what} an application")


def add_attachment(
    session: Session, application: Application, filename: str, content_type: str, data: bytes
) -> ApplicationAttachment:
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput({"attachments": f"{filename} is larger than "
                            f"{MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB"})
    attachment = ApplicationAttachment(
        application=application,
        filename=(filename or "vedhæftet fil")[:255],
        content_type=(content_type or "application/octet-stream")[:255],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
    session.add(attachment)
    return attachment


# --- validation -------------------------------------------------------------------------


def validate_application(session: Session, application: Application) -> Validation:
    """Errors (block submission) and warnings (possible duplicates, with the candidates)."""
    result = Validation()
    errors, warnings = result.errors, result.warnings
    if not application.contact_email:
        errors.append(Finding("contact_email", "required",
                              "the municipality's contact email is required (receipts "
                              "and the new SOR code are sent there)"))
    if application.kind == "new":
        _validate_new(application, errors, warnings)
    else:
        _validate_change(session, application, errors, warnings)
    if application.ydernummer and application.kind == "new":
        warnings.append(Finding(
            "ydernummer", "has_ydernummer",
            "an institution with a ydernummer may report with it and may not need a SOR code",
        ))
    if application.shak and application.kind == "new":
        warnings.append(Finding(
            "shak", "has_shak",
            "an institution with a SHAK code may report with it and may not need a SOR code",
        ))
    warnings.extend(find_duplicates(session, application))
    return result


def _validate_new(application: Application, errors: list[Finding],
                  warnings: list[Finding]) -> None:
    required = {
        "institution_name": "the institution's name",
        "street": "the street address",
        "postal_code": "the postcode",
        "city": "the town",
        "phone": "a telephone number",
        "institution_type": "the institution type",
        "ownership": "whether the institution is municipally or privately owned",
    }
    for name, what in required.items():
        if not getattr(application, name):
            errors.append(Finding(name, "required", f"{what} is required"))
    if application.ownership == "privat" and not application.owner_cvr:
        errors.append(Finding("owner_cvr", "required",
                              "a privately owned institution needs its owner's CVR number"))
    if application.ownership == "kommunal" and application.owner_cvr:
        warnings.append(Finding("owner_cvr", "ignored",
                                "a municipally owned institution belongs to the municipality; "
                                "the CVR given is not used"))
    if application.target_sor_code or application.closing_date:
        warnings.append(Finding("kind", "change_fields",
                                "SOR code and closing date are used by change applications only"))


def _validate_change(session: Session, application: Application, errors: list[Finding],
                     warnings: list[Finding]) -> None:
    if not application.target_sor_code:
        errors.append(Finding("target_sor_code", "required",
                              "a change names the SOR code it changes"))
        return
    target = session.get(Organisation, application.target_sor_code)
    if target is None:
        errors.append(Finding("target_sor_code", "unknown",
                              f"no organisation has SOR code {application.target_sor_code}"))
        return
    today = date.today()
    if target.valid_to is not None and target.valid_to <= today:
        errors.append(Finding("target_sor_code", "closed",
                              f"{target.name} was closed on {target.valid_to.isoformat()}"))
    if target.level == "IE":
        errors.append(Finding("target_sor_code", "owner_level",
                              "an institution owner (IE) is not changed by application"))
    if not any(getattr(application, name) for name in CHANGE_FIELDS):
        errors.append(Finding("kind", "no_change", "say what is to change"))
    if application.closing_date and target.valid_from and (
        application.closing_date < target.valid_from
    ):
        errors.append(Finding("closing_date", "before_start",
                              f"{target.name} is valid only from "
                              f"{target.valid_from.isoformat()}"))
    if target.ownership == "kommunal" and (
        target.eff_municipality_code and target.eff_municipality_code
        != application.municipality_code
    ):
        warnings.append(Finding("target_sor_code", "other_municipality",
                                f"{target.name} is in municipality "
                                f"{target.eff_municipality_code}, not the applicant's"))
    if application.ownership and application.ownership != target.ownership:
        errors.append(Finding("ownership", "ownership_change",
                              "a change of owner needs a new SOR code: apply for a new one"))
    if application.institution_name and len(application.institution_name) > MAX_NAME:
        errors.append(Finding("institution_name", "too_long", f"at most {MAX_NAME} characters"))


# --- duplicates -------------------------------------------------------------------------


def _organisation_candidate(organisation: Any, reason: str) -> dict[str, Any]:
    address = (organisation.effective or {}).get("postal_address") or {}
    return {
        "type": "organisation",
        "sor_code": organisation.sor_code,
        "name": organisation.name,
        "level": organisation.level,
        "ydernummer": organisation.ydernummer,
        "address": {key: address.get(key) for key in ("street", "postal_code", "city")},
        "reason": reason,
    }


def _application_candidate(other: Application, reason: str) -> dict[str, Any]:
    return {
        "type": "application",
        "id": other.id,
        "reference": other.reference,
        "institution_name": other.institution_name,
        "status": other.status,
        "municipality_code": other.municipality_code,
        "address": other.address,
        "reason": reason,
    }


def similar_names(a: str | None, b: str | None) -> bool:
    """Folded names that one contains or that differ by a few letters."""
    a, b = fold(a), fold(b)
    if not a or not b:
        return False
    if a == b or (len(a) >= 6 and a in b) or (len(b) >= 6 and b in a):
        return True
    return SequenceMatcher(None, a, b).ratio() >= SIMILAR_NAME


def _same_street(a: str | None, b: str | None) -> bool:
    return bool(a and b) and fold(a).replace(".", "") == fold(b).replace(".", "")


def find_duplicates(session: Session, application: Application) -> list[Finding]:
    """Possible duplicates in the register and in other open applications, as warnings.

    Three signs, each its own warning with its candidates: the same ydernummer;
    the same owner CVR at the same address; a similar name in the same postcode.
    A change application's own target is not its duplicate.
    """
    findings: list[Finding] = []
    today = date.today()
    active = register.active_on_clause(today)
    others = [Application.id != application.id, Application.status.in_(OPEN_STATUSES)]
    exclude = application.target_sor_code

    def org_rows(*conditions: Any) -> list[Any]:
        query = select(Organisation).where(*conditions, *active,
                                           Organisation.level.in_(("SI", "OE")))
        if exclude:
            query = query.where(Organisation.sor_code != exclude)
        return list(session.execute(query.order_by(Organisation.sor_code).limit(200)).scalars())

    def app_rows(*conditions: Any) -> list[Application]:
        return list(session.execute(
            select(Application).where(*others, *conditions).order_by(Application.id).limit(200)
        ).scalars())

    if application.ydernummer:
        candidates = [
            _organisation_candidate(o, "same ydernummer")
            for o in org_rows(Organisation.ydernummer == application.ydernummer)
        ] + [
            _application_candidate(a, "same ydernummer")
            for a in app_rows(Application.ydernummer == application.ydernummer)
        ]
        if candidates:
            findings.append(Finding(
                "ydernummer", "duplicate_ydernummer",
                f"ydernummer {application.ydernummer} is already registered or applied for",
                candidates,
            ))
    owner_cvr = application.owner_cvr if application.ownership == "privat" else (
        application.municipality_cvr
    )
    if owner_cvr and application.postal_code and application.street:
        candidates = [
            _organisation_candidate(o, "same owner CVR and address")
            for o in org_rows(Organisation.owner_cvr == owner_cvr,
                              Organisation.eff_postal_code == application.postal_code)
            if _same_street(((o.effective or {}).get("postal_address") or {}).get("street"),
                            application.street)
        ] + [
            _application_candidate(a, "same owner CVR and address")
            for a in app_rows(Application.owner_cvr == owner_cvr,
                              Application.postal_code == application.postal_code)
            if _same_street(a.street, application.street)
        ]
        if candidates:
            findings.append(Finding(
                "address", "duplicate_address",
                "the same owner already has an institution at this address", candidates,
            ))
    if application.institution_name and application.postal_code:
        candidates = [
            _organisation_candidate(o, "similar name in the same postcode")
            for o in org_rows(Organisation.eff_postal_code == application.postal_code)
            if similar_names(o.name, application.institution_name)
        ] + [
            _application_candidate(a, "similar name in the same postcode")
            for a in app_rows(Application.postal_code == application.postal_code)
            if similar_names(a.institution_name, application.institution_name)
        ]
        if candidates:
            findings.append(Finding(
                "institution_name", "similar_name",
                f"an institution with a similar name exists in {application.postal_code}",
                candidates,
            ))
    return findings


# --- the workflow -----------------------------------------------------------------------


def submit_application(session: Session, actor: Actor, application_id: int) -> Application:
    """Draft (or info_requested) → submitted, when it validates; version counts submissions."""
    application = get_application(session, actor, application_id, for_update=True)
    _check_owner(actor, application, "submit")
    if application.status not in ("draft", "info_requested"):
        raise InvalidTransition(f"an application that is {application.status} "
                                "cannot be submitted")
    validation = validate_application(session, application)
    if not validation.ok:
        raise NotValid(validation)
    application.version += 1
    application.submitted_at = utcnow()
    _event(session, application, actor, "submitted", "submitted",
           details={"warnings": [w.code for w in validation.warnings]} if validation.warnings
           else None)
    _notify_received(session, application)
    session.flush()
    return application


def withdraw_application(
    session: Session, actor: Actor, application_id: int, reason: str | None = None
) -> Application:
    application = get_application(session, actor, application_id, for_update=True)
    _check_owner(actor, application, "withdraw")
    if application.status in DECIDED_STATUSES:
        raise InvalidTransition(f"an application that is {application.status} "
                                "cannot be withdrawn")
    _event(session, application, actor, "withdrawn", "withdrawn",
           reason=_reason(reason, required=False))
    application.decided_at = utcnow()
    session.flush()
    return application


def _check_reviewer(actor: Actor, application: Application, what: str) -> None:
    if not actor.is_staff:
        raise Forbidden(f"only SDS staff may {what} an application")
    if actor.municipality_code and actor.municipality_code == application.municipality_code:
        raise Forbidden(f"a municipality may not {what} its own application")
    if actor.client_id is not None and actor.client_id == application.created_by_client:
        raise Forbidden(f"whoever sent an application may not {what} it")


def request_information(
    session: Session, actor: Actor, application_id: int, reason: str
) -> Application:
    """Submitted → info_requested: send it back to the municipality with a question."""
    application = get_application(session, actor, application_id, for_update=True)
    _check_reviewer(actor, application, "request information on")
    if application.status != "submitted":
        raise InvalidTransition(f"information can be requested on a submitted application, "
                                f"not one that is {application.status}")
    text = _reason(reason, required=True)
    _event(session, application, actor, "info_requested", "info_requested", reason=text)
    _notify_decision(session, application, "information_requested", text)
    session.flush()
    return application


def reject_application(
    session: Session, actor: Actor, application_id: int, reason: str
) -> Application:
    application = get_application(session, actor, application_id, for_update=True)
    _check_reviewer(actor, application, "reject")
    if application.status not in ("submitted", "info_requested"):
        raise InvalidTransition(f"an application that is {application.status} "
                                "cannot be rejected")
    text = _reason(reason, required=True)
    _event(session, application, actor, "rejected", "rejected", reason=text)
    application.decided_at = utcnow()
    _notify_decision(session, application, "application_rejected", text)
    session.flush()
    return application


def approve_application(
    session: Session, actor: Actor, application_id: int, *, note: str | None = None
) -> Application:
    """Submitted → approved: allocate the SOR code and put the institution into the register.

    One transaction: the code, the institution (and its owner when new), the
    version, the application's status and event, and the notifications.
    """
    # SQLite: concurrent approvals queue instead of failing. The routes' write_step has
    # taken the lock already (then this changes nothing); a caller without one needs it.
    begin_write(session)
    application = get_application(session, actor, application_id, for_update=True)
    _check_reviewer(actor, application, "approve")
    if application.status != "submitted":
        raise InvalidTransition(f"only a submitted application can be approved; this one "
                                f"is {application.status}")
    validation = validate_application(session, application)
    if not validation.ok:
        raise NotValid(validation)
    reference = application.reference
    if application.kind == "new":
        details = _create_institution(session, application, actor, reference)
    else:
        details = _apply_change(session, application, actor, reference)
    application.decided_at = utcnow()
    _event(session, application, actor, "approved", "approved",
           reason=_reason(note, required=False), details=details)
    _notify_approved(session, application, details)
    session.flush()
    return application


def _owner_for(session: Session, application: Application, actor: Actor,
               reference: str) -> tuple[str, bool]:
    """The IE the new institution goes under, made when the register has none yet."""
    active = register.active_on_clause(date.today())
    owners = select(Organisation).where(Organisation.level == "IE", *active)
    if application.ownership == "kommunal":
        match = None
        if application.municipality_cvr:
            match = session.execute(
                owners.where(Organisation.ownership == "kommunal",
                             Organisation.cvr == application.municipality_cvr)
                .order_by(Organisation.sor_code).limit(1)
            ).scalar_one_or_none()
        if match is None:
            match = session.execute(
                owners.where(Organisation.ownership == "kommunal",
                             Organisation.eff_municipality_code == application.municipality_code)
                .order_by(Organisation.sor_code).limit(1)
            ).scalar_one_or_none()
        if match is not None:
            return match.sor_code, False
        name = municipalities().get(application.municipality_code, application.municipality_code)
        values: dict[str, Any] = {
            "level": "IE",
            "name": f"{name} Kommune"[:MAX_NAME],
            "entity_type": MUNICIPALITY_OWNER_TYPE,
            "cvr": application.municipality_cvr,
            "postal_address": {"municipality_code": application.municipality_code},
        }
    else:
        match = session.execute(
            owners.where(Organisation.cvr == application.owner_cvr)
            .order_by(Organisation.sor_code).limit(1)
        ).scalar_one_or_none()
        if match is not None:
            return match.sor_code, False
        values = {
            "level": "IE",
            "name": (application.owner_name or application.institution_name or "")[:MAX_NAME],
            "entity_type": PRIVATE_OWNER_TYPE,
            "cvr": application.owner_cvr,
            "postal_address": _postal_address(application),
        }
    today = date.today()
    values.update(first_valid_from=today, valid_from=today)
    code = register.allocate_sor_code(session)
    register.create_organisation(session, code, values, source="application",
                                 actor=actor.name, reference=reference)
    return code, True


def _postal_address(application: Application) -> dict[str, str]:
    address = {
        "street": application.street,
        "postal_code": application.postal_code,
        "city": application.city,
        "municipality_code": application.municipality_code,
    }
    return {key: value for key, value in address.items() if value}


def _create_institution(session: Session, application: Application, actor: Actor,
                        reference: str) -> dict[str, Any]:
    owner_code, owner_created = _owner_for(session, application, actor, reference)
    code = register.allocate_sor_code(session)
    today = date.today()
    register.create_organisation(
        session,
        code,
        {
            "level": "SI",
            "parent_sor_code": owner_code,
            "name": application.institution_name,
            "entity_type": application.institution_type,
            "ydernummer": application.ydernummer,
            "gln": application.gln,
            "shak": application.shak,
            "postal_address": _postal_address(application),
            "phone": application.phone,
            "fax": application.fax,
            "email": application.email,
            "website": application.website,
            "first_valid_from": today,
            "valid_from": today,
        },
        source="application",
        actor=actor.name,
        reference=reference,
    )
    application.sor_code = code
    return {"sor_code": code, "owner_sor_code": owner_code, "owner_created": owner_created}


def _apply_change(session: Session, application: Application, actor: Actor,
                  reference: str) -> dict[str, Any]:
    target = register.get_organisation(session, application.target_sor_code or "")
    old_address = dict(target.postal_address or {})
    changes: dict[str, Any] = {}
    shown: list[dict[str, Any]] = []

    def change(own_field: str, label_field: str, old: Any, new: Any) -> None:
        if new is not None and new != old:
            changes[own_field] = new
            shown.append({"field": label_field, "label": CHANGE_FIELDS[label_field],
                          "old": _plain(old), "new": _plain(new)})

    change("name", "institution_name", target.name, application.institution_name)
    for own_field in ("phone", "fax", "email", "website", "ydernummer", "gln", "shak"):
        change(own_field, own_field, getattr(target, own_field), getattr(application, own_field))
    change("entity_type", "institution_type", target.entity_type, application.institution_type)
    new_address = dict(old_address)
    for key in ("street", "postal_code", "city"):
        value = getattr(application, key)
        if value is not None and value != old_address.get(key):
            shown.append({"field": key, "label": CHANGE_FIELDS[key],
                          "old": old_address.get(key), "new": value})
            new_address[key] = value
    if new_address != old_address:
        changes["postal_address"] = new_address
    if changes:
        register.change_organisation(session, target.sor_code, changes, source="application",
                                     actor=actor.name, reference=reference)
    if application.closing_date and application.closing_date != target.valid_to:
        shown.append({"field": "closing_date", "label": CHANGE_FIELDS["closing_date"],
                      "old": _plain(target.valid_to), "new": _plain(application.closing_date)})
        register.close_organisation(session, target.sor_code, application.closing_date,
                                    source="application", actor=actor.name,
                                    reference=reference)
    application.sor_code = target.sor_code
    return {"sor_code": target.sor_code, "changes": shown}


# --- mail intake ------------------------------------------------------------------------


def create_from_mail(
    session: Session,
    *,
    municipality_code: str,
    sender: str,
    fields: Mapping[str, Any],
    attachments: list[tuple[str, str, bytes]],
    mail_reference: str,
) -> Application:
    """An emailed application from a registered municipality contact.

    It is submitted when it validates; otherwise it stays a draft for the
    municipality to complete, and the receipt is not sent until it is
    submitted. Input that can never be right raises :class:`InvalidInput`,
    which the mail intake turns into a triage item.
    """
    data = dict(fields)
    data.setdefault("contact_email", sender)
    actor = Actor(name=f"mail:{sender}", roles=("mail",))
    remarks = data.get("remarks")
    note = f"Modtaget pr. mail ({mail_reference})"
    data["remarks"] = f"{remarks}\n\n{note}" if remarks else note
    values = clean_input({k: v for k, v in data.items() if k != "municipality_code"})
    try:
        municipality_code = ids.validate_municipality_code(municipality_code)
    except ids.IdentifierError as exc:
        raise InvalidInput({"municipality_code": str(exc)}) from None
    application = _new_application(session, actor, values, municipality_code, "mail")
    for filename, content_type, payload in attachments:
        add_attachment(session, application, filename, content_type, payload)
    session.flush()
    if validate_application(session, application).ok:
        application.version += 1
        application.submitted_at = utcnow()
        _event(session, application, actor, "submitted", "submitted")
        _notify_received(session, application)
        session.flush()
    return application


# --- notifications ----------------------------------------------------------------------


def municipality_name(code: str) -> str:
    name = municipalities().get(code)
    return f"{name} Kommune" if name else f"kommune {code}"


def _display_name(session: Session, application: Application) -> str:
    """The name a person recognises: the one applied for, or the changed unit's."""
    if application.institution_name:
        return application.institution_name
    if application.target_sor_code:
        target = session.get(Organisation, application.target_sor_code)
        if target is not None:
            return target.name
    return "(uden navn)"


def _notify_received(session: Session, application: Application) -> None:
    """Receipt to the municipality contact, in the submission's transaction."""
    if not application.contact_email:
        return
    notifications.enqueue(
        session,
        kind="application_received",
        to=application.contact_email,
        context={
            "reference": application.reference,
            "institution_name": _display_name(session, application),
            "application_kind": application.kind,
            "municipality_name": municipality_name(application.municipality_code),
            "submitted_at": application.submitted_at,
        },
        application_id=application.id,
    )


def _notify_decision(session: Session, application: Application, kind: str,
                     reason: str | None) -> None:
    """Rejection or request for information, with the reason, to the municipality contact."""
    if not application.contact_email:
        return
    notifications.enqueue(
        session,
        kind=kind,
        to=application.contact_email,
        context={
            "reference": application.reference,
            "institution_name": _display_name(session, application),
            "reason": reason,
            "municipality_name": municipality_name(application.municipality_code),
        },
        application_id=application.id,
    )


def _notify_approved(session: Session, application: Application,
                     details: dict[str, Any]) -> None:
    """The SOR code to the institution and to the municipality: one mail each."""
    recipients: list[tuple[str, str]] = []
    if application.kind == "new":
        institution_email = application.email
    else:
        target = session.get(Organisation, application.sor_code)
        institution_email = application.email or (
            (target.effective or {}).get("email") if target is not None else None
        )
    if institution_email:
        recipients.append(("institution", institution_email))
    if application.contact_email and application.contact_email != institution_email:
        recipients.append(("municipality", application.contact_email))
    name = _display_name(session, application)
    for role, address in recipients:
        if application.kind == "new":
            kind = "sor_code_issued"
            context: dict[str, Any] = {
                "address": application.address,
                "municipality_name": municipality_name(application.municipality_code),
            }
        else:
            kind = "change_approved"
            context = {"changes": details.get("changes", [])}
        notifications.enqueue(
            session,
            kind=kind,
            to=address,
            context={
                "reference": application.reference,
                "sor_code": application.sor_code,
                "institution_name": name,
                "recipient_role": role,
                **context,
            },
            application_id=application.id,
        )


def describe_type(code: str | None) -> str | None:
    return entity_type_name(code)

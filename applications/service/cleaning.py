"""Input cleaning: normalise what a client sent and refuse what can never be right.

The limits and shapes here are the applications' only copy: the API's schemas
(:mod:`applications.schemas`) take theirs from this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date

from applications.models import APPLICATION_OWNERSHIPS, KINDS
from applications.service.actor import Actor
from applications.service.errors import InvalidInput
from hierarchy import identifiers as ids
from hierarchy.codes import entity_type_names

MAX_NAME = 60  # the register's limit on an organisation's name
MAX_REMARKS = 5000
MAX_REASON = 2000
MAX_SUCCESSORS = 20  # a split into more units than this is several applications
# The longest text a field takes; fields not named take SHORT_TEXT (identifiers are
# then checked by their own rules).
TEXT_LIMITS: dict[str, int] = {
    "institution_name": MAX_NAME,
    "remarks": MAX_REMARKS,
    "website": 300,
    "contact_email": 254,
    "email": 254,
    "street": 200,
    "city": 100,
    "owner_name": 200,
}
SHORT_TEXT = 40
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
    "replaced_by",
    "remarks",
)
EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{6,22}$")
WEBSITE = re.compile(r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:[0-9]{1,5})?(/\S*)?$")
POSTAL_CODE = re.compile(r"^[0-9]{4}$")
_IDENTIFIERS: dict[str, Callable[[str], str]] = {
    "owner_cvr": ids.validate_cvr,
    "ydernummer": ids.normalise_ydernummer,
    "gln": ids.validate_gln,
    "shak": ids.validate_shak,
    "target_sor_code": ids.validate_sor_code,
}


def _text(value: object, name: str, errors: dict[str, str], limit: int) -> str | None:
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
    value: str | None, name: str, errors: dict[str, str], check: Callable[[str], str]
) -> str | None:
    if value is None:
        return None
    try:
        return check(value)
    except ids.IdentifierError as exc:
        errors[name] = str(exc)
        return None


def _date(value: object, name: str, errors: dict[str, str]) -> date | None:
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


def _sor_codes(value: object, name: str, errors: dict[str, str]) -> list[str] | None:
    """SOR codes given as a list, or as text separated by commas or spaces (the form's
    field); checked, duplicates dropped, order kept; None when none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").replace(";", " ").split()
    if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
        errors[name] = "a list of SOR codes"
        return None
    codes: list[str] = []
    for code in value:
        try:
            codes.append(ids.validate_sor_code(code))
        except ids.IdentifierError as exc:
            errors[name] = str(exc)
            return None
    codes = list(dict.fromkeys(codes))
    if len(codes) > MAX_SUCCESSORS:
        errors[name] = f"at most {MAX_SUCCESSORS} SOR codes"
        return None
    return codes or None


def clean_input(data: Mapping[str, object], *, partial: bool = False) -> dict[str, object]:
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
    out: dict[str, object] = {}
    given = set(flat) if partial else set(EDITABLE_FIELDS)
    for name in given & set(EDITABLE_FIELDS):
        value = flat.get(name)
        if name == "closing_date":
            out[name] = _date(value, name, errors)
            continue
        if name == "replaced_by":
            out[name] = _sor_codes(value, name, errors)
            continue
        out[name] = _text(value, name, errors, TEXT_LIMITS.get(name, SHORT_TEXT))
    text: dict[str, str | None] = {
        name: value for name, value in out.items() if isinstance(value, str)
    }
    for name, check in _IDENTIFIERS.items():
        if name in text:
            out[name] = text[name] = _identifier(text[name], name, errors, check)
    _check_shapes(out, text, errors)
    if errors:
        raise InvalidInput(errors)
    return out


def _check_shapes(out: dict[str, object], text: dict[str, str | None],
                  errors: dict[str, str]) -> None:
    """The fields with a fixed set of values or a fixed shape (*text*: the given texts)."""
    if text.get("kind") is not None and text["kind"] not in KINDS:
        errors["kind"] = f"one of {', '.join(KINDS)}"
    ownership = text.get("ownership")
    if ownership is not None:
        out["ownership"] = ownership = ownership.lower()
        if ownership not in APPLICATION_OWNERSHIPS:
            errors["ownership"] = f"one of {', '.join(APPLICATION_OWNERSHIPS)}"
    postal_code = text.get("postal_code")
    if postal_code is not None and not POSTAL_CODE.match(postal_code):
        errors["postal_code"] = "a Danish postcode has four digits"
    for name in ("email", "contact_email"):
        address = text.get(name)
        if address is not None:
            if EMAIL.match(address):
                local, _, domain = address.rpartition("@")
                out[name] = f"{local}@{domain.lower()}"
            else:
                errors[name] = "not an email address"
    for name in ("phone", "fax"):
        number = text.get(name)
        if number is not None and not PHONE.match(number):
            errors[name] = "not a telephone number (digits, spaces, an optional +)"
    website = text.get("website")
    if website is not None and not WEBSITE.match(website):
        errors["website"] = "not a web address"
    institution_type = text.get("institution_type")
    if institution_type is not None and institution_type not in entity_type_names():
        errors["institution_type"] = (
            "not an institution type (SNOMED CT code) from the SOR code list"
        )


def municipality_for(actor: Actor, data: Mapping[str, object]) -> str:
    """The applying municipality: the actor's own, or the one staff name."""
    if actor.is_municipality and actor.municipality_code is not None:
        given = data.get("municipality_code")
        if given and given != actor.municipality_code:
            raise InvalidInput({"municipality_code": "a municipality applies for itself only"})
        return actor.municipality_code
    code = data.get("municipality_code")
    if not code:
        raise InvalidInput({"municipality_code": "say which municipality applies"})
    try:
        return ids.validate_kommunekode(str(code))
    except ids.IdentifierError as exc:
        raise InvalidInput({"municipality_code": str(exc)}) from None


def clean_reason(reason: str | None, *, required: bool) -> str | None:
    """A reason or note given for a step; *required* when the municipality must be told why."""
    reason = (reason or "").strip() or None
    if required and not reason:
        raise InvalidInput({"reason": "give a reason; the municipality is told it"})
    if reason and len(reason) > MAX_REASON:
        raise InvalidInput({"reason": f"at most {MAX_REASON} characters"})
    return reason

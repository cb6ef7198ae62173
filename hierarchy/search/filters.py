"""What a search asks for: the column filters, their checks, and the refusal of bad ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from hierarchy import identifiers as ids
from hierarchy.text import fold
from sorregistry.errors import DomainError

MAX_LIMIT = 500
Sort = Literal["name", "code"]
NameMatch = Literal["contains", "prefix"]


class InvalidSearch(DomainError, ValueError):
    """A filter, cursor or page size the search cannot use: 422, ``errors`` maps each
    parameter to its reason (the API's ``errors``, as the lookups have always shown it)."""

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()),
                         field_errors=errors)
        self.errors = errors


@dataclass
class Filters:
    """The column filters; every one given must hold."""

    level: list[str] = field(default_factory=list)
    ownership: str | None = None
    cvr: str | None = None
    name: str | None = None
    name_match: NameMatch = "contains"
    entity_type: str | None = None
    ydernummer: str | None = None
    shak: str | None = None
    sor_code: str | None = None
    municipality_code: str | None = None
    postal_code: str | None = None
    under: str | None = None
    active_on: date | None = None


FILTER_NAMES = tuple(Filters.__dataclass_fields__)


def escape_like(value: str) -> str:
    """*value* matched literally by ``LIKE ... ESCAPE '\\'``."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def normalise(filters: Filters) -> Filters:
    """Validate and normalise the filters, collecting every problem at once."""
    errors: dict[str, str] = {}
    if filters.cvr is not None:
        try:
            filters.cvr = ids.validate_cvr(filters.cvr)
        except ids.IdentifierError as exc:
            errors["cvr"] = str(exc)
    if filters.ydernummer is not None:
        try:
            filters.ydernummer = ids.normalise_ydernummer(filters.ydernummer)
        except ids.IdentifierError as exc:
            errors["ydernummer"] = str(exc)
    if filters.shak is not None:
        shak = filters.shak.strip().upper()
        if not shak or not shak.isascii() or not shak.isalnum() or len(shak) > 7:
            errors["shak"] = f"{filters.shak!r} is not (the start of) a SHAK code"
        filters.shak = shak
    if filters.sor_code is not None:
        code = filters.sor_code.strip()
        if not code.isdigit() or len(code) > 18 or not code.isascii():
            errors["sor_code"] = "a SOR code (or its start) is digits only, at most 18"
        filters.sor_code = code
    if filters.municipality_code is not None:
        try:
            filters.municipality_code = ids.validate_municipality_code(filters.municipality_code)
        except ids.IdentifierError as exc:
            errors["municipality_code"] = str(exc)
    if filters.postal_code is not None:
        postal = filters.postal_code.strip()
        if not postal.isdigit() or not 3 <= len(postal) <= 4 or not postal.isascii():
            errors["postal_code"] = "a Danish postal code is 4 digits"
        filters.postal_code = postal
    if filters.entity_type is not None:
        if not filters.entity_type.isdigit() or not filters.entity_type.isascii():
            errors["entity_type"] = "an entity type is a SNOMED CT code (digits)"
    if filters.under is not None:
        try:
            filters.under = ids.validate_sor_code(filters.under)
        except ids.IdentifierError as exc:
            errors["under"] = str(exc)
    if filters.name is not None:
        filters.name = fold(filters.name)
        if not filters.name:
            filters.name = None
        elif len(filters.name) > 100:
            errors["name"] = "at most 100 characters"
    if errors:
        raise InvalidSearch(errors)
    return filters

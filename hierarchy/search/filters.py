"""What a search asks for: the column filters, their checks, and the refusal of bad ones.

The API's column filters come first. The FHIR directory (``hierarchy.fhir``) asks the same
search for what FHIR's search parameters need besides (the fields after ``active_on``):
the children of a unit, its subtree without itself, its ancestors, alternatives ("one of
these identifiers": FHIR's comma), the time of the last change, closed and future units,
the units FHIR gives a Location, and postal codes of either address. Each is unset by
default, and the API never sets them: its searches are the searches they were.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from hierarchy import identifiers as ids
from hierarchy.text import fold
from sorregistry.errors import DomainError

MAX_LIMIT = 500
# "updated": by the time of the last change (updated_at), then code: FHIR's _lastUpdated.
# "relevance" (a name search's default): the exact name first, then the names that begin
# with the text's first word, then those where every word begins a word, then the rest
# (substrings); each group by name, then code (see :func:`relevance`). With "fuzzy", the
# most similar first.
Sort = Literal["name", "code", "updated", "relevance"]
# contains: the folded name holds the text; prefix: begins with it; words: every word of
# the text begins a word of the name (FHIR's string search, hierarchy.fhir), in any order;
# fuzzy: the name's trigram similarity to the text is at least FUZZY_THRESHOLD
# (pg_trgm's similarity, hierarchy.search.fuzzy). Unset: words for a text of several
# words, contains for one.
NameMatch = Literal["contains", "prefix", "words", "fuzzy"]
NAME_MATCHES: tuple[NameMatch, ...] = ("contains", "prefix", "words", "fuzzy")
# In "words", a word begins the name or follows one of these.
WORD_SEPARATORS = (" ", "-", "(", "/")
MAX_WORDS = 10
# Which units, by their validity on ``active_on``: None, those valid then (the API's
# lists); "inactive", those not (closed, or not yet open); "any", all of them.
Validity = Literal["inactive", "any"]
# What an alternative compares (see hierarchy.search.statements.ALTERNATIVE_KINDS): a
# column, or the identifier of an owner (IE) - its CVR, a municipality's kommunekode, a
# region's code.
AlternativeKind = Literal["sor_code", "ydernummer", "shak", "gln", "p_number", "entity_type",
                          "level", "institution", "owner_cvr", "municipality", "region"]
ALTERNATIVE_KINDS: tuple[AlternativeKind, ...] = (
    "sor_code", "ydernummer", "shak", "gln", "p_number", "entity_type", "level", "institution",
    "owner_cvr", "municipality", "region")
# One group of alternatives: one of them must hold (kind, value: compared for equality).
Alternatives = tuple[tuple[AlternativeKind, str], ...]
MAX_ALTERNATIVES = 50
MAX_POSTAL_CODES = 2000  # more than Denmark has


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
    name_match: NameMatch | None = None  # None: words for several words, else contains
    entity_type: str | None = None
    ydernummer: str | None = None
    shak: str | None = None
    sor_code: str | None = None
    municipality_code: str | None = None
    postal_code: str | None = None
    under: str | None = None
    active_on: date | None = None
    # FHIR's needs (see the module's docstring); unset, they filter nothing.
    parent: str | None = None  # the units directly under this SOR code
    below: str | None = None  # the units under it, at any depth, itself excluded
    above: str | None = None  # the units it lies under (its ancestors)
    any_of: list[Alternatives] = field(default_factory=list)  # every group holds
    updated_from: datetime | None = None  # changed at or after (inclusive)
    updated_until: datetime | None = None  # changed before (exclusive)
    validity: Validity | None = None
    location: bool | None = None  # True: the units FHIR gives a Location (hierarchy.fhir)
    address_postal_codes: list[str] = field(default_factory=list)  # postal or visiting
    visiting_postal_codes: list[str] = field(default_factory=list)  # visiting address's
    exact_name: str | None = None  # the name exactly so (case and accents too)


FILTER_NAMES = tuple(Filters.__dataclass_fields__)


def name_words(folded: str) -> list[str]:
    """The words of a (folded) name text, longest first: the first is what the text index
    looks up, the others only narrow its matches."""
    return sorted(dict.fromkeys(folded.split()), key=len, reverse=True)


def typed_words(folded: str) -> list[str]:
    """The words of a (folded) text in the order typed, each once."""
    return list(dict.fromkeys(folded.split()))


def relevance(name: str, folded: str) -> int:
    """The group of a (folded) *name* found by the (folded) text *folded*: 0 the name
    itself, 1 the name begins with the text's first word, 2 every word of the text
    begins a word of the name, 3 otherwise (a substring). The SQL path's CASE
    (``hierarchy.search.matching.relevance_rank``) computes the same."""
    if name == folded:
        return 0
    words = typed_words(folded)
    if not words:
        return 3
    if name.startswith(words[0]) and all(begins_word(name, w) for w in words[1:]):
        return 1
    return 2 if all(begins_word(name, w) for w in words) else 3


def begins_word(name: str, word: str) -> bool:
    """Whether *word* begins *name* or follows one of WORD_SEPARATORS in it."""
    return name.startswith(word) or any(sep + word in name for sep in WORD_SEPARATORS)


@functools.lru_cache(maxsize=256)
def every_word_begins(words: tuple[str, ...]) -> Callable[[str], object]:
    """A test of a (folded) name, true when each of *words* begins a word of it
    (:func:`begins_word` of every word) - one regular expression, matched in C: a search
    in "words" mode checks thousands of names, and the words' tests in Python took most
    of its time (a lookahead per word: it begins the name, or follows a separator)."""
    separators = "".join(re.escape(separator) for separator in WORD_SEPARATORS)
    return re.compile("".join(f"(?=(?:.*[{separators}])?{re.escape(word)})" for word in words),
                      re.DOTALL).match


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
    for name in ("under", "parent", "below", "above"):
        value = getattr(filters, name)
        if value is not None:
            try:
                setattr(filters, name, ids.validate_sor_code(value))
            except ids.IdentifierError as exc:
                errors[name] = str(exc)
    _check_fhir_filters(filters, errors)
    if filters.name_match is not None and filters.name_match not in NAME_MATCHES:
        errors["name_match"] = f"one of {', '.join(NAME_MATCHES)}"
    if filters.name is not None and len(filters.name) > 100:  # as typed, not as folded
        errors["name"] = "at most 100 characters"
    elif filters.name is not None:
        filters.name = fold(filters.name)
        if not filters.name:
            filters.name = None
        elif filters.name_match is None:
            filters.name_match = "words" if len(filters.name.split()) > 1 else "contains"
        if (filters.name is not None and filters.name_match == "words"
                and len(name_words(filters.name)) > MAX_WORDS):
            errors["name"] = f"at most {MAX_WORDS} words"
    if errors:
        raise InvalidSearch(errors)
    return filters


def _check_fhir_filters(filters: Filters, errors: dict[str, str]) -> None:
    """The checks of the filters only FHIR sets (their values come parsed already)."""
    for group in filters.any_of:
        if not 1 <= len(group) <= MAX_ALTERNATIVES:
            errors["any_of"] = f"between 1 and {MAX_ALTERNATIVES} alternatives in a group"
        elif any(kind not in ALTERNATIVE_KINDS or not isinstance(value, str)
                 for kind, value in group):
            errors["any_of"] = "an alternative is (one of the known kinds, a text)"
    for name in ("updated_from", "updated_until"):
        moment = getattr(filters, name)
        if moment is not None and moment.tzinfo is None:
            errors[name] = "a moment with its time zone"
    for name in ("address_postal_codes", "visiting_postal_codes"):
        if len(getattr(filters, name)) > MAX_POSTAL_CODES:
            errors[name] = f"at most {MAX_POSTAL_CODES} postal codes"

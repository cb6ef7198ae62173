"""FHIR's search parameters (IHE mCSD ITI-90) translated onto the register's search.

Every parameter the directory serves is in :data:`PARAMETERS`, with the handler that
turns its value into ``hierarchy.search.Filters``: the CapabilityStatement is made from
the same table (``hierarchy.fhir.capability``), so it lists exactly what works. There is
no second search engine: ``name`` is the search's name filter (folded as the API folds,
FHIR's default "starts a word" as its ``words`` mode), ``partof:below`` its subtree,
``identifier``, ``type`` and ``_id`` its alternatives (FHIR's comma is OR, a repeated
parameter AND), ``_lastUpdated`` its moments, ``active`` and ``status`` its validity.

A value that cannot match (an unknown identifier system, an id that is no SOR code) finds
nothing, as FHIR has it; a value FHIR's syntax does not allow, an unknown modifier, a
parameter given twice that cannot be, and - under ``Prefer: handling=strict`` - an unknown
parameter are refused (400). Under ``handling=lenient`` (the default) unknown parameters
are ignored and named in the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from hierarchy import identifiers as ids
from hierarchy.fhir import systems
from hierarchy.fhir.outcome import FhirError
from hierarchy.fhir.values import (
    BadValue,
    Bounds,
    alternatives,
    date_bounds,
    reference,
    token,
    unescape,
)
from hierarchy.search import (
    MAX_ALTERNATIVES,
    MAX_LIMIT,
    AlternativeKind,
    Alternatives,
    Filters,
    Sort,
)

ResourceType = Literal["Organization", "Location"]
RESOURCE_TYPES: tuple[ResourceType, ...] = ("Organization", "Location")
DEFAULT_COUNT = 50
# An alternative nothing has (no unit's SOR code is empty): "this finds nothing".
NOTHING: Alternatives = (("sor_code", ""),)
_SPEC = "http://hl7.org/fhir/SearchParameter/"


@dataclass
class Query:
    """A FHIR search as the register's search takes it, with FHIR's result options."""

    resource: ResourceType
    filters: Filters = field(default_factory=lambda: Filters(validity="any"))
    sort: Sort = "name"
    count: int = DEFAULT_COUNT
    page: str | None = None  # the opaque page token (_cursor), as given
    total: bool = True
    summary_count: bool = False
    includes: set[str] = field(default_factory=set)
    revincludes: set[str] = field(default_factory=set)
    ndjson: bool = False
    city: tuple[str | None, str] | None = None  # (modifier, value): hierarchy.fhir.cities
    used: list[tuple[str, str]] = field(default_factory=list)  # as given, in order
    ignored: list[str] = field(default_factory=list)  # unknown, ignored (lenient)
    bounds: Bounds = field(default_factory=Bounds)

    def nothing(self) -> None:
        """Let the search find nothing (a value that cannot match)."""
        self.filters.any_of.append(NOTHING)


Handler = Callable[[Query, str, str | None, str], None]  # (query, name, modifier, value)


@dataclass(frozen=True)
class Parameter:
    """One search parameter: what the CapabilityStatement says of it, and its handler."""

    name: str
    type: str
    definition: str
    documentation: str
    handler: Handler
    modifiers: tuple[str, ...] = ()
    repeatable: bool = False  # given again, each must hold (AND)


# --- tokens: identifiers, types, ids ---------------------------------------------------------

def _digits(code: str, *lengths: int) -> bool:
    return code.isascii() and code.isdigit() and len(code) in lengths


def _ydernummer(code: str) -> list[tuple[AlternativeKind, str]]:
    try:
        return [("ydernummer", ids.normalise_ydernummer(code))]
    except ids.IdentifierError:
        return []


def _shak(code: str) -> list[tuple[AlternativeKind, str]]:
    shak = code.upper()
    return [("shak", shak)] if shak.isascii() and shak.isalnum() and len(shak) <= 7 else []


def _region(code: str) -> list[tuple[AlternativeKind, str]]:
    by_iso = {iso: dagi for dagi, iso in systems.region_iso_codes().items()}
    return [("region", by_iso[code.upper()])] if code.upper() in by_iso else []


_IDENTIFIER_SYSTEMS: dict[str, Callable[[str], list[tuple[AlternativeKind, str]]]] = {
    systems.SOR: lambda code: [("sor_code", code)] if ids.is_sor_code(code) else [],
    systems.YDERNUMMER: _ydernummer,
    systems.SKS: _shak,
    systems.CVR: lambda code: [("owner_cvr", code)] if _digits(code, 8) else [],
    systems.GLN: lambda code: [("gln", code)] if _digits(code, 13) else [],
    systems.GLN_DK_CORE_3_5: lambda code: [("gln", code)] if _digits(code, 13) else [],
    systems.P_NUMBER: lambda code: [("p_number", code)] if _digits(code, 10) else [],
    systems.KOMMUNEKODE: lambda code: [("municipality", code.zfill(4))]
    if _digits(code, 3, 4) else [],
    systems.REGIONSKODE: _region,
}
_MCSD_LEVELS = {"facility": "SI", "jurisdiction": "IE"}
_TYPE_SYSTEMS: dict[str, Callable[[str], list[tuple[AlternativeKind, str]]]] = {
    systems.SNOMED: lambda code: [("entity_type", code)] if _digits(code, *range(6, 19)) else [],
    systems.EER_ORGANIZATION_TYPE: lambda code: [("level", code)]
    if code in ("IE", "SI", "OE") else [],
    systems.MCSD_TYPES: lambda code: [("level", _MCSD_LEVELS[code])]
    if code in _MCSD_LEVELS else [],
}


def _token_group(query: Query, name: str, value: str,
                 known: dict[str, Callable[[str], list[tuple[AlternativeKind, str]]]]) -> None:
    """One OR list of tokens as one group of the search's alternatives (AND between groups)."""
    found: list[tuple[AlternativeKind, str]] = []
    for part in alternatives(name, value):
        system, code = token(part)
        if not code:
            raise BadValue(name, "a code is required (system|code or code)")
        if system is None:
            for read in known.values():
                found.extend(read(code))
        elif system in known:
            found.extend(known[system](code))
    unique = tuple(dict.fromkeys(found))
    if len(unique) > MAX_ALTERNATIVES:
        raise BadValue(name, f"at most {MAX_ALTERNATIVES} alternatives in all")
    query.filters.any_of.append(unique or NOTHING)


def _identifier(query: Query, name: str, modifier: str | None, value: str) -> None:
    known = _IDENTIFIER_SYSTEMS
    if query.resource == "Location":  # a Location carries its unit's SOR identifier only
        known = {systems.SOR: _IDENTIFIER_SYSTEMS[systems.SOR]}
    _token_group(query, name, value, known)


def _type(query: Query, name: str, modifier: str | None, value: str) -> None:
    _token_group(query, name, value, _TYPE_SYSTEMS)


def _codes(codes: list[str]) -> Alternatives:
    """The units with one of *codes* (those that are SOR codes): one group of alternatives."""
    group: Alternatives = tuple(("sor_code", code) for code in dict.fromkeys(codes)
                                if ids.is_sor_code(code))
    return group or NOTHING


def _id(query: Query, name: str, modifier: str | None, value: str) -> None:
    codes = [token(part)[1] for part in alternatives(name, value)]
    query.filters.any_of.append(_codes(codes))


# --- strings, references, dates, status ------------------------------------------------------

def _name(query: Query, name: str, modifier: str | None, value: str) -> None:
    values = alternatives(name, value)
    if len(values) != 1:
        raise BadValue(name, "one name (the register's name search takes one)")
    text = unescape(values[0]).strip()
    if modifier == "exact":
        query.filters.name, query.filters.name_match = text, "prefix"
        query.filters.exact_name = text
    else:
        query.filters.name = text
        query.filters.name_match = "contains" if modifier == "contains" else "words"


def _one_reference(name: str, value: str, resource_type: str) -> str | None:
    values = alternatives(name, value)
    if len(values) != 1:
        raise BadValue(name, "one reference")
    code = reference(name, values[0], resource_type)
    return code if ids.is_sor_code(code) else None


def _partof(query: Query, name: str, modifier: str | None, value: str) -> None:
    code = _one_reference(name, value, query.resource)
    if code is None:
        query.nothing()
    elif query.resource == "Location":  # a unit's Location is part of its institution's
        query.filters.any_of += [(("institution", code),), (("level", "OE"),)]
    elif modifier == "below":
        query.filters.below = code
    elif modifier == "above":
        query.filters.above = code
    else:
        query.filters.parent = code


def _organization(query: Query, name: str, modifier: str | None, value: str) -> None:
    codes = [reference(name, part, "Organization") for part in alternatives(name, value)]
    query.filters.any_of.append(_codes(codes))


def _active(query: Query, name: str, modifier: str | None, value: str) -> None:
    flag = token(value)[1].lower()
    if flag not in ("true", "false"):
        raise BadValue(name, "true or false")
    query.filters.validity = None if flag == "true" else "inactive"


_STATUSES = frozenset({"active", "inactive", "suspended"})


def _status(query: Query, name: str, modifier: str | None, value: str) -> None:
    wanted = {token(part)[1] for part in alternatives(name, value)}
    if not wanted <= _STATUSES:
        raise BadValue(name, "active, inactive or suspended")
    if {"active", "inactive"} <= wanted:
        query.filters.validity = "any"
    elif "active" in wanted:
        query.filters.validity = None
    elif "inactive" in wanted:
        query.filters.validity = "inactive"
    else:
        query.nothing()  # the register has no suspended units


def _last_updated(query: Query, name: str, modifier: str | None, value: str) -> None:
    values = alternatives(name, value)
    if len(values) != 1:
        raise BadValue(name, "one date (repeat the parameter for a range)")
    query.bounds = query.bounds & date_bounds(name, values[0])
    query.filters.updated_from = query.bounds.lower
    query.filters.updated_until = query.bounds.upper


def _postal_code(query: Query, name: str, modifier: str | None, value: str) -> None:
    codes: list[str] = []
    for part in alternatives(name, value):
        text = unescape(part).strip()
        if _digits(text, 4):
            codes.append(text)
        elif _digits(text, 3) and modifier != "exact":  # starts with: ten postal codes
            codes.extend(f"{text}{digit}" for digit in range(10))
    wanted = query.filters.visiting_postal_codes if query.resource == "Location" \
        else query.filters.address_postal_codes
    if wanted:  # given again: both must hold
        codes = [code for code in codes if code in wanted]
    if not codes:
        query.nothing()
        return
    wanted[:] = list(dict.fromkeys(codes))


def _city(query: Query, name: str, modifier: str | None, value: str) -> None:
    values = alternatives(name, value)
    if len(values) != 1:
        raise BadValue(name, "one city")
    query.city = (modifier, unescape(values[0]).strip())


# --- the parameters ------------------------------------------------------------------------

def _common(resource: ResourceType) -> list[Parameter]:
    return [
        Parameter("_id", "token", _SPEC + "Resource-id",
                  "The SOR code (several: comma-separated, any of them)", _id,
                  repeatable=True),
        Parameter("_lastUpdated", "date", _SPEC + "Resource-lastUpdated",
                  "When anything shown last changed; prefixes eq gt lt ge le sa eb; repeat "
                  "for a range", _last_updated, repeatable=True),
        Parameter("identifier", "token", _SPEC + f"{resource}-identifier",
                  "SOR code, ydernummer (with or without leading zeros), SHAK, GLN, "
                  "CVR, P-number, kommunekode, regionskode: system|value, |value or value"
                  if resource == "Organization" else "The SOR code",
                  _identifier, repeatable=True),
        Parameter("name", "string", _SPEC + f"{resource}-name",
                  "A word of the name starts so (folded: case, accents, æ/ae, ø/oe, å/aa); "
                  ":contains anywhere; :exact the whole name as written", _name,
                  ("contains", "exact")),
        Parameter("type", "token", _SPEC + f"{resource}-type",
                  "SNOMED CT entity type, the level (MedCom's eer-sor-organization-type: "
                  "IE, SI, OE) or mCSD's facility / jurisdiction", _type, repeatable=True),
    ]


ORGANIZATION: tuple[Parameter, ...] = (
    *_common("Organization"),
    Parameter("partof", "reference", _SPEC + "Organization-partof",
              "The parent; :below every unit under it at any depth (itself excluded), "
              ":above every unit it lies under", _partof, ("below", "above")),
    Parameter("active", "token", _SPEC + "Organization-active",
              "true: valid today; false: closed, or not yet open", _active),
    Parameter("address-postalcode", "string", _SPEC + "Organization-address-postalcode",
              "Postal code of the postal or the visiting address (3 digits: starts with)",
              _postal_code, ("exact",), repeatable=True),
    Parameter("address-city", "string", _SPEC + "Organization-address-city",
              "City of the postal or the visiting address (folded as names; starts with; "
              ":contains, :exact)", _city, ("contains", "exact")),
)
LOCATION: tuple[Parameter, ...] = (
    *_common("Location"),
    Parameter("organization", "reference", _SPEC + "Location-organization",
              "The Organization that manages it (the unit with the same SOR code)",
              _organization, repeatable=True),
    Parameter("partof", "reference", _SPEC + "Location-partof",
              "The institution's Location a unit's Location is part of", _partof),
    Parameter("status", "token", _SPEC + "Location-status",
              "active (the unit is valid today) or inactive", _status),
    Parameter("address-postalcode", "string", _SPEC + "Location-address-postalcode",
              "Postal code of the visiting address (3 digits: starts with)", _postal_code,
              ("exact",), repeatable=True),
)
PARAMETERS: dict[ResourceType, dict[str, Parameter]] = {
    "Organization": {p.name: p for p in ORGANIZATION},
    "Location": {p.name: p for p in LOCATION},
}
INCLUDES: dict[ResourceType, tuple[str, ...]] = {
    "Organization": ("Organization:partof",), "Location": ("Location:organization",)}
REVINCLUDES: dict[ResourceType, tuple[str, ...]] = {
    "Organization": ("Location:organization",), "Location": ()}
SORTS: dict[str, Sort] = {"name": "name", "_lastUpdated": "updated", "_id": "code"}
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json",
                          "application/json+fhir"})
NDJSON_FORMATS = frozenset({"ndjson", "application/ndjson", "application/fhir+ndjson",
                            "application/x-ndjson"})
RESULT_PARAMETERS = ("_count", "_total", "_summary", "_include", "_revinclude", "_sort",
                     "_format", "_cursor")
# General parameters accepted and without effect (FHIR's _pretty: the JSON is compact).
NO_EFFECT = frozenset({"_pretty"})


# --- reading a request ---------------------------------------------------------------------

def parse(resource: ResourceType, pairs: Iterable[tuple[str, str]], *, strict: bool) -> Query:
    """The search *pairs* (the query string's, and a POSTed form's) ask for; FhirError (400)
    for what cannot be served, and under *strict* for an unknown parameter."""
    query = Query(resource)
    query.filters.location = resource == "Location" or None  # the units with a Location
    table = PARAMETERS[resource]
    seen: set[str] = set()
    for key, value in pairs:
        name, _, modifier_text = key.partition(":")
        modifier = modifier_text or None
        if not value.strip() or name in NO_EFFECT:
            continue  # FHIR: a parameter without a value is ignored
        if name in RESULT_PARAMETERS:
            if name in seen and name not in ("_include", "_revinclude"):
                raise BadValue(name, "given more than once")
            _result(query, name, modifier, value)
        elif name in table:
            parameter = table[name]
            if modifier is not None and modifier not in parameter.modifiers:
                supported = ", ".join(f":{m}" for m in parameter.modifiers) or "none"
                raise BadValue(key, f"the modifier :{modifier} is not supported "
                                    f"(supported: {supported})")
            if name in seen and not parameter.repeatable:
                raise BadValue(name, "given more than once (give alternatives "
                                     "comma-separated, where the parameter takes them)")
            parameter.handler(query, name, modifier, value)
        elif strict:
            raise FhirError(f"unknown search parameter {key} (Prefer: handling=strict)",
                            field_errors={key: ["not a search parameter of "
                                                f"{resource} on this server"]})
        else:
            query.ignored.append(key)
            continue
        seen.add(name)
        query.used.append((key, value))
    return query


def _count(query: Query, value: str) -> None:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_LIMIT:
        raise BadValue("_count", f"a whole number from 0 to {MAX_LIMIT}")
    query.count = int(text)
    query.summary_count = query.summary_count or query.count == 0


def _result(query: Query, name: str, modifier: str | None, value: str) -> None:
    """A result parameter: how the answer is paged, sorted, counted, included, written."""
    text = value.strip()
    if modifier is not None:
        raise BadValue(f"{name}:{modifier}", f"no modifier is supported on {name}")
    if name == "_count":
        _count(query, text)
    elif name == "_total":
        if text not in ("none", "estimate", "accurate"):
            raise BadValue(name, "none, estimate or accurate")
        query.total = text != "none"
    elif name == "_summary":
        if text not in ("count", "false", "data"):
            raise BadValue(name, "count, data or false (no summary of elements is served)")
        query.summary_count = query.summary_count or text == "count"
    elif name in ("_include", "_revinclude"):
        known = (INCLUDES if name == "_include" else REVINCLUDES)[query.resource]
        if text not in known:
            raise BadValue(name, f"supported here: {', '.join(known) or 'none'}")
        (query.includes if name == "_include" else query.revincludes).add(text)
    elif name == "_sort":
        if text not in SORTS:
            raise BadValue(name, f"one of {', '.join(SORTS)}, ascending")
        query.sort = SORTS[text]
    elif name == "_format":
        if text in NDJSON_FORMATS:
            query.ndjson = True
        elif text not in JSON_FORMATS:
            raise BadValue(name, "this server writes JSON (json, application/fhir+json) "
                                 "and, for a search, NDJSON (ndjson)")
    else:  # _cursor
        query.page = text

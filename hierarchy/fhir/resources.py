"""The register's units as FHIR R4 resources: an Organization for every unit, a Location for
every health institution and for each unit with a visiting address of its own.

Pure functions of a search row (``hierarchy.search.PAGE_COLUMNS``) and the day: no
database, so a page, a history entry and an export line are made the same way. The mapping
(README, "FHIR"):

* ``id`` is the SOR code; ``meta.versionId`` the register's version of the unit (its own
  values: a change it only inherits moves ``meta.lastUpdated``, not the version);
  ``meta.lastUpdated`` when anything it shows last changed.
* ``identifier``: SOR (``use=official`` with MedCom's SORID type, as MedCom's endpoint
  register has it), ydernummer (6 digits, zero-padded), SHAK (the SKS system), the unit's
  own GLN (an inherited GLN is left out: it identifies the ancestor, found by ``partOf``),
  P-number; on an owner (IE) its CVR (as MedCom, without ``use``), a municipality's
  kommunekode and a region's ISO 3166-2 code (DK Core's slices).
* ``type``: the SNOMED CT entity type with its Danish name, the level in MedCom's
  ``eer-sor-organization-type``, and mCSD's ``jurisdiction`` (IE) or ``facility`` (SI).
* ``active``: valid on the day (false once closed, and before it opens); the dates in the
  ``sor-validity`` extension (a Period: FromDate to the day before ToDate).
* ``telecom``, ``address``: the effective values (inherited where the unit has none);
  the postal address (``type=postal``) and the visiting address (``physical``), one
  address (``both``) when they are the same; kommunekode and region in DK Core's address
  extensions.
* A Location has the Organization's id, is managed by it, has the visiting address, its
  position in WGS84 from the address's ETRS89 / UTM zone 32 coordinates, and, for a unit
  (OE), ``partOf`` its institution's Location.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Protocol

import orjson

from hierarchy.codes import entity_type_name, municipalities
from hierarchy.fhir import systems
from hierarchy.fhir.coordinates import wgs84_position
from hierarchy.search import ItemRow

Resource = dict[str, Any]


class UnitRow(ItemRow, Protocol):
    """A search row (``hierarchy.search.PAGE_COLUMNS``): the item's columns and whether the
    unit's address is its own."""

    @property
    def own_address(self) -> bool: ...


def instant(moment: datetime) -> str:
    """A FHIR instant, in UTC to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _last_updated(moment: datetime) -> str:
    # An import stamps thousands of units alike.
    return _INSTANTS.get(moment, lambda: instant(moment))  # type: ignore[no-any-return]


def compact(value: dict[str, Any]) -> dict[str, Any]:
    """*value* without empty members (FHIR allows no empty strings, arrays or objects; a
    false boolean stays; no member is a number). Shallow: the builders make no empty member
    deeper down."""
    return {key: item for key, item in value.items() if item or item is False}


class _Memo:
    """The parts many resources share (an owner's address, a type, a validity), made once:
    a page of 500 units of one municipality repeats a few dozen of them. Bounded; the
    objects are shared between resources, which are written, never changed."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.made: dict[Any, Any] = {}

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        found = self.made.get(key, _MISSING)
        if found is _MISSING:
            if len(self.made) >= self.size:
                self.made.clear()
            found = self.made[key] = make()
        return found


_MISSING = object()
_ADDRESSES = _Memo()
_VALIDITIES = _Memo()
_INSTANTS = _Memo()


def is_active(row: ItemRow, day: date) -> bool:
    started = row.valid_from is None or row.valid_from <= day
    return started and (row.valid_to is None or row.valid_to > day)


def has_location(row: UnitRow) -> bool:
    """A health institution (the facility) always; a unit with a visiting address of its own
    (the search's ``location`` filter selects the same units)."""
    return row.level == "SI" or (row.level == "OE" and bool(row.own_address))


_SOR_TYPE = {"coding": [systems.SOR_IDENTIFIER_TYPE]}


def sor_identifier(sor_code: str) -> Resource:
    return {"use": "official", "type": _SOR_TYPE, "system": systems.SOR, "value": sor_code}


def identifiers(row: ItemRow) -> list[Resource]:
    effective = row.effective or {}
    found = [sor_identifier(row.sor_code)]
    if row.ydernummer:
        found.append({"system": systems.YDERNUMMER, "value": row.ydernummer})
    if row.shak:
        found.append({"system": systems.SKS, "value": row.shak})
    gln = effective.get("gln")
    if gln and "gln" not in (row.inherited or ()):
        found.append({"use": "official", "system": systems.GLN, "value": gln})
    if row.p_number:
        found.append({"system": systems.P_NUMBER, "value": row.p_number})
    if row.level == "IE":
        found.extend(_owner_identifiers(row, effective))
    return found


def _owner_identifiers(row: ItemRow, effective: dict[str, Any]) -> list[Resource]:
    """An owner's: its CVR, and a municipality's or region's own code (DK Core's slices)."""
    found = []
    if row.owner_cvr:
        found.append({"system": systems.CVR, "value": row.owner_cvr})
    address = effective.get("postal_address") or {}
    kommunekode = address.get("municipality_code")
    if row.ownership == "kommunal" and kommunekode in municipalities():
        found.append({"system": systems.KOMMUNEKODE, "value": kommunekode})
    region = systems.region_iso_codes().get(address.get("region_code") or "")
    if row.ownership == "regional" and region:
        found.append({"system": systems.REGIONSKODE, "value": region})
    return found


@cache
def _snomed(code: str) -> Resource:
    return compact({"system": systems.SNOMED, "code": code, "display": entity_type_name(code)})


@cache
def _level(level: str) -> Resource:
    return {"coding": [{"system": systems.EER_ORGANIZATION_TYPE, "code": level}]}


_MCSD_TYPE = {"IE": ("jurisdiction", "Jurisdiction"), "SI": ("facility", "Facility")}


@cache
def _mcsd_type(level: str) -> Resource | None:
    if level not in _MCSD_TYPE:
        return None
    code, display = _MCSD_TYPE[level]
    return {"coding": [{"system": systems.MCSD_TYPES, "code": code, "display": display}]}


@cache
def _organization_types(entity_type: str | None, level: str) -> list[Resource]:
    types = [{"coding": [_snomed(entity_type)]}] if entity_type else []
    types.append(_level(level))
    mcsd = _mcsd_type(level)
    return types + ([mcsd] if mcsd else [])


def organization_types(row: ItemRow) -> list[Resource]:
    return _organization_types(row.entity_type, row.level)


@cache
def _location_types(entity_type: str | None, level: str) -> list[Resource]:
    types = [t for t in (_mcsd_type(level),) if t]
    if entity_type:
        types.append({"coding": [_snomed(entity_type)]})
    return [*types, _level(level)]


_TELECOM = (("phone", "phone"), ("fax", "fax"), ("email", "email"), ("website", "url"))


def telecom(effective: dict[str, Any]) -> list[Resource]:
    return [{"system": system, "value": effective[key], "use": "work"}
            for key, system in _TELECOM if effective.get(key)]


@cache
def _municipality_extension(kommunekode: str) -> Resource:
    return {"url": systems.MUNICIPALITY_EXTENSION, "valueCodeableConcept": {"coding": [compact({
        "system": systems.KOMMUNEKODE, "code": kommunekode,
        "display": municipalities().get(kommunekode)})]}}


@cache
def _region_extension(region: str) -> Resource:
    return {"url": systems.REGION_EXTENSION, "valueCodeableConcept": {
        "coding": [{"system": systems.REGIONSKODE, "code": region}]}}


def address(value: dict[str, Any] | None, kind: str) -> Resource | None:
    """A SOR address as a FHIR Address of *kind* (postal, physical, both)."""
    if not value:
        return None
    street = value.get("street") or " ".join(
        part for part in (value.get("street_name"), value.get("building")) if part)
    unit = " ".join(part for part in (value.get("floor"), value.get("suite")) if part)
    extensions = []
    kommunekode = value.get("municipality_code")
    if kommunekode:
        extensions.append(_municipality_extension(kommunekode))
    region = systems.region_iso_codes().get(value.get("region_code") or "")
    if region:
        extensions.append(_region_extension(region))
    found = compact({
        "extension": extensions,
        "line": [line for line in (street, unit, value.get("sublocation")) if line],
        "city": value.get("city"), "district": value.get("district"),
        "postalCode": value.get("postal_code"), "country": value.get("country"),
    })
    return {"use": "work", "type": kind, **found} if found else None


def _addresses(postal: dict[str, Any] | None,
               visiting: dict[str, Any] | None) -> list[Resource]:
    if postal and visiting == postal:
        return [a for a in (address(postal, "both"),) if a]
    return [a for a in (address(postal, "postal"), address(visiting, "physical")) if a]


def addresses(effective: dict[str, Any]) -> list[Resource]:
    postal, visiting = effective.get("postal_address"), effective.get("visiting_address")
    if not (postal or visiting):
        return []
    return _ADDRESSES.get(orjson.dumps((postal, visiting)),  # type: ignore[no-any-return]
                          lambda: _addresses(postal, visiting))


def _visiting_address(visiting: dict[str, Any] | None) -> Resource | None:
    if not visiting:
        return None
    return _ADDRESSES.get(orjson.dumps(visiting),  # type: ignore[no-any-return]
                          lambda: address(visiting, "physical"))


def _make_validity(valid_from: date | None, valid_to: date | None,
                   first_valid_from: date | None) -> list[Resource]:
    last_day = valid_to - timedelta(days=1) if valid_to else None
    found = []
    if valid_from or last_day:
        period = compact({"start": valid_from.isoformat() if valid_from else None,
                          "end": last_day.isoformat() if last_day else None})
        found.append({"url": systems.VALIDITY_EXTENSION, "valuePeriod": period})
    if first_valid_from:
        found.append({"url": systems.FIRST_VALID_EXTENSION,
                      "valueDate": first_valid_from.isoformat()})
    return found


def _validity(row: ItemRow) -> list[Resource]:
    key = (row.valid_from, row.valid_to, row.first_valid_from)
    return _VALIDITIES.get(key, lambda: _make_validity(*key))  # type: ignore[no-any-return]


@cache
def _organization_profiles(level: str) -> list[str]:
    return [systems.DK_CORE_ORGANIZATION,
            {"IE": systems.MCSD_JURISDICTION_ORGANIZATION,
             "SI": systems.MCSD_FACILITY_ORGANIZATION}.get(level, systems.MCSD_ORGANIZATION)]


@cache
def _location_profiles(level: str) -> list[str]:
    return [systems.DK_CORE_LOCATION,
            systems.MCSD_FACILITY_LOCATION if level == "SI" else systems.MCSD_LOCATION]


def organization(row: ItemRow, day: date) -> Resource:
    """The Organization of *row* as it shows on *day*."""
    effective = row.effective or {}
    resource: Resource = {
        "resourceType": "Organization",
        "id": row.sor_code,
        "meta": {"versionId": str(row.version), "lastUpdated": _last_updated(row.updated_at),
                 "profile": _organization_profiles(row.level)},
    }
    extension = _validity(row)
    if extension:
        resource["extension"] = extension
    resource["identifier"] = identifiers(row)
    resource["active"] = is_active(row, day)
    resource["type"] = _organization_types(row.entity_type, row.level)
    resource["name"] = row.name
    contacts = telecom(effective)
    if contacts:
        resource["telecom"] = contacts
    places = addresses(effective)
    if places:
        resource["address"] = places
    if row.parent_sor_code:
        resource["partOf"] = {"reference": f"Organization/{row.parent_sor_code}"}
    return resource


_PHYSICAL_TYPE = {
    level: {"coding": [{"system": systems.LOCATION_PHYSICAL_TYPE, "code": code,
                        "display": display}]}
    for level, code, display in (("SI", "si", "Site"), ("OE", "bu", "Building"),
                                 ("IE", "bu", "Building"))}


def location(row: UnitRow, day: date) -> Resource:
    """The Location of *row* (one that :func:`has_location`) as it shows on *day*."""
    effective = row.effective or {}
    visiting = effective.get("visiting_address")
    part_of = None
    if row.level == "OE" and row.institution_sor_code:
        part_of = {"reference": f"Location/{row.institution_sor_code}"}
    return compact({
        "resourceType": "Location",
        "id": row.sor_code,
        "meta": {"versionId": str(row.version), "lastUpdated": _last_updated(row.updated_at),
                 "profile": _location_profiles(row.level)},
        "identifier": [sor_identifier(row.sor_code)],
        "status": "active" if is_active(row, day) else "inactive",
        "name": row.name,
        "mode": "instance",
        "type": _location_types(row.entity_type, row.level),
        "telecom": telecom(effective),
        "address": _visiting_address(visiting),
        "physicalType": _PHYSICAL_TYPE.get(row.level, _PHYSICAL_TYPE["OE"]),
        "position": wgs84_position(visiting),
        "managingOrganization": {"reference": f"Organization/{row.sor_code}"},
        "partOf": part_of,
    })

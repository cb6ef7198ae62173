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

from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

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


def compact(value: Any) -> Any:
    """*value* without empty members: FHIR allows no empty strings, arrays or objects."""
    if isinstance(value, dict):
        pruned = {key: compact(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, "", [], {})}
    if isinstance(value, list):
        return [item for item in (compact(item) for item in value)
                if item not in (None, "", [], {})]
    return value


def is_active(row: ItemRow, day: date) -> bool:
    started = row.valid_from is None or row.valid_from <= day
    return started and (row.valid_to is None or row.valid_to > day)


def has_location(row: UnitRow) -> bool:
    """A health institution (the facility) always; a unit with a visiting address of its own
    (the search's ``location`` filter selects the same units)."""
    return row.level == "SI" or (row.level == "OE" and bool(row.own_address))


def _meta(row: ItemRow, profiles: list[str]) -> Resource:
    return {"versionId": str(row.version), "lastUpdated": instant(row.updated_at),
            "profile": profiles}


def sor_identifier(sor_code: str) -> Resource:
    return {"use": "official", "type": {"coding": [systems.SOR_IDENTIFIER_TYPE]},
            "system": systems.SOR, "value": sor_code}


def identifiers(row: ItemRow) -> list[Resource]:
    effective = row.effective or {}
    found = [sor_identifier(row.sor_code)]
    if row.ydernummer:
        found.append({"system": systems.YDERNUMMER, "value": row.ydernummer})
    if row.shak:
        found.append({"system": systems.SKS, "value": row.shak})
    gln = effective.get("gln")
    if gln and "gln" not in (row.inherited or []):
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


def _snomed(code: str) -> Resource:
    return {"system": systems.SNOMED, "code": code, "display": entity_type_name(code)}


def _level(level: str) -> Resource:
    return {"coding": [{"system": systems.EER_ORGANIZATION_TYPE, "code": level}]}


_MCSD_TYPE = {"IE": ("jurisdiction", "Jurisdiction"), "SI": ("facility", "Facility")}


def _mcsd_type(level: str) -> Resource | None:
    if level not in _MCSD_TYPE:
        return None
    code, display = _MCSD_TYPE[level]
    return {"coding": [{"system": systems.MCSD_TYPES, "code": code, "display": display}]}


def organization_types(row: ItemRow) -> list[Resource]:
    types = [{"coding": [_snomed(row.entity_type)]}] if row.entity_type else []
    types.append(_level(row.level))
    mcsd = _mcsd_type(row.level)
    return types + ([mcsd] if mcsd else [])


_TELECOM = (("phone", "phone"), ("fax", "fax"), ("email", "email"), ("website", "url"))


def telecom(effective: dict[str, Any]) -> list[Resource]:
    return [{"system": system, "value": effective[key], "use": "work"}
            for key, system in _TELECOM if effective.get(key)]


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
        extensions.append({"url": systems.MUNICIPALITY_EXTENSION, "valueCodeableConcept": {
            "coding": [{"system": systems.KOMMUNEKODE, "code": kommunekode,
                        "display": municipalities().get(kommunekode)}]}})
    region = systems.region_iso_codes().get(value.get("region_code") or "")
    if region:
        extensions.append({"url": systems.REGION_EXTENSION, "valueCodeableConcept": {
            "coding": [{"system": systems.REGIONSKODE, "code": region}]}})
    return compact({
        "extension": extensions, "use": "work", "type": kind,
        "line": [street, unit, value.get("sublocation")],
        "city": value.get("city"), "district": value.get("district"),
        "postalCode": value.get("postal_code"), "country": value.get("country"),
    }) or None


def addresses(effective: dict[str, Any]) -> list[Resource]:
    postal = effective.get("postal_address")
    visiting = effective.get("visiting_address")
    if postal and visiting == postal:
        return [a for a in (address(postal, "both"),) if a]
    return [a for a in (address(postal, "postal"), address(visiting, "physical")) if a]


def _validity(row: ItemRow) -> list[Resource]:
    last_day = row.valid_to - timedelta(days=1) if row.valid_to else None
    found = []
    if row.valid_from or last_day:
        period = {"start": row.valid_from.isoformat() if row.valid_from else None,
                  "end": last_day.isoformat() if last_day else None}
        found.append({"url": systems.VALIDITY_EXTENSION, "valuePeriod": period})
    if row.first_valid_from:
        found.append({"url": systems.FIRST_VALID_EXTENSION,
                      "valueDate": row.first_valid_from.isoformat()})
    return found


_ORGANIZATION_PROFILES = {"IE": systems.MCSD_JURISDICTION_ORGANIZATION,
                          "SI": systems.MCSD_FACILITY_ORGANIZATION}


def organization(row: ItemRow, day: date) -> Resource:
    """The Organization of *row* as it shows on *day*."""
    effective = row.effective or {}
    profiles = [systems.DK_CORE_ORGANIZATION,
                _ORGANIZATION_PROFILES.get(row.level, systems.MCSD_ORGANIZATION)]
    resource: Resource = compact({
        "resourceType": "Organization",
        "id": row.sor_code,
        "meta": _meta(row, profiles),
        "extension": _validity(row),
        "identifier": identifiers(row),
        "active": is_active(row, day),
        "type": organization_types(row),
        "name": row.name,
        "telecom": telecom(effective),
        "address": addresses(effective),
        "partOf": {"reference": f"Organization/{row.parent_sor_code}"}
        if row.parent_sor_code else None,
    })
    return resource


_PHYSICAL_TYPE = {"SI": ("si", "Site"), "OE": ("bu", "Building")}


def location(row: UnitRow, day: date) -> Resource:
    """The Location of *row* (one that :func:`has_location`) as it shows on *day*."""
    effective = row.effective or {}
    visiting = effective.get("visiting_address")
    types = [t for t in (_mcsd_type(row.level),) if t]
    if row.entity_type:
        types.append({"coding": [_snomed(row.entity_type)]})
    types.append(_level(row.level))
    code, display = _PHYSICAL_TYPE.get(row.level, ("bu", "Building"))
    profiles = [systems.DK_CORE_LOCATION, systems.MCSD_FACILITY_LOCATION
                if row.level == "SI" else systems.MCSD_LOCATION]
    part_of = None
    if row.level == "OE" and row.institution_sor_code:
        part_of = {"reference": f"Location/{row.institution_sor_code}"}
    resource: Resource = compact({
        "resourceType": "Location",
        "id": row.sor_code,
        "meta": _meta(row, profiles),
        "identifier": [sor_identifier(row.sor_code)],
        "status": "active" if is_active(row, day) else "inactive",
        "name": row.name,
        "mode": "instance",
        "type": types,
        "telecom": telecom(effective),
        "address": address(visiting, "physical"),
        "physicalType": {"coding": [{"system": systems.LOCATION_PHYSICAL_TYPE, "code": code,
                                     "display": display}]},
        "position": wgs84_position(visiting),
        "managingOrganization": {"reference": f"Organization/{row.sor_code}"},
        "partOf": part_of,
    })
    return resource

"""What an organisation's state is made of, shared by imports and by the services.

An entity has *own* values (what its source says about it) and *derived*
values (what follows from its place in the tree: owner, institution,
ownership, path, and the address, contact data and GLN it inherits from its
ancestors). A new version is recorded only when the own values change; a
change that only reaches an entity through inheritance updates its derived
columns and leaves its history alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from hierarchy.codes import OWNERSHIP_BY_TYPE
from hierarchy.text import fold

OWN_FIELDS: tuple[str, ...] = (
    "level",
    "parent_sor_code",
    "name",
    "entity_type",
    "cvr",
    "shak",
    "ydernummer",
    "gln",
    "gln_inherited",
    "p_number",
    "postal_address",
    "visiting_address",
    "activity_address",
    "phone",
    "fax",
    "email",
    "website",
    "clinical_specialities",
    "replaces",
    "replaced_by",
    "attributes",
    "first_valid_from",
    "valid_from",
    "valid_to",
    "source_updated_at",
)
DATE_FIELDS = frozenset({"first_valid_from", "valid_from", "valid_to", "source_updated_at"})
# The one key of a row the import reads (hierarchy.import_writer.Row) that is not a
# column: its effective values as the dict their JSON text was made from, so the feed's
# created entry is rendered without parsing the text again (hierarchy.sor_import takes
# it off the row and hands it to hierarchy.feed.items.Created).
EFFECTIVE_VALUES = "effective_values"

DERIVED_FIELDS: tuple[str, ...] = (
    "path",
    "depth",
    "owner_sor_code",
    "institution_sor_code",
    "ownership",
    "owner_cvr",
    "name_search",
    "effective",
    "inherited",
    "eff_postal_code",
    "eff_municipality_code",
    "eff_region_code",
)
# Values a unit takes from its parent when it has none of its own.
INHERITED_FIELDS: tuple[str, ...] = ("postal_address", "phone", "fax", "email", "website", "gln")


def snapshot_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready own state of an entity (dates as ISO strings)."""
    snapshot: dict[str, Any] = {}
    for name in OWN_FIELDS:
        value = values.get(name)
        if isinstance(value, date):
            value = value.isoformat()
        snapshot[name] = value
    snapshot["gln_inherited"] = bool(snapshot["gln_inherited"])
    return snapshot


def own_values_from_snapshot(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`snapshot_of`: column values, dates parsed."""
    values = {}
    for name in OWN_FIELDS:
        value = snapshot.get(name)
        if name in DATE_FIELDS and value is not None:
            value = date.fromisoformat(value)
        values[name] = value
    return values


def snapshot_json(own: Mapping[str, Any]) -> bytes:
    """The canonical JSON of an entity's own values: what versions store and hashes cover.

    orjson writes dates as ISO strings, so this equals the JSON of :func:`snapshot_of`.
    """
    return orjson.dumps(
        {name: own.get(name) for name in OWN_FIELDS}, option=orjson.OPT_SORT_KEYS
    )


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def content_fingerprint(own: Mapping[str, Any]) -> str:
    return digest(snapshot_json(own))


@dataclass(slots=True, frozen=True)
class Placement:
    """What an entity's place in the tree gives it and passes on to its children."""

    sor_code: str
    level: str
    path: str
    depth: int
    owner_sor_code: str
    owner_cvr: str | None
    ownership: str | None
    institution_sor_code: str | None
    effective: Mapping[str, Any]


def derive(own: Mapping[str, Any], sor_code: str, parent: Placement | None) -> dict[str, Any]:
    """Compute the derived values of an entity from its own values and its parent's placement."""
    level = own["level"]
    effective: dict[str, Any] = {}
    inherited: list[str] = []
    for name in INHERITED_FIELDS:
        value = own.get(name)
        if name == "gln" and value is None and not own.get("gln_inherited"):
            # An explicit "not inherited" without a code of its own: no GLN.
            effective[name] = None
            continue
        if value is None and parent is not None:
            value = parent.effective.get(name)
            if value is not None:
                inherited.append(name)
        effective[name] = value
    # A missing visiting address is the unit's own (effective) postal address.
    effective["visiting_address"] = own.get("visiting_address") or effective["postal_address"]
    effective["activity_address"] = own.get("activity_address")

    if parent is None:
        path = f"/{sor_code}/"
        depth = 0
        owner_sor_code = sor_code
        owner_cvr = own.get("cvr")
        ownership = OWNERSHIP_BY_TYPE.get(own.get("entity_type") or "")
        institution = None
    else:
        path = f"{parent.path}{sor_code}/"
        depth = parent.depth + 1
        owner_sor_code = parent.owner_sor_code
        owner_cvr = parent.owner_cvr
        ownership = parent.ownership
        institution = sor_code if level == "SI" else parent.institution_sor_code
    postal = effective["postal_address"] or {}
    return {
        "path": path,
        "depth": depth,
        "owner_sor_code": owner_sor_code,
        "institution_sor_code": institution,
        "ownership": ownership,
        "owner_cvr": owner_cvr,
        "name_search": fold(own.get("name")),
        "effective": effective,
        "inherited": inherited,
        "eff_postal_code": postal.get("postal_code"),
        "eff_municipality_code": postal.get("municipality_code"),
        "eff_region_code": postal.get("region_code"),
    }


def placement_of(sor_code: str, level: str, derived: Mapping[str, Any]) -> Placement:
    return Placement(
        sor_code=sor_code,
        level=level,
        path=derived["path"],
        depth=derived["depth"],
        owner_sor_code=derived["owner_sor_code"],
        owner_cvr=derived["owner_cvr"],
        ownership=derived["ownership"],
        institution_sor_code=derived["institution_sor_code"],
        effective=derived["effective"],
    )


def derived_fingerprint(derived: Mapping[str, Any]) -> str:
    return digest(
        orjson.dumps([derived[name] for name in DERIVED_FIELDS], option=orjson.OPT_SORT_KEYS)
    )


def placement_from_row(row: Any) -> Placement:
    """The placement an organisation row gives its children."""
    return Placement(
        sor_code=row.sor_code,
        level=row.level,
        path=row.path,
        depth=row.depth,
        owner_sor_code=row.owner_sor_code,
        owner_cvr=row.owner_cvr,
        ownership=row.ownership,
        institution_sor_code=row.institution_sor_code,
        effective=row.effective,
    )

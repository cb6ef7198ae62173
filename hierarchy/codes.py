"""Code lists shipped with the project: entity types, ownership, municipalities, regions.

The lists are small and fixed between releases, so they are read once from the
CSV files in ``hierarchy/data`` rather than kept in the database.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

OWNERSHIP_BY_TYPE = {
    "550881000005103": "regional",
    "547211000005108": "kommunal",
    "398070004": "statslig",
    "550891000005100": "privat",
}


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("hierarchy").joinpath("data", name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@cache
def entity_type_names() -> dict[str, str]:
    """SNOMED CT code -> Danish name, current MedCom names winning over older lists."""
    names: dict[str, str] = {}
    for older in ("sor_institution_types_sdm2013.csv", "sor_unit_types_sdm2013.csv"):
        for row in _rows(older):
            names[row["snomed_code"]] = row["danish_name"]
    for row in _rows("sor_entity_types_da_medcom.csv"):
        names[row["snomed_code"]] = row["danish_name"]
    for row in _rows("sor_owner_types.csv"):
        names.setdefault(row["snomed_code"], row["danish_term"])
    return names


@cache
def entity_type_english_names() -> dict[str, str]:
    names = {row["snomed_code"]: row["english_display"] for row in _rows("sor_owner_types.csv")}
    for row in _rows("sor_organization_types_en_dkcore.csv"):
        names[row["snomed_code"]] = row["english_display"]
    return names


def entity_type_name(code: str | None, language: str = "da") -> str | None:
    if code is None:
        return None
    if language == "en":
        return entity_type_english_names().get(code) or entity_type_names().get(code)
    return entity_type_names().get(code)


@cache
def entity_type_choices(language: str = "da") -> tuple[tuple[str, str], ...]:
    """(code, name) of the institution and unit types, by name, for a form's choice list.

    The owner (IE) types are left out: nobody picks them for an institution or a unit.
    """
    return tuple(sorted(
        ((code, entity_type_name(code, language) or code) for code in entity_type_names()
         if code not in OWNERSHIP_BY_TYPE),
        key=lambda choice: choice[1].lower(),
    ))


@cache
def municipalities() -> dict[str, str]:
    """Kommunekode -> municipality name."""
    return {row["kommunekode"]: row["name"] for row in _rows("dk_municipality_codes_dkcore.csv")}

"""A small register and API clients for the application tests."""

from __future__ import annotations

from datetime import date
from typing import Any

from hierarchy import identifiers as ids
from hierarchy import service as register
from sorregistry.accounts.clients import create_client

AARHUS = "0751"
AARHUS_CVR = "55133018"
ODENSE = "0461"
ODENSE_CVR = "29189919"
PRIVATE_CVR = "25313763"  # a private company already in the register
NEW_PRIVATE_CVR = "10403782"  # a private company not yet in the register
AARHUS_IE = ids.make_sor_code(111)
PRIVATE_IE = ids.make_sor_code(112)
EXISTING_SI = ids.make_sor_code(113)
PRIVATE_SI = ids.make_sor_code(114)
PLEJEHJEM = "42665001"
FYSIOTERAPI = "547011000005103"


def build_register(session) -> None:
    """Aarhus Kommune with a nursing home, and a private physiotherapy owner."""
    start = date(2010, 1, 1)
    register.create_organisation(session, AARHUS_IE, {
        "level": "IE", "name": "Aarhus Kommune", "entity_type": "547211000005108",
        "cvr": AARHUS_CVR, "first_valid_from": start, "valid_from": start,
        "postal_address": {"street": "Rådhuspladsen 2", "postal_code": "8000",
                           "city": "Aarhus C", "municipality_code": AARHUS},
        "phone": "89402000",
    }, source="staff", actor="test")
    register.create_organisation(session, EXISTING_SI, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Søndergården",
        "entity_type": PLEJEHJEM, "first_valid_from": start, "valid_from": start,
        "postal_address": {"street": "Søndergade 12", "postal_code": "8000",
                           "city": "Aarhus C", "municipality_code": AARHUS},
    }, source="staff", actor="test")
    register.create_organisation(session, PRIVATE_IE, {
        "level": "IE", "name": "Fysio Østjylland ApS", "entity_type": "550891000005100",
        "cvr": PRIVATE_CVR, "first_valid_from": start, "valid_from": start,
    }, source="staff", actor="test")
    register.create_organisation(session, PRIVATE_SI, {
        "level": "SI", "parent_sor_code": PRIVATE_IE, "name": "Fysioterapi Åbyhøj",
        "entity_type": FYSIOTERAPI, "ydernummer": "012345", "first_valid_from": start,
        "valid_from": start,
        "postal_address": {"street": "Silkeborgvej 300", "postal_code": "8230",
                           "city": "Åbyhøj", "municipality_code": AARHUS},
    }, source="staff", actor="test")
    session.flush()


def bearer(session, role: str, *, cvr: str = AARHUS_CVR, municipality: str | None = None,
           name: str = "client") -> dict[str, str]:
    extra: dict[str, Any] = {}
    roles = [role] if isinstance(role, str) else list(role)
    if "municipality" in roles:
        extra["municipality_code"] = municipality or AARHUS
    _, token = create_client(session, name, cvr=cvr, roles=roles, **extra)
    return {"Authorization": f"Bearer {token}"}


def new_nursing_home(**overrides: Any) -> dict[str, Any]:
    """A complete application for a new municipal nursing home."""
    body: dict[str, Any] = {
        "kind": "new",
        "contact_email": "sor@aarhus.dk",
        "institution_name": "Plejecenter Åbo",
        "address": {"street": "Åboulevarden 7", "postal_code": "8000", "city": "Aarhus C"},
        "phone": "87 13 00 00",
        "email": "aabo@aarhus.dk",
        "website": "https://aarhus.dk/aabo",
        "institution_type": PLEJEHJEM,
        "ownership": "kommunal",
    }
    body.update(overrides)
    return body

"""``GET /fhir/metadata``: the CapabilityStatement of this instance, made from what it serves.

The resources, their interactions, includes and search parameters are read from the
tables the routes and the parameter handlers use (``hierarchy.fhir.parameters``), so the
statement lists exactly what works, no more (tests/fhir/test_capability.py exercises
every parameter it names). It claims IHE mCSD's Directory (ITI-90 search and read, ITI-91
history) and the profiles the resources carry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from hierarchy.fhir import systems
from hierarchy.fhir.parameters import INCLUDES, PARAMETERS, REVINCLUDES, ResourceType

INTERACTIONS = ("read", "vread", "history-instance", "history-type", "search-type")
PROFILES: dict[ResourceType, tuple[str, list[str]]] = {
    "Organization": (systems.DK_CORE_ORGANIZATION, [
        systems.DK_CORE_ORGANIZATION, systems.MCSD_ORGANIZATION,
        systems.MCSD_FACILITY_ORGANIZATION, systems.MCSD_JURISDICTION_ORGANIZATION]),
    "Location": (systems.DK_CORE_LOCATION, [
        systems.DK_CORE_LOCATION, systems.MCSD_LOCATION, systems.MCSD_FACILITY_LOCATION]),
}


def _software_version() -> str:
    try:
        return package_version("sorregistry")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that was not installed
        return "unknown"


def _resource(kind: ResourceType) -> dict[str, Any]:
    profile, supported = PROFILES[kind]
    found: dict[str, Any] = {
        "type": kind,
        "profile": profile,
        "supportedProfile": supported,
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": list(INCLUDES[kind]),
        "searchParam": [
            {"name": p.name, "definition": p.definition, "type": p.type,
             "documentation": p.documentation}
            for p in PARAMETERS[kind].values()
        ],
    }
    if REVINCLUDES[kind]:
        found["searchRevInclude"] = list(REVINCLUDES[kind])
    return found


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "publisher": "SOR registry",
        "name": "SorRegistryFhirDirectory",
        "title": "SOR - Sundhedsvæsenets Organisationsregister: FHIR directory (IHE mCSD)",
        "description": "The register of Danish health-care organisations as FHIR R4 "
                       "Organizations and Locations, with HL7 DK Core's identifiers.",
        "kind": "instance",
        "instantiates": [systems.MCSD_DIRECTORY],
        "software": {"name": "sorregistry", "version": _software_version()},
        "implementation": {"description": "SOR registry FHIR directory", "url": base},
        "fhirVersion": systems.FHIR_VERSION,
        "format": [systems.JSON, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search by GET or by POST to [type]/_search (a form); pages "
                             "follow the Bundle's next link; unknown parameters are "
                             "ignored unless Prefer: handling=strict. _count at most 500; "
                             "_sort name, _lastUpdated or _id; _total none or accurate; "
                             "_summary=count; _format=ndjson streams every match.",
            "security": {
                "cors": False,
                "description": "Authorization: Bearer <token> of an API client "
                               "(sorregistry create-client) with the role reporter or "
                               "sds; this statement needs none.",
            },
            "resource": [_resource(kind) for kind in PARAMETERS],
        }],
    }

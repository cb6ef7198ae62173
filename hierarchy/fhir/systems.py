"""The URIs the directory speaks: identifier systems, code systems, profiles, extensions.

Each is written once, here, with where it comes from. The identifier systems and the
SOR identifier's ``use`` and ``type`` are those of the FHIR resources MedCom builds from
SOR for its endpoint register (EHMI EER, ``shared/data/sor/medcom-eer/``), which are
HL7 DK Core's (``hl7dk/dk-core``, ``input/fsh/*Identifier.fsh``, ``DkCoreOrganization.fsh``).

Two choices of this service's own, documented in the README:

* **GLN**: DK Core 3.5.0 (December 2025) fixed its GLN identifier's system to
  ``http://www.gs1.org/gln``; earlier releases, its own examples, the issue and the
  contract say ``https://www.gs1.org/gln``. Resources carry the latter; a search accepts
  both.
* **P-number** (produktionsenhedsnummer): no national FHIR system exists;
  :data:`P_NUMBER` names it, beside the CVR register's ``http://cvr.dk``.

The extensions this service defines live under :data:`CANONICAL` (a placeholder domain,
RFC 2606, changed here when the definitions are published).
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

FHIR_VERSION = "4.0.1"
JSON = "application/fhir+json"

# --- identifier systems (DK Core's slices; MedCom's EER uses the first and the CVR) --------
SOR = "urn:oid:1.2.208.176.1.1"
YDERNUMMER = "urn:oid:1.2.208.176.1.4"
SKS = "urn:oid:1.2.208.176.2.4"  # SHAK codes are codes of the SKS classification
CVR = "http://cvr.dk"
GLN = "https://www.gs1.org/gln"
GLN_DK_CORE_3_5 = "http://www.gs1.org/gln"
P_NUMBER = "http://cvr.dk/p-nummer"
KOMMUNEKODE = "http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes"
REGIONSKODE = "urn:iso:std:iso:3166:-2"

# MedCom's type of the SOR identifier, exactly as in the EER bundle (the "identier" is theirs).
EER_IDENTIFIER_TYPE = (
    "http://medcomehmi.dk/ig/terminology/CodeSystem/eer-sor-organization-identier-type")
SOR_IDENTIFIER_TYPE = {"system": EER_IDENTIFIER_TYPE, "code": "SORID",
                       "display": "SOR Identifier"}

# --- code systems ---------------------------------------------------------------------------
SNOMED = "http://snomed.info/sct"
# The SOR level (IE, SI, OE) as MedCom's EER types an Organization.
EER_ORGANIZATION_TYPE = (
    "http://medcomehmi.dk/ig/terminology/CodeSystem/eer-sor-organization-type")
# IHE mCSD's facility and jurisdiction types (IHE/ITI.mCSD, input/fsh/codes.fsh).
MCSD_TYPES = "https://profiles.ihe.net/ITI/mCSD/CodeSystem/IHE.mCSD.Organization.Location.Types"
LOCATION_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
OPERATION_OUTCOME_TYPE = "http://terminology.hl7.org/CodeSystem/operation-outcome"

# --- profiles the resources claim -----------------------------------------------------------
DK_CORE_ORGANIZATION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-organization"
DK_CORE_LOCATION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-location"
_MCSD = "https://profiles.ihe.net/ITI/mCSD/StructureDefinition/"
MCSD_ORGANIZATION = _MCSD + "IHE.mCSD.Organization"
MCSD_FACILITY_ORGANIZATION = _MCSD + "IHE.mCSD.FacilityOrganization"
MCSD_JURISDICTION_ORGANIZATION = _MCSD + "IHE.mCSD.JurisdictionOrganization"
MCSD_LOCATION = _MCSD + "IHE.mCSD.Location"
MCSD_FACILITY_LOCATION = _MCSD + "IHE.mCSD.FacilityLocation"
MCSD_DIRECTORY = "https://profiles.ihe.net/ITI/mCSD/CapabilityStatement/IHE.mCSD.Directory"

# --- extensions -----------------------------------------------------------------------------
# DK Core's on an Address (hl7dk/dk-core, input/fsh/extensions.fsh).
MUNICIPALITY_EXTENSION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-municipalityCodes"
REGION_EXTENSION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-RegionalSubDivisionCodes"
# This service's own.
CANONICAL = "https://sor-registry.example/fhir"
# valuePeriod: start = SOR's FromDate, end = the last day valid (the day before ToDate).
VALIDITY_EXTENSION = CANONICAL + "/StructureDefinition/sor-validity"
# valueDate: SOR's FirstFromDate, the first day the unit was ever valid.
FIRST_VALID_EXTENSION = CANONICAL + "/StructureDefinition/sor-first-valid-from"


@cache
def region_iso_codes() -> dict[str, str]:
    """DAGI regionskode (1081-1085) -> ISO 3166-2 (DK-81 ... DK-85), from the code list."""
    path = resources.files("hierarchy").joinpath("data", "dk_region_codes.csv")
    with path.open(encoding="utf-8") as handle:
        return {row["dagi_regionskode"]: row["iso_3166_2"] for row in csv.DictReader(handle)}

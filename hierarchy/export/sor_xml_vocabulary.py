"""The words of SOR XML v2.0.0 and v1.0.0: namespaces, element names, their order.

Names are ``(namespace, local name)``. Where the two versions differ (the root's
namespace, the entity type's element, the GLN entity's details, which fields a level
has) :func:`vocabulary` gives each version's own. The importer (``hierarchy.sor_xml``)
matches elements by local name, so every element written here reads back into the
field it came from; ``tests/hierarchy/test_export_sor_xml.py`` checks that every value
the importer keeps has its place here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from hierarchy.sor_xml import NAMESPACE_V1, NAMESPACE_V2

Name = tuple[str, str]

S1 = NAMESPACE_V1
N2 = NAMESPACE_V2
XKOM_2006 = "http://rep.oio.dk/xkom.dk/xml/schemas/2006/01/06/"  # AddressPostal
XKOM_2005 = "http://rep.oio.dk/xkom.dk/xml/schemas/2005/03/15/"  # EmailAddressIdentifier
DKCC = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2003/02/13/"
DKCC_2005 = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/03/15/"
DKCC_2005_2 = "http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/05/13/"
CPR = "http://rep.oio.dk/cpr.dk/xml/schemas/core/2005/03/18/"
CVR = "http://rep.oio.dk/cvr.dk/xml/schemas/2005/03/22/"
KMS = "http://rep.oio.dk/kms.dk/xml/schemas/2007/05/23/"
OSAK = "http://rep.oio.dk/osak.dk/xml/schemas/2006/04/25/"

# The root's declarations, prefixes as the real files have them.
NSMAP_V2: dict[str | None, str] = {
    "osak": OSAK, "cpr": CPR, "cvr": CVR, "xkom": XKOM_2006, "sor1": S1, "dkcc": DKCC,
    "dkcc2005": DKCC_2005, "kms": KMS, "xkom1": XKOM_2005, "dkcc2005-2": DKCC_2005_2,
    None: N2,
}
NSMAP_V1: dict[str | None, str] = {
    "xkom-1": XKOM_2006, "dkcc": DKCC, "dkcc2005": DKCC_2005, "xkom": XKOM_2005,
    "dkcc2005-2": DKCC_2005_2, "cpr": CPR, None: S1,
}

# The parts of xkom:AddressPostal in the OIO schema's order: (key in the register's
# address document, element). "street" is derived from the first parts on import.
ADDRESS_POSTAL: tuple[tuple[str, Name], ...] = (
    ("sublocation", (DKCC, "MailDeliverySublocationIdentifier")),
    ("street_name", (DKCC_2005, "StreetName")),
    ("street_addressing_name", (CPR, "StreetNameForAddressingName")),
    ("building", (DKCC, "StreetBuildingIdentifier")),
    ("floor", (DKCC, "FloorIdentifier")),
    ("suite", (DKCC, "SuiteIdentifier")),
    ("district", (DKCC_2005, "DistrictSubdivisionIdentifier")),
    ("post_office_box", (DKCC_2005_2, "PostOfficeBoxIdentifier")),
    ("postal_code", (DKCC_2005, "PostCodeIdentifier")),
    ("city", (DKCC_2005, "DistrictName")),
    ("country", (DKCC, "CountryIdentificationCode")),
)
# The parts a one-line street replaces (see the writer's _address).
STREET_PARTS = ("street_name", "building", "floor", "suite")
# After the postal part (and the v1 Stairway), v2 only.
ADDRESS_CODES: tuple[tuple[str, Name], ...] = (
    ("municipality_code", (CPR, "MunicipalityCode")),
    ("street_code", (CPR, "StreetCode")),
    ("region_code", (KMS, "RegionCode")),
    ("etrs89_northing", (OSAK, "CoordETRS89z32NMeasure")),
    ("etrs89_easting", (OSAK, "CoordETRS89z32EMeasure")),
)
ADDRESSES = {
    "postal_address": "PostalAddressInformation",
    "visiting_address": "VisitingAddressInformation",
    "activity_address": "ActivityAddressInformation",
}
CONTACTS: tuple[tuple[str, Name], ...] = (
    ("email", (XKOM_2005, "EmailAddressIdentifier")),
    ("website", (S1, "Website")),
    ("phone", (S1, "TelephoneNumberIdentifier")),
    ("fax", (S1, "FaxNumberIdentifier")),
)
# SorStatus: element -> the register's column, in the schema's order.
STATUS = {
    "FromDate": "valid_from",
    "ToDate": "valid_to",
    "UpdatedAt": "source_updated_at",
    "FirstFromDate": "first_valid_from",
}
# OrganizationalUnitInformation: (element, key in attributes).
FLAGS = (
    ("AmbulantActivityIndicator", "ambulant_activity"),
    ("PatientsAdmittedIndicator", "patients_admitted"),
    ("ReportingLevelIndicator", "reporting_level"),
)
# The GLN entity's details that are true/false.
EAN_OPTION_DETAILS = frozenset({"onlyInternalIndicator", "nonActiveIndicator"})

_V2_FIELDS = (
    "sor_code", "name", "entity_type", "local_code", "pharmacy", "shak", "ydernummer", "ean",
    "geography", "postal", "visiting", "activity", "virtual", "specialities", "status",
    "replaces", "replaced_by", "cvr", "p_number", "unit_information", "local_attributes",
)
# v1: each level's sequence in the v1 schema (InstitutionOwner.xsd, HealthInstitution.xsd,
# OrganizationalUnit.xsd).
_V1_FIELDS = {
    "IE": ("sor_code", "name", "entity_type", "ean", "postal", "virtual", "status"),
    "SI": ("sor_code", "name", "entity_type", "pharmacy", "shak", "ean", "geography",
           "postal", "visiting", "virtual", "status", "replaces", "replaced_by"),
    "OE": ("sor_code", "name", "entity_type", "local_code", "pharmacy", "shak", "ydernummer",
           "ean", "geography", "postal", "visiting", "activity", "virtual", "specialities",
           "status", "replaces", "replaced_by", "unit_information", "local_attributes"),
}


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """One version's names: what differs between v2.0.0 and v1.0.0."""

    version: str
    own: str  # the version's namespace: root, entities, collections, address elements
    nsmap: dict[str | None, str]
    types: dict[str, Name]  # the entity type's element, per level
    ean_entity: Name
    ean_option: Name
    inherited_indicator: Name
    ean_details: tuple[tuple[str, Name], ...]  # key in attributes["ean"], element
    address_codes: bool
    fields: dict[str, tuple[str, ...]]  # the writer's field methods, per level, in order
    containers: dict[str, Name] = field(default_factory=dict)  # level -> the ...Entity
    entities: dict[str, Name] = field(default_factory=dict)  # level -> the entity element
    specialities: tuple[Name, Name] = (("", ""), ("", ""))

    def __post_init__(self) -> None:
        own = self.own
        object.__setattr__(self, "containers", {
            "IE": (own, "InstitutionOwnerEntity"), "SI": (own, "HealthInstitutionEntity"),
            "OE": (own, "OrganizationalUnitEntity")})
        object.__setattr__(self, "entities", {
            "IE": (own, "InstitutionOwner"), "SI": (own, "HealthInstitution"),
            "OE": (own, "OrganizationalUnit")})
        object.__setattr__(self, "specialities", (
            (own, "ClinicalSpecialityCollection"), (own, "ClinicalSpeciality")))


def _ean_details(v2: bool) -> tuple[tuple[str, Name], ...]:
    def named(key: str) -> Name:
        return (N2, f"{key}Identifier") if v2 else (S1, key)

    return (
        ("onlyInternalIndicator", (S1, "OnlyInternalIndicator")),
        ("nonActiveIndicator", (S1, "NonActiveIndicator")),
        ("SystemSupplier", named("SystemSupplier")),
        ("SystemType", named("SystemType")),
        ("CommunicationSupplier", named("CommunicationSupplier")),
        ("RegionCode", (KMS, "RegionCode") if v2 else (S1, "RegionCode")),
        ("EdiAdministrator", named("EdiAdministrator")),
        ("SorNote", (S1, "SorNote")),
    )


@cache
def vocabulary(version: str) -> Vocabulary:
    """The names of SOR XML *version* ("2.0.0" or "1.0.0")."""
    if version == "2.0.0":
        return Vocabulary(
            version=version, own=N2, nsmap=NSMAP_V2,
            types={level: (N2, "EntityTypeIdentifier") for level in ("IE", "SI", "OE")},
            ean_entity=(N2, "EanLocationCodeEntity"), ean_option=(N2, "EanLocationCodeOption"),
            inherited_indicator=(N2, "EntityInheritanceIndicator"),
            ean_details=_ean_details(True), address_codes=True,
            fields={level: _V2_FIELDS for level in ("IE", "SI", "OE")},
        )
    if version == "1.0.0":
        return Vocabulary(
            version=version, own=S1, nsmap=NSMAP_V1,
            types={"IE": (S1, "OwnerType"), "SI": (S1, "InstitutionType"),
                   "OE": (S1, "UnitType")},
            ean_entity=(S1, "EanLocationCodeEntity"),
            ean_option=(S1, "OptionalEanLocationCode"),
            inherited_indicator=(S1, "EntityInheritedIndicator"),
            ean_details=_ean_details(False), address_codes=False, fields=_V1_FIELDS,
        )
    raise ValueError(f"unknown SOR XML version {version!r}")

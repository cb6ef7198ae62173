"""Streaming reader of the national SOR XML export, v1.0.0 and v2.0.0.

The two versions share their element names but not their namespaces (v2 mixes
``urn:oio:nsi:2.0.0`` with the v1 namespace), so elements are matched by local
name. The reader walks the file with ``lxml.etree.iterparse`` and frees every
entity once read, so memory stays flat whatever the file's size. It yields
:class:`SorEntity` records in document order: a parent always before its
children.

Problems that make the *file* unreadable (not XML, truncated, a DOCTYPE, not a SOR
export) raise :class:`SorFileError` naming the line. Problems with one
*entity* (a malformed SOR code, an invalid CVR) are reported on the record
(``problems``) so that the importer can decide what to do with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lxml import etree

from hierarchy import identifiers as ids

if TYPE_CHECKING:
    from _typeshed import SupportsRead  # a binary file, or anything with its read()

NAMESPACE_V1 = "urn:oio:sundhedsstyrelsen:organisation:1.0.0"
NAMESPACE_V2 = "urn:oio:nsi:2.0.0"
FORMATS = {NAMESPACE_V1: "sor-xml-1.0.0", NAMESPACE_V2: "sor-xml-2.0.0"}

ENTITY_CONTAINERS = {"InstitutionOwnerEntity": "IE", "HealthInstitutionEntity": "SI",
                     "OrganizationalUnitEntity": "OE"}
ENTITY_ELEMENTS = {"InstitutionOwner": "IE", "HealthInstitution": "SI", "OrganizationalUnit": "OE"}
TYPE_ELEMENTS = {"OwnerType", "InstitutionType", "UnitType", "EntityTypeIdentifier"}
ADDRESS_ELEMENTS = {
    "PostalAddressInformation": "postal_address",
    "VisitingAddressInformation": "visiting_address",
    "ActivityAddressInformation": "activity_address",
}
ADDRESS_PARTS = {"StreetName": "street_name", "StreetBuildingIdentifier": "building",
                 "FloorIdentifier": "floor", "SuiteIdentifier": "suite",
                 "MailDeliverySublocationIdentifier": "sublocation",
                 "PostCodeIdentifier": "postal_code", "DistrictName": "city",
                 "DistrictSubdivisionIdentifier": "district",
                 "CountryIdentificationCode": "country", "MunicipalityCode": "municipality_code",
                 "StreetCode": "street_code", "RegionCode": "region_code",
                 "CoordETRS89z32NMeasure": "etrs89_northing",
                 "CoordETRS89z32EMeasure": "etrs89_easting", "Stairway": "stairway",
                 "StreetNameForAddressingName": "street_addressing_name",
                 "PostOfficeBoxIdentifier": "post_office_box"}
CONTACT_PARTS = {"EmailAddressIdentifier": "email", "Website": "website",
                 "TelephoneNumberIdentifier": "phone", "FaxNumberIdentifier": "fax"}
STATUS_PARTS = {"FirstFromDate": "first_valid_from", "FromDate": "valid_from",
                "ToDate": "valid_to", "UpdatedAt": "source_updated_at"}
P_NUMBER_ELEMENTS = {"PNumberIdentifier", "ProductionUnitIdentifier", "PNumber"}
# The EAN (GLN) entity's details, kept in ``attributes["ean"]`` under these keys (v1 and
# v2 names alike), and its own status dates under "SorStatus", as the file writes them.
EAN_DETAILS = {
    "OnlyInternalIndicator": "onlyInternalIndicator",
    "NonActiveIndicator": "nonActiveIndicator",
    **{f"{name}{suffix}": name for name in ("SystemSupplier", "SystemType",
                                            "CommunicationSupplier", "EdiAdministrator")
       for suffix in ("", "Identifier")},
    "RegionCode": "RegionCode",
    "SorNote": "SorNote",
}
FLAG_ELEMENTS = {"AmbulantActivityIndicator": "ambulant_activity",
                 "PatientsAdmittedIndicator": "patients_admitted",
                 "ReportingLevelIndicator": "reporting_level"}
_ENTITY_TYPE_RE = re.compile(r"^\d{6,18}$")


class SorFileError(ValueError):
    """The file cannot be imported at all; ``line`` says where reading stopped."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass(slots=True)
class SorEntity:
    """One entity of the export with its own values, as the export states them."""

    level: str
    line: int
    parent_sor_code: str | None
    sor_code: str | None = None
    name: str | None = None
    entity_type: str | None = None
    cvr: str | None = None
    shak: str | None = None
    ydernummer: str | None = None
    gln: str | None = None
    gln_inherited: bool = False
    p_number: str | None = None
    postal_address: dict[str, str] | None = None
    visiting_address: dict[str, str] | None = None
    activity_address: dict[str, str] | None = None
    phone: str | None = None
    fax: str | None = None
    email: str | None = None
    website: str | None = None
    clinical_specialities: list[dict[str, str]] | None = None
    replaces: list[str] | None = None
    replaced_by: list[str] | None = None
    attributes: dict[str, Any] | None = None
    first_valid_from: date | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    source_updated_at: date | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SorHeader:
    format: str
    created_at: str | None = None
    snapshot_date: date | None = None


_LOCAL_NAMES: dict[object, str] = {}


def _local(tag: object) -> str:
    """The local name of *tag* ('{namespace}name' -> 'name'), cached: tags repeat."""
    try:
        return _LOCAL_NAMES[tag]
    except KeyError:
        # Comments, processing instructions and entities have non-string tags.
        name = tag.rpartition("}")[2] if isinstance(tag, str) else ""
        _LOCAL_NAMES[tag] = name
        return name


def _text(element: etree._Element) -> str | None:
    value = (element.text or "").strip()
    return value or None


def _parse_date(value: str | None, what: str, problems: list[str]) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        problems.append(f"{what} {value!r} is not a date (YYYY-MM-DD)")
        return None


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() in ("true", "1")


def _address(element: etree._Element) -> dict[str, str] | None:
    parts: dict[str, str] = {}
    for child in element.iter():
        key = ADDRESS_PARTS.get(_local(child.tag))
        if key is None:
            continue
        value = _text(child)
        if value is not None:
            parts[key] = value
    if not parts:
        return None
    if street := street_line(parts):
        parts["street"] = street
    return parts


def street_line(parts: dict[str, str]) -> str:
    """The one-line street of an address's parts: "Vej 12, 2. tv" (the address's ``street``)."""
    street = " ".join(part for part in (parts.get("street_name"), parts.get("building")) if part)
    extra = ", ".join(part for part in (parts.get("floor"), parts.get("suite")) if part)
    return f"{street}, {extra}" if street and extra else street


def _sor_codes(element: etree._Element) -> list[str]:
    return [
        value
        for child in element.iter()
        if _local(child.tag) == "SorIdentifier" and (value := _text(child)) is not None
    ]


def _set_text(attribute: str) -> Callable[[etree._Element, SorEntity, dict[str, Any]], None]:
    def handle(element: etree._Element, entity: SorEntity, _: dict[str, Any]) -> None:
        setattr(entity, attribute, _text(element))

    return handle


def _set_attribute(key: str) -> Callable[[etree._Element, SorEntity, dict[str, Any]], None]:
    def handle(element: etree._Element, _: SorEntity, attributes: dict[str, Any]) -> None:
        attributes[key] = _text(element)

    return handle


def _set_address(attribute: str) -> Callable[[etree._Element, SorEntity, dict[str, Any]], None]:
    def handle(element: etree._Element, entity: SorEntity, _: dict[str, Any]) -> None:
        setattr(entity, attribute, _address(element))

    return handle


def _read_ean_option(element: etree._Element, entity: SorEntity, attrs: dict[str, Any]) -> None:
    for sub in element:
        sub_name = _local(sub.tag)
        if sub_name in ("EntityInheritedIndicator", "EntityInheritanceIndicator"):
            entity.gln_inherited = bool(_flag(_text(sub)))
        elif sub_name == "EanLocationCodeEntity":
            _read_ean(sub, entity, attrs)


def _read_contacts(element: etree._Element, entity: SorEntity, _: dict[str, Any]) -> None:
    for sub in element:
        key = CONTACT_PARTS.get(_local(sub.tag))
        if key is not None:
            setattr(entity, key, _text(sub))


def _read_status(element: etree._Element, entity: SorEntity, _: dict[str, Any]) -> None:
    for sub in element:
        key = STATUS_PARTS.get(_local(sub.tag))
        if key is not None:
            setattr(entity, key, _parse_date(_text(sub), key, entity.problems))


def _read_specialities(element: etree._Element, entity: SorEntity, _: dict[str, Any]) -> None:
    specialities = []
    for speciality in element:
        item = {}
        for sub in speciality:
            sub_name = _local(sub.tag)
            if sub_name == "SpecialityCode" and (value := _text(sub)):
                item["code"] = value
            elif sub_name == "SpecialityType" and (value := _text(sub)):
                item["type"] = value
        if "code" in item:
            specialities.append(item)
    entity.clinical_specialities = specialities or None


def _set_codes(attribute: str) -> Callable[[etree._Element, SorEntity, dict[str, Any]], None]:
    def handle(element: etree._Element, entity: SorEntity, _: dict[str, Any]) -> None:
        setattr(entity, attribute, _sor_codes(element) or None)

    return handle


def _read_geography(element: etree._Element, _: SorEntity, attributes: dict[str, Any]) -> None:
    for sub in element:
        sub_name = _local(sub.tag)
        if sub_name == "GeographicalParentRelation":
            attributes["geographical_parent_relation"] = _text(sub)
        elif sub_name == "GeographicalParentSorIdentifier":
            attributes["geographical_parent_sor_code"] = _text(sub)


def _read_unit_flags(element: etree._Element, _: SorEntity, attributes: dict[str, Any]) -> None:
    for sub in element:
        key = FLAG_ELEMENTS.get(_local(sub.tag))
        if key is not None:
            attributes[key] = _flag(_text(sub))


def _read_ean(element: etree._Element, entity: SorEntity, attributes: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    for sub in element:
        sub_name = _local(sub.tag)
        value = _text(sub)
        key = EAN_DETAILS.get(sub_name)
        if sub_name == "EanLocationCode":
            entity.gln = value
        elif key is not None and key.endswith("Indicator"):
            details[key] = _flag(value)
        elif key is not None:
            details[key] = value
        elif sub_name == "SorStatus":
            details["SorStatus"] = {_local(s.tag): _text(s) for s in sub if _local(s.tag)}
    if details:
        attributes["ean"] = details


def _read_local(element: etree._Element, _: SorEntity, attributes: dict[str, Any]) -> None:
    found = {_local(sub.tag): _text(sub) for sub in element if _local(sub.tag)}
    attributes["local_attributes"] = {k: v for k, v in found.items() if v is not None} or None


# What to do with each child element of an entity, by local name.
_HANDLERS: dict[str, Callable[[etree._Element, SorEntity, dict[str, Any]], None]] = {
    "SorIdentifier": _set_text("sor_code"),
    "EntityName": _set_text("name"),
    **{name: _set_text("entity_type") for name in TYPE_ELEMENTS},
    "ShakIdentifier": _set_text("shak"),
    "ProviderIdentifier": _set_text("ydernummer"),
    "CVRnumberIdentifier": _set_text("cvr"),
    **{name: _set_text("p_number") for name in P_NUMBER_ELEMENTS},
    "PharmacyIdentifier": _set_attribute("pharmacy_identifier"),
    "LocalCode": _set_attribute("local_code"),
    "EanLocationCodeEntity": _read_ean,
    "OptionalEanLocationCode": _read_ean_option,
    "EanLocationCodeOption": _read_ean_option,
    **{name: _set_address(attribute) for name, attribute in ADDRESS_ELEMENTS.items()},
    "VirtualAddressInformation": _read_contacts,
    "SorStatus": _read_status,
    "ClinicalSpecialityCollection": _read_specialities,
    "ReplacesEntityCollection": _set_codes("replaces"),
    "ReplacedByEntityCollection": _set_codes("replaced_by"),
    "GeographicalParent": _read_geography,
    "OrganizationalUnitInformation": _read_unit_flags,
    "LocalAttributeCollection": _read_local,
}


def _read_entity(element: etree._Element, level: str, parent: str | None) -> SorEntity:
    entity = SorEntity(level=level, line=element.sourceline or 0, parent_sor_code=parent)
    attributes: dict[str, Any] = {}
    handlers = _HANDLERS
    for child in element:
        handler = handlers.get(_local(child.tag))
        if handler is not None:
            handler(child, entity, attributes)
    entity.attributes = {k: v for k, v in attributes.items() if v is not None} or None
    _check(entity)
    return entity


def _check(entity: SorEntity) -> None:
    """Validate and normalise the identifiers; record every problem found."""
    problems = entity.problems
    if entity.sor_code is None:
        problems.append("SorIdentifier is missing")
    elif not ids.SOR_CODE_RE.fullmatch(entity.sor_code):
        # The full validator only runs to say what is wrong (or to strip spaces).
        try:
            entity.sor_code = ids.validate_sor_code(entity.sor_code)
        except ids.IdentifierError as exc:
            problems.append(f"SorIdentifier: {exc}")
    if entity.name is None:
        problems.append("EntityName is missing")
    if entity.entity_type is not None and not _ENTITY_TYPE_RE.match(entity.entity_type):
        problems.append(f"entity type {entity.entity_type!r} is not a SNOMED CT code")
    checks = (
        ("cvr", ids.validate_cvr, "CVRnumberIdentifier"),
        ("shak", ids.validate_shak, "ShakIdentifier"),
        ("ydernummer", ids.normalise_ydernummer, "ProviderIdentifier"),
        ("gln", ids.validate_gln, "EanLocationCode"),
        ("p_number", ids.validate_p_number, "P-number"),
    )
    for attribute, validate, label in checks:
        value = getattr(entity, attribute)
        if value is None:
            continue
        try:
            setattr(entity, attribute, validate(value))
        except ids.IdentifierError as exc:
            problems.append(f"{label}: {exc}")
    for attribute in ADDRESS_ELEMENTS.values():
        address = getattr(entity, attribute)
        if not address:
            continue
        for key, check, label in (
            ("municipality_code", ids.validate_municipality_code, "MunicipalityCode"),
            ("region_code", ids.validate_region_code, "RegionCode"),
        ):
            if key in address:
                valid, value = _valid_code(check, address[key])
                if valid:
                    address[key] = value
                else:
                    problems.append(f"{attribute} {label}: {value}")


# Municipality and region codes repeat on nearly every entity: validate each once.
@lru_cache(maxsize=4096)
def _valid_code(validate: Callable[[str], str], value: str) -> tuple[bool, str]:
    try:
        return True, validate(value)
    except ids.IdentifierError as exc:
        return False, str(exc)


def read_sor_export(
    handle: SupportsRead[bytes], header_out: list[SorHeader] | None = None
) -> Iterator[SorEntity]:
    """Yield every entity of the export in *handle*, parents before children.

    The header (format, snapshot date) is appended to *header_out* as soon as
    the root element has been seen.
    """
    # Only the elements that matter reach Python; lxml skips the rest in C.
    wanted = ["SorTree", "SnapshotDate", "CreatedAtTime", *ENTITY_CONTAINERS, *ENTITY_ELEMENTS]
    events = etree.iterparse(
        handle,
        events=("start", "end"),
        tag=[f"{{*}}{name}" for name in wanted],
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    stack: list[tuple[str, str | None]] = []  # (level, sor code) of the open entities
    header: SorHeader | None = None
    try:
        for event, element in events:
            name = _local(element.tag)
            if event == "start":
                if header is None:
                    header = _read_root(element, name)
                    if header_out is not None:
                        header_out.append(header)
                elif name in ENTITY_CONTAINERS:
                    level = ENTITY_CONTAINERS[name]
                    expected = _expected_level(stack)
                    if level not in expected:
                        inside = stack[-1][0] if stack else "SorTree"
                        raise SorFileError(f"{name} found inside {inside}; expected "
                                           + " or ".join(expected), element.sourceline)
                    stack.append((level, None))
                continue
            if name in ENTITY_ELEMENTS:
                if not stack or stack[-1][1] is not None:
                    continue  # not the data element of an open entity
                level = stack[-1][0]
                parent = stack[-2][1] if len(stack) > 1 else None
                entity = _read_entity(element, level, parent)
                # An entity whose own code is unusable still occupies its place
                # in the tree; its children are then orphans ("" as parent).
                stack[-1] = (level, entity.sor_code if not entity.problems else "")
                yield entity
                element.clear(keep_tail=False)
            elif name in ENTITY_CONTAINERS:
                stack.pop()
                element.clear(keep_tail=False)
                parent_element = element.getparent()
                if parent_element is not None:
                    # Drop the finished subtree so memory stays flat.
                    while element.getprevious() is not None:
                        del parent_element[0]
            elif header is not None and not stack:
                if name == "SnapshotDate":
                    problems: list[str] = []
                    header.snapshot_date = _parse_date(_text(element), "SnapshotDate", problems)
                    if problems:
                        raise SorFileError(problems[0], element.sourceline)
                elif name == "CreatedAtTime":
                    header.created_at = _text(element)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        message = str(exc.msg or exc).strip()
        raise SorFileError(f"the file is not well-formed XML: {message}", line) from None
    if header is None:
        raise SorFileError(
            "not a SOR XML export: the root element is not SorTree (SOR XML v1.0.0 or v2.0.0)"
        )


def _read_root(element: Any, name: str) -> SorHeader:
    """The header of the export whose root *element* just started; refuse a DTD.

    The export has no DTD. One in the file can only declare entities, which are not
    resolved (text after an unresolved entity would be silently cut) or could be
    expanded into a flood: refused outright, before any entity is read.
    """
    doctype = element.getroottree().docinfo.doctype
    if doctype or element.getroottree().docinfo.internalDTD is not None:
        raise SorFileError(f"a DOCTYPE ({doctype[:80]}) is not allowed in a SOR XML export; "
                           "refused without reading it", element.sourceline)
    namespace = etree.QName(element).namespace or ""
    if name != "SorTree" or namespace not in FORMATS:
        raise SorFileError(
            f"not a SOR XML export: root element {name!r} in namespace {namespace!r}; "
            f"expected SorTree in {NAMESPACE_V1} (v1.0.0) or {NAMESPACE_V2} (v2.0.0)",
            element.sourceline,
        )
    return SorHeader(format=FORMATS[namespace])


def _expected_level(stack: list[tuple[str, str | None]]) -> tuple[str, ...]:
    if not stack:
        return ("IE",)
    parent = stack[-1][0]
    return {"IE": ("SI",), "SI": ("OE",), "OE": ("OE",)}[parent]


__all__ = ["SorEntity", "SorFileError", "SorHeader", "read_sor_export", "street_line"]

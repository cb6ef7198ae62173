"""Marshmallow schemas of the register's API.

Descriptions are given in English and Danish, since the forms' developers
read either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, ValidationError, fields, post_load, pre_dump, validate

from hierarchy import identifiers as ids
from hierarchy.codes import entity_type_name
from hierarchy.models import LEVELS, OWNERSHIPS, Organisation
from hierarchy.successors import Successors, successor_entry

if TYPE_CHECKING:  # at run time hierarchy.search imports the service, which records
    # through hierarchy.changes, which renders the feed's items with organisation_item
    from hierarchy.search.statements import ItemRow

# The most codes one batch read takes (as SORES's GetSorEntity is used: a form's or a
# mirror's list of codes at a time).
BATCH_LIMIT = 500


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class EntityTypeSchema(Schema):
    code = fields.String(allow_none=True, **_d("SNOMED CT code", "SNOMED CT-kode"))
    name = fields.String(allow_none=True, **_d("Danish name", "Dansk navn"))


class AddressSchema(Schema):
    street = fields.String(allow_none=True, **_d("Street and number", "Vej og husnummer"))
    postal_code = fields.String(allow_none=True, **_d("Postal code", "Postnummer"))
    city = fields.String(allow_none=True, **_d("Postal district", "Postdistrikt"))
    municipality_code = fields.String(allow_none=True, **_d("Municipality code", "Kommunekode"))
    region_code = fields.String(allow_none=True, **_d("Region code", "Regionskode"))
    country = fields.String(allow_none=True, **_d("Country (ISO 3166 alpha-2)", "Land"))


class SuccessorSchema(Schema):
    """The organisation at the end of a chain of replacements."""

    sor_code = fields.String(**_d("SOR code", "SOR-kode"))
    name = fields.String(allow_none=True,
                         **_d("Name; null for a code the register does not hold", "Navn"))
    level = fields.String(allow_none=True, **_d("Level: IE, SI or OE", "Niveau"))
    valid_from = fields.Date(allow_none=True, **_d("Valid from", "Gyldig fra"))
    valid_to = fields.Date(allow_none=True, **_d("Closing date", "Lukkedato"))
    hops = fields.Integer(**_d("Replacements followed to reach it", "Antal erstatninger fulgt"))


class OrganisationSchema(Schema):
    """An organisation with its effective values (inherited where it has none of its own)."""

    sor_code = fields.String(required=True, **_d("SOR code", "SOR-kode"))
    name = fields.String(required=True, **_d("Name", "Navn"))
    level = fields.String(**_d("Level: IE, SI or OE", "Niveau: IE, SI eller OE"))
    entity_type = fields.Nested(EntityTypeSchema, **_d("Entity type", "Enhedstype"))
    ownership = fields.String(
        allow_none=True,
        **_d("Ownership: statslig, regional, kommunal, privat", "Ejerforhold"),
    )
    cvr = fields.String(allow_none=True, **_d("The owner's CVR number", "Ejerens CVR-nummer"))
    ydernummer = fields.String(allow_none=True, **_d("Provider number", "Ydernummer"))
    shak = fields.String(allow_none=True, **_d("SHAK code", "SHAK-kode"))
    gln = fields.String(allow_none=True, **_d("GLN location number", "EAN-lokationsnummer"))
    p_number = fields.String(allow_none=True, **_d("Production unit number", "P-nummer"))
    parent_sor_code = fields.String(allow_none=True, **_d("Parent's SOR code", "Forælder"))
    institution_sor_code = fields.String(
        allow_none=True, **_d("The health institution (SI)", "Sundhedsinstitutionen (SI)")
    )
    owner_sor_code = fields.String(**_d("The institution owner (IE)", "Institutionsejeren"))
    address = fields.Nested(AddressSchema, allow_none=True, **_d("Postal address", "Postadresse"))
    visiting_address = fields.Nested(
        AddressSchema, allow_none=True, **_d("Visiting address", "Besøgsadresse")
    )
    phone = fields.String(allow_none=True, **_d("Telephone", "Telefon"))
    fax = fields.String(allow_none=True, **_d("Fax", "Fax"))
    email = fields.String(allow_none=True, **_d("Email", "E-mail"))
    website = fields.String(allow_none=True, **_d("Website", "Hjemmeside"))
    inherited = fields.List(
        fields.String(),
        **_d("Fields whose value comes from an ancestor", "Felter arvet fra et højere niveau"),
    )
    clinical_specialities = fields.List(
        fields.Dict(), allow_none=True, **_d("Clinical specialities", "Kliniske specialer")
    )
    replaces = fields.List(fields.String(), allow_none=True, **_d("Replaces", "Erstatter"))
    replaced_by = fields.List(
        fields.String(), allow_none=True, **_d("Replaced by", "Erstattet af")
    )
    first_valid_from = fields.Date(allow_none=True, **_d("First valid", "Første gyldighed"))
    valid_from = fields.Date(allow_none=True, **_d("Valid from", "Gyldig fra"))
    valid_to = fields.Date(allow_none=True, **_d("Closing date", "Lukkedato"))
    version = fields.Integer(**_d("Version in the register", "Version i registret"))
    successors = fields.List(
        fields.Nested(SuccessorSchema),
        **_d("When replaced_by is set (one organisation, the batch): the organisations in "
             "force at the end of each chain of replacements, followed over several hops, "
             "splits and mergers", "Efterfølgerne i kraft for enden af hver kæde"),
    )
    successor_dead_ends = fields.List(
        fields.Nested(SuccessorSchema),
        **_d("With successors: chains that end in a closed organisation naming no "
             "successor, or in a code the register does not hold",
             "Kæder der ender uden efterfølger i kraft"),
    )
    recorded_at = fields.DateTime(
        **_d("Read with on or as_recorded: when the version shown was recorded",
             "Hvornår den viste version blev registreret"),
    )

    @pre_dump
    def _from_model(self, organisation: Organisation, **_: Any) -> dict[str, Any]:
        return organisation_item(organisation)


# Read once: building a schema per address cost ~100 ms on a 500-row page.
_ADDRESS_KEYS = tuple(AddressSchema._declared_fields)


def _address(address: dict[str, Any] | None) -> dict[str, Any] | None:
    if not address:
        return None
    return {key: address.get(key) for key in _ADDRESS_KEYS}


def shown_addresses(
    effective: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The item's ``address`` and ``visiting_address`` from the *effective* values."""
    postal, visiting = effective.get("postal_address"), effective.get("visiting_address")
    address = _address(postal)
    # Most units are visited where their post goes: the same address, shown once made.
    return address, address if visiting == postal else _address(visiting)


def organisation_item(organisation: ItemRow) -> dict[str, Any]:
    """An organisation as the API shows it, from a model or a row with ITEM_COLUMNS
    (``hierarchy.feed.items.Created.item`` makes the same from an imported row)."""
    effective = organisation.effective or {}
    address, visiting_address = shown_addresses(effective)
    return {
        "sor_code": organisation.sor_code,
        "name": organisation.name,
        "level": organisation.level,
        "entity_type": {
            "code": organisation.entity_type,
            "name": entity_type_name(organisation.entity_type),
        },
        "ownership": organisation.ownership,
        "cvr": organisation.owner_cvr,
        "ydernummer": organisation.ydernummer,
        "shak": organisation.shak,
        "gln": effective.get("gln"),
        "p_number": organisation.p_number,
        "parent_sor_code": organisation.parent_sor_code,
        "institution_sor_code": organisation.institution_sor_code,
        "owner_sor_code": organisation.owner_sor_code,
        "address": address,
        "visiting_address": visiting_address,
        "phone": effective.get("phone"),
        "fax": effective.get("fax"),
        "email": effective.get("email"),
        "website": effective.get("website"),
        "inherited": organisation.inherited or [],
        "clinical_specialities": organisation.clinical_specialities,
        "replaces": organisation.replaces,
        "replaced_by": organisation.replaced_by,
        "first_valid_from": organisation.first_valid_from,
        "valid_from": organisation.valid_from,
        "valid_to": organisation.valid_to,
        "version": organisation.version,
    }


def with_successors(item: dict[str, Any], found: Successors | None) -> dict[str, Any]:
    """*item* with its chains' ends, when it names a successor (*found* for it)."""
    if found is not None and item.get("replaced_by"):
        item["successors"] = [successor_entry(end) for end in found.active]
        item["successor_dead_ends"] = [successor_entry(end) for end in found.ended]
    return item


class OrganisationArgsSchema(Schema):
    """How to read one organisation: now (neither), or as it stood."""

    on = fields.Date(**_d("As in force on this date (valid time); 404 when it was not",
                          "Som gældende på datoen"))
    as_recorded = fields.AwareDateTime(
        **_d("As the register said at this instant (transaction time), ISO 8601 with a "
             "time zone offset; 404 before its first version",
             "Som registret sagde på tidspunktet (med tidszone)"),
    )


def _batch_codes(codes: list[str]) -> list[str]:
    """The codes, each checked and stripped, duplicates dropped, order kept."""
    errors: dict[int, list[str]] = {}
    clean: list[str] = []
    for position, code in enumerate(codes):
        try:
            clean.append(ids.validate_sor_code(code))
        except ids.IdentifierError as exc:
            errors[position] = [str(exc)]
    if errors:
        raise ValidationError(errors, field_name="sor_codes")
    return list(dict.fromkeys(clean))


class BatchRequestSchema(Schema):
    """Several organisations at once, as ``GetSorEntity(SorIds, Date)`` answers."""

    sor_codes = fields.List(
        fields.String(validate=validate.Length(max=40)),
        required=True,
        validate=validate.Length(min=1, max=BATCH_LIMIT),
        **_d(f"1 to {BATCH_LIMIT} SOR codes; a code given twice is answered once",
             f"1 til {BATCH_LIMIT} SOR-koder"),
    )
    on = fields.Date(allow_none=True, **_d("As in force on this date; default: as they "
                                           "stand now (closed ones too)", "Gældende på dato"))
    as_recorded = fields.AwareDateTime(
        allow_none=True, **_d("As the register said at this instant", "Som registreret da"))

    @post_load
    def _codes(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["sor_codes"] = _batch_codes(data["sor_codes"])
        return data


class BatchSchema(Schema):
    items = fields.List(fields.Nested(OrganisationSchema),
                        **_d("The organisations found, in the order asked", "Fundne"))
    not_found = fields.List(
        fields.String(),
        **_d("Codes with no organisation (then: not in force, or not yet recorded)",
             "Koder uden enhed"),
    )


class VersionSchema(Schema):
    version = fields.Integer()
    recorded_at = fields.DateTime(**_d("Recorded in the register", "Registreret"))
    superseded_at = fields.DateTime(allow_none=True, **_d("Superseded", "Afløst"))
    source = fields.String(**_d("import, application or staff", "Kilde"))
    actor = fields.String(**_d("Who made the change", "Hvem"))
    reference = fields.String(allow_none=True, **_d("Import run or application", "Reference"))
    changes = fields.Dict(
        **_d("Changed fields: [before, after]", "Ændrede felter: [før, efter]")
    )
    snapshot = fields.Dict(**_d("The organisation's own values", "Enhedens egne værdier"))


class HistorySchema(Schema):
    sor_code = fields.String()
    versions = fields.List(fields.Nested(VersionSchema))


class OrganisationListSchema(Schema):
    items = fields.List(fields.Nested(OrganisationSchema), **_d("One page", "Én side"))
    total = fields.Integer(**_d("Matches in the whole list", "Antal i hele listen"))
    next = fields.String(
        allow_none=True,
        **_d("Cursor of the next page; null on the last", "Markør til næste side"),
    )
    suggestions = fields.List(
        fields.String(),
        **_d("Only when a name search finds nothing: texts to search for instead, best first "
             "(each word typed that no name holds replaced by the register's nearest words "
             "by trigram similarity: \"Rigshopitalet\" -> \"rigshospitalet\")",
             "Kun når navnesøgningen intet finder: forslag (Mente du …?)"),
    )


class LookupArgsSchema(Schema):
    """The column filters shared by every list."""

    class Meta:
        ordered = True

    level = fields.List(
        fields.String(validate=validate.OneOf(LEVELS)),
        **_d("Level, repeatable: IE, SI, OE", "Niveau (gentages)"),
    )
    name = fields.String(
        validate=validate.Length(max=100),
        **_d("Name, folded alike on both sides: case and accents ignored; ø/ö = o = oe, "
             "å = a = aa, æ = ae, ü = u = ue (\"kobenhavn\" = \"koebenhavn\" = "
             "\"København\", \"arhus\" = \"Aarhus\" = \"Århus\")",
             "Navn (kobenhavn = koebenhavn = København)"),
    )
    name_match = fields.String(
        validate=validate.OneOf(["contains", "prefix", "words", "fuzzy"]),
        **_d("How the name matches. contains: the name holds the text; prefix: begins with "
             "it; words: every word typed begins a word of the name, in any order (\"plej "
             "hor\" finds Plejecenter Horsens); fuzzy: the names most similar to the text "
             "(trigram similarity at least 0.3, as PostgreSQL's pg_trgm measures it), most "
             "similar first, one page (no next) with the exact total. Default: words for a "
             "text of several words, contains for one",
             "Navnesøgning: contains/prefix/words/fuzzy; standard words ved flere ord"),
    )
    entity_type = fields.String(**_d("Entity type (SNOMED CT code)", "Enhedstype"))
    ydernummer = fields.String(**_d("Ydernummer, with or without leading zeros", "Ydernummer"))
    shak = fields.String(**_d("SHAK code or its start", "SHAK-kode eller dens start"))
    sor_code = fields.String(**_d("SOR code or its start", "SOR-kode eller dens start"))
    municipality_code = fields.String(**_d("Kommunekode (effective address)", "Kommunekode"))
    postal_code = fields.String(**_d("Postal code (effective address)", "Postnummer"))
    under = fields.String(**_d("SOR code: its whole subtree", "SOR-kode: hele undertræet"))
    active_on = fields.Date(**_d("Valid on this date (default today)", "Gyldig på dato"))
    sort = fields.String(
        validate=validate.OneOf(["relevance", "name", "code"]),
        **_d("Order. relevance (the default when a name is given; otherwise name): the exact "
             "name first, then names beginning with the first word typed, then names where "
             "every word typed begins a word, then the rest; each group by name, then code. "
             "name: by the folded name, then code; code: by SOR code",
             "Sortering: relevans (standard ved navn), navn eller kode"),
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=500),
        **_d("Page size, at most 500", "Sidestørrelse"),
    )
    cursor = fields.String(**_d("From the previous page's next", "Fra forrige sides next"))


class SearchArgsSchema(LookupArgsSchema):
    ownership = fields.String(
        validate=validate.OneOf(OWNERSHIPS),
        **_d("Ownership", "Ejerforhold"),
    )
    cvr = fields.String(**_d("The owner's CVR number", "Ejerens CVR-nummer"))


class ResolveArgsSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Length(max=40),
        **_d("A SOR code, SHAK code or ydernummer", "SOR-, SHAK-kode eller ydernummer"),
    )
    active_on = fields.Date(**_d("Valid on this date (default today)", "Gyldig på dato"))


class ShakRecordSchema(Schema):
    code = fields.String(**_d("SHAK code", "SHAK-kode"))
    name = fields.String(**_d("Name in the SHAK register", "Navn"))
    kind = fields.String(**_d("hospital, department or section", "sygehus/afdeling/afsnit"))
    hospital = fields.String(**_d("The hospital's code", "Sygehuskode"))
    valid_from = fields.Date(**_d("Valid from", "Gyldig fra"))
    valid_to = fields.Date(allow_none=True, **_d("Valid to (inclusive)", "Gyldig til"))
    sor_codes = fields.List(
        fields.String(), **_d("SOR entities carrying the code", "SOR-enheder med koden")
    )


class InterpretationSchema(Schema):
    kind = fields.String(**_d("sor, shak or ydernummer", "Kodetype"))
    normalised = fields.String(**_d("The code as the register writes it", "Normaliseret"))
    organisations = fields.List(fields.Nested(OrganisationSchema))
    shak = fields.Nested(ShakRecordSchema, allow_none=True)


class FindingSchema(Schema):
    field = fields.String(**_d("The field concerned", "Feltet"))
    code = fields.String(**_d("Machine-readable reason", "Årsagskode"))
    message = fields.String(**_d("Reason", "Begrundelse"))


class ResolveSchema(Schema):
    code = fields.String()
    kind = fields.String(
        allow_none=True, **_d("The reading that names organisations", "Den læsning der gav fund")
    )
    interpretations = fields.List(fields.Nested(InterpretationSchema))
    warnings = fields.List(
        fields.Nested(FindingSchema),
        **_d("A SOR code closed within SOR_SUCCESSOR_WARNING_DAYS and replaced: its "
             "closing date and successors (code replaced)", "Advarsler"),
    )
    successors = fields.List(
        fields.Nested(SuccessorSchema),
        **_d("For a replaced SOR code: the organisations to use instead",
             "Efterfølgerne der skal bruges i stedet"),
    )


class ShakArgsSchema(Schema):
    q = fields.String(
        validate=validate.Length(max=100), **_d("Code or name typed so far", "Skrevet indtil nu")
    )
    active_on = fields.Date(**_d("Valid on this date (default today)", "Gyldig på dato"))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class ShakDepartmentArgsSchema(ShakArgsSchema):
    hospital = fields.String(required=True, **_d("The hospital's code", "Sygehuskode"))


class ShakListSchema(Schema):
    items = fields.List(fields.Nested(ShakRecordSchema))
    total = fields.Integer()


class ValidateRequestSchema(Schema):
    sor_code = fields.String(allow_none=True, validate=validate.Length(max=40))
    shak_code = fields.String(allow_none=True, validate=validate.Length(max=40))
    period_start = fields.Date(allow_none=True, **_d("First day", "Første dag"))
    period_end = fields.Date(allow_none=True, **_d("Last day", "Sidste dag"))


class ValidationSchema(Schema):
    errors = fields.List(fields.Nested(FindingSchema), **_d("Block the report", "Fejl"))
    warnings = fields.List(fields.Nested(FindingSchema), **_d("Allowed", "Advarsler"))
    organisation = fields.Nested(OrganisationSchema, allow_none=True)
    successors = fields.List(
        fields.Nested(SuccessorSchema),
        **_d("For a SOR code replaced by another: the organisations to report with",
             "Efterfølgerne der skal indberettes med"),
    )

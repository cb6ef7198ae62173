"""Marshmallow schemas of the applications API (English / Danish descriptions).

The limits of the fields are the service's (:mod:`applications.service.cleaning`),
which checks them again for the pages and the mail intake; an identifier's length is
the longest its rule allows (:mod:`hierarchy.identifiers` checks the rest).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from applications.mail_models import TRIAGE_REASONS, TRIAGE_STATUSES
from applications.models import APPLICATION_OWNERSHIPS, KINDS, STATUSES, Application
from applications.service.cleaning import (
    MAX_NAME,
    MAX_REASON,
    MAX_SUCCESSORS,
    SHORT_TEXT,
    TEXT_LIMITS,
)
from hierarchy.codes import entity_type_name, municipalities
from hierarchy.identifiers import YDERNUMMER_MAX_LENGTH

# A page's cursor: the id of the last item of the previous page.
CURSOR = r"^[0-9]{1,18}$"


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


def _text(en: str, da: str, length: int) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=length), **_d(en, da))


def _field(name: str, en: str, da: str) -> fields.String:
    """An application's text field, with the service's limit for it."""
    return _text(en, da, TEXT_LIMITS.get(name, SHORT_TEXT))


class ApplicationAddressSchema(Schema):
    street = _field("street", "Street and number", "Vej og husnummer")
    postal_code = _text("Postcode (4 digits)", "Postnummer (4 cifre)", 10)
    city = _field("city", "Town", "By")


class ApplicationInputSchema(Schema):
    """What a municipality fills in. Everything may be left empty in a draft."""

    kind = fields.String(validate=validate.OneOf(KINDS),
                         **_d("new: a new SOR code; change: a change to an existing one",
                              "new: ny SOR-kode; change: ændring af en eksisterende"))
    municipality_code = _text("Applying municipality (SDS staff only; a municipality client "
                              "applies for itself)", "Ansøgende kommune (kun SDS)", 4)
    contact_email = _field("contact_email", "The municipality's contact email",
                           "Kommunens kontakt-e-mail")
    institution_name = _field("institution_name",
                              f"Institution name (at most {MAX_NAME} characters)",
                              f"Institutionens navn (højst {MAX_NAME} tegn)")
    address = fields.Nested(ApplicationAddressSchema, allow_none=True,
                            **_d("The institution's address", "Institutionens adresse"))
    phone = _field("phone", "Telephone", "Telefon")
    fax = _field("fax", "Fax, if any", "Fax, hvis den findes")
    email = _field("email", "The institution's email, if any",
                   "Institutionens e-mail, hvis den findes")
    website = _field("website", "Web address, if any", "Web-adresse, hvis den findes")
    institution_type = _text("Institution type: SNOMED CT code from the SOR code list "
                             "(42665001 plejehjem, 547011000005103 fysioterapiklinik, ...)",
                             "Institutionstype: SNOMED CT-kode fra SOR-kodelisten", 20)
    ownership = fields.String(allow_none=True,
                              validate=validate.OneOf([*APPLICATION_OWNERSHIPS, None]),
                              **_d("Municipally or privately owned",
                                   "Kommunalt eller privat ejet"))
    owner_cvr = _text("The private owner's CVR number", "Den private ejers CVR-nummer", 8)
    owner_name = _field("owner_name", "The private owner's name (when new to the register)",
                        "Den private ejers navn (hvis ny i registret)")
    ydernummer = _text("Ydernummer (provider number), if any", "Ydernummer, hvis det findes",
                       YDERNUMMER_MAX_LENGTH)
    gln = _text("GLN location number, if any", "GLN-lokationsnummer, hvis det findes", 13)
    shak = _text("SHAK code, if any", "SHAK-kode, hvis den findes", 7)
    target_sor_code = _text("For a change: the SOR code to change",
                            "Ved ændring: SOR-koden der ændres", 18)
    closing_date = fields.Date(allow_none=True, **_d("For a change: the closing date",
                                                     "Ved ændring: lukkedato"))
    replaced_by = fields.List(
        fields.String(validate=validate.Length(max=18)), allow_none=True,
        validate=validate.Length(max=MAX_SUCCESSORS),
        **_d("For a change that closes the unit: the SOR codes that take over from it "
             "(named back on them as replaces)",
             "Ved lukning: SOR-koderne der overtager (erstattet af)"))
    remarks = _field("remarks", "Remarks", "Bemærkninger")


class EventSchema(Schema):
    at = fields.DateTime(**_d("When", "Hvornår"))
    actor = fields.String(**_d("Who", "Hvem"))
    action = fields.String(**_d("What was done", "Hvad der blev gjort"))
    from_status = fields.String(allow_none=True, **_d("Status before", "Status før"))
    to_status = fields.String(**_d("Status after", "Status efter"))
    version = fields.Integer(**_d("Submission number at the time", "Indsendelsesnummer"))
    reason = fields.String(allow_none=True, **_d("Reason given", "Begrundelse"))
    details = fields.Dict(allow_none=True, **_d("What changed", "Hvad der ændredes"))


class AttachmentSchema(Schema):
    id = fields.Integer()
    filename = fields.String(**_d("File name", "Filnavn"))
    content_type = fields.String(**_d("Media type", "Medietype"))
    size = fields.Integer(**_d("Size in bytes", "Størrelse i bytes"))
    sha256 = fields.String(**_d("SHA-256 of the content", "SHA-256 af indholdet"))


class ApplicationSchema(Schema):
    """An application for a SOR code, with its history of events."""

    id = fields.Integer(**_d("Application id", "Ansøgnings-id"))
    reference = fields.String(**_d("Reference quoted in mail", "Reference i mails"))
    kind = fields.String(**_d("new or change", "ny eller ændring"))
    status = fields.String(validate=validate.OneOf(STATUSES),
                           **_d("draft, submitted, info_requested, approved, rejected, "
                                "withdrawn", "kladde, indsendt, oplysninger ønsket, godkendt, "
                                "afvist, trukket tilbage"))
    version = fields.Integer(**_d("Number of submissions", "Antal indsendelser"))
    source = fields.String(**_d("How it came: api, web or mail", "Kanal: api, web eller mail"))
    municipality_code = fields.String(**_d("Applying municipality", "Ansøgende kommune"))
    municipality_name = fields.Method("_municipality_name",
                                      **_d("Municipality name", "Kommunens navn"))
    contact_email = fields.String(allow_none=True, **_d("Contact email", "Kontakt-e-mail"))
    institution_name = fields.String(allow_none=True, **_d("Institution name",
                                                           "Institutionens navn"))
    address = fields.Nested(ApplicationAddressSchema, **_d("Address", "Adresse"))
    phone = fields.String(allow_none=True, **_d("Telephone", "Telefon"))
    fax = fields.String(allow_none=True, **_d("Fax", "Fax"))
    email = fields.String(allow_none=True, **_d("Email", "E-mail"))
    website = fields.String(allow_none=True, **_d("Web address", "Web-adresse"))
    institution_type = fields.String(allow_none=True, **_d("Institution type (SNOMED CT)",
                                                           "Institutionstype (SNOMED CT)"))
    institution_type_name = fields.Method("_type_name", **_d("Institution type name",
                                                             "Institutionstypens navn"))
    ownership = fields.String(allow_none=True, **_d("kommunal or privat", "kommunal eller privat"))
    owner_cvr = fields.String(allow_none=True, **_d("Private owner's CVR", "Privat ejers CVR"))
    owner_name = fields.String(allow_none=True, **_d("Private owner's name", "Privat ejers navn"))
    ydernummer = fields.String(allow_none=True, **_d("Ydernummer", "Ydernummer"))
    gln = fields.String(allow_none=True, **_d("GLN", "GLN"))
    shak = fields.String(allow_none=True, **_d("SHAK code", "SHAK-kode"))
    target_sor_code = fields.String(allow_none=True, **_d("SOR code to change",
                                                          "SOR-kode der ændres"))
    closing_date = fields.Date(allow_none=True, **_d("Closing date", "Lukkedato"))
    replaced_by = fields.List(fields.String(), allow_none=True,
                              **_d("Replaced by: the SOR codes that take over",
                                   "Erstattet af"))
    remarks = fields.String(allow_none=True, **_d("Remarks", "Bemærkninger"))
    sor_code = fields.String(allow_none=True, **_d("The SOR code, once approved",
                                                   "SOR-koden, når godkendt"))
    created_at = fields.DateTime(**_d("Created", "Oprettet"))
    updated_at = fields.DateTime(**_d("Last changed", "Sidst ændret"))
    submitted_at = fields.DateTime(allow_none=True, **_d("Last submitted", "Sidst indsendt"))
    decided_at = fields.DateTime(allow_none=True, **_d("Decided", "Afgjort"))
    events = fields.List(fields.Nested(EventSchema), **_d("Who did what, when",
                                                          "Hvem gjorde hvad, hvornår"))
    attachments = fields.List(fields.Nested(AttachmentSchema),
                              **_d("Attachments (emailed applications)", "Vedhæftede filer"))

    def _municipality_name(self, application: Application) -> str | None:
        return municipalities().get(application.municipality_code)

    def _type_name(self, application: Application) -> str | None:
        return entity_type_name(application.institution_type)


class ApplicationListSchema(Schema):
    items = fields.List(fields.Nested(ApplicationSchema))
    total = fields.Integer(**_d("How many match", "Antal i alt"))
    next = fields.String(allow_none=True, **_d("Cursor of the next page", "Næste side"))


class ApplicationListArgsSchema(Schema):
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)),
                         **_d("Only these statuses (repeatable)", "Kun disse statusser"))
    municipality_code = fields.String(validate=validate.Regexp(r"^[0-9]{4}$"),
                                      **_d("Only this municipality (staff)",
                                           "Kun denne kommune (SDS)"))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200),
                           **_d("Page size", "Sidestørrelse"))
    cursor = fields.String(validate=validate.Regexp(CURSOR),
                           **_d("From the previous page's next", "Fra forrige sides next"))


class DuplicateCandidateSchema(Schema):
    type = fields.String(**_d("organisation or application", "organisation eller ansøgning"))
    sor_code = fields.String(**_d("SOR code", "SOR-kode"))
    name = fields.String(allow_none=True, **_d("Name", "Navn"))
    level = fields.String(**_d("Level", "Niveau"))
    id = fields.Integer(**_d("Application id", "Ansøgnings-id"))
    reference = fields.String(**_d("Application reference", "Ansøgningsreference"))
    institution_name = fields.String(allow_none=True, **_d("Name applied for", "Ansøgt navn"))
    status = fields.String(**_d("Application status", "Ansøgningens status"))
    municipality_code = fields.String(**_d("Applying municipality", "Ansøgende kommune"))
    ydernummer = fields.String(allow_none=True, **_d("Ydernummer", "Ydernummer"))
    address = fields.Dict(**_d("Address", "Adresse"))
    reason = fields.String(**_d("Why it may be a duplicate", "Hvorfor det kan være en dublet"))


class ApplicationFindingSchema(Schema):
    field = fields.String(**_d("The field concerned", "Feltet det gælder"))
    code = fields.String(**_d("Machine-readable code", "Kode"))
    message = fields.String(**_d("Explanation", "Forklaring"))
    candidates = fields.List(fields.Nested(DuplicateCandidateSchema),
                             **_d("Possible duplicates", "Mulige dubletter"))
    elsewhere = fields.Boolean(**_d(
        "A possible duplicate among other municipalities' applications, not shown",
        "En mulig dublet blandt andre kommuners ansøgninger, som ikke vises"))


class ApplicationValidationSchema(Schema):
    errors = fields.List(fields.Nested(ApplicationFindingSchema),
                         **_d("Errors: block submission", "Fejl: forhindrer indsendelse"))
    warnings = fields.List(fields.Nested(ApplicationFindingSchema),
                           **_d("Warnings: allowed", "Advarsler: tilladt"))


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=MAX_REASON),
                           **_d("Reason, sent to the municipality",
                                "Begrundelse, sendes til kommunen"))


class OptionalReasonSchema(Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=MAX_REASON),
                           **_d("Reason or note", "Begrundelse eller note"))


class IncomingMailSchema(Schema):
    """A mail read from the applications mailbox, and what became of it."""

    id = fields.Integer(**_d("Ledger id", "Løbenummer"))
    message_id = fields.String(**_d("Message-ID", "Message-ID"))
    mailbox = fields.String(**_d("Mailbox it was read from", "Postkasse"))
    sender = fields.String(allow_none=True, **_d("Sender", "Afsender"))
    subject = fields.String(allow_none=True, **_d("Subject", "Emne"))
    received_at = fields.DateTime(allow_none=True, **_d("Received", "Modtaget"))
    processed_at = fields.DateTime(**_d("Read by fetch-mail", "Læst af fetch-mail"))
    size = fields.Integer(**_d("Size in bytes", "Størrelse i bytes"))
    municipality_code = fields.String(allow_none=True,
                                      **_d("The sender's municipality, if a registered "
                                           "contact", "Afsenderens kommune"))
    outcome = fields.String(**_d("application or triage", "ansøgning eller manuel behandling"))
    application_id = fields.Integer(allow_none=True, **_d("The application made from it",
                                                          "Ansøgningen der blev oprettet"))
    application_reference = fields.String(allow_none=True, **_d("Its reference", "Reference"))
    triage_reason = fields.String(allow_none=True,
                                  **_d("Why staff must look: " + ", ".join(TRIAGE_REASONS),
                                       "Hvorfor den skal behandles manuelt"))
    triage_status = fields.String(allow_none=True, **_d("open or resolved", "åben eller løst"))
    resolved_by = fields.String(allow_none=True, **_d("Resolved by", "Løst af"))
    resolved_at = fields.DateTime(allow_none=True, **_d("Resolved", "Løst"))
    resolution_note = fields.String(allow_none=True, **_d("What was done", "Hvad der blev gjort"))
    fields_ = fields.Dict(data_key="fields", attribute="fields", allow_none=True,
                          **_d("What the template parser read", "Hvad skabelonen gav"))
    problems = fields.List(fields.String(), allow_none=True,
                           **_d("Why it could not be read", "Hvorfor den ikke kunne læses"))
    attachments = fields.List(fields.Dict(), allow_none=True,
                              **_d("Attachments (name, type, size)", "Vedhæftede filer"))


class IncomingMailListSchema(Schema):
    items = fields.List(fields.Nested(IncomingMailSchema))
    total = fields.Integer(**_d("How many match", "Antal i alt"))
    next = fields.String(allow_none=True, **_d("Cursor of the next page", "Næste side"))


class TriageArgsSchema(Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(TRIAGE_STATUSES),
                           **_d("open (default) or resolved", "åben (standard) eller løst"))
    reason = fields.String(validate=validate.OneOf(TRIAGE_REASONS),
                           **_d("Only this reason", "Kun denne årsag"))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200),
                           **_d("Page size", "Sidestørrelse"))
    cursor = fields.String(validate=validate.Regexp(CURSOR),
                           **_d("From the previous page's next", "Fra forrige sides next"))


class ResolveTriageSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                         **_d("What was done", "Hvad der blev gjort"))
    application_id = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=2**53),
                                    **_d("An application made by hand from the mail",
                                         "En ansøgning oprettet i hånden ud fra mailen"))

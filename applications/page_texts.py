"""The application pages' words: statuses, actions, field labels, findings, reasons.

Codes the service uses (``submitted``, ``missing_field``, ``unauthenticated``) shown in the
page's language; the templates reach them through :func:`template_names`. Kept apart from
the views so that translating a page touches no request handling.
"""

from __future__ import annotations

from typing import Any

from applications import service
from hierarchy.codes import entity_type_name, municipalities
from sorregistry.i18n import current_language, lazy_gettext
from sorregistry.models import utcnow

STATUS_NAMES = {
    "draft": lazy_gettext("Kladde"),
    "submitted": lazy_gettext("Indsendt"),
    "info_requested": lazy_gettext("Afventer oplysninger"),
    "approved": lazy_gettext("Godkendt"),
    "rejected": lazy_gettext("Afvist"),
    "withdrawn": lazy_gettext("Trukket tilbage"),
}
ACTION_NAMES = {
    "created": lazy_gettext("Oprettet"),
    "edited": lazy_gettext("Rettet"),
    "submitted": lazy_gettext("Indsendt"),
    "info_requested": lazy_gettext("Oplysninger anmodet"),
    "approved": lazy_gettext("Godkendt"),
    "rejected": lazy_gettext("Afvist"),
    "withdrawn": lazy_gettext("Trukket tilbage"),
}
KIND_NAMES = {"new": lazy_gettext("Ny SOR-kode"), "change": lazy_gettext("Ændring")}
OWNERSHIP_NAMES = {"kommunal": lazy_gettext("Kommunal"), "privat": lazy_gettext("Privat")}
# The form's fields in order, with their labels (also used for findings).
FIELD_LABELS = {
    "kind": lazy_gettext("Ansøgningstype"),
    "target_sor_code": lazy_gettext("SOR-kode der ændres"),
    "contact_email": lazy_gettext("Kommunens kontakt-e-mail"),
    "institution_name": lazy_gettext("Institutionens navn"),
    "street": lazy_gettext("Adresse (gade og nummer)"),
    "postal_code": lazy_gettext("Postnummer"),
    "city": lazy_gettext("By"),
    "phone": lazy_gettext("Telefon"),
    "fax": lazy_gettext("Fax"),
    "email": lazy_gettext("Institutionens e-mail"),
    "website": lazy_gettext("Hjemmeside"),
    "institution_type": lazy_gettext("Institutionstype"),
    "ownership": lazy_gettext("Ejerforhold"),
    "owner_cvr": lazy_gettext("Ejerens CVR-nummer"),
    "owner_name": lazy_gettext("Ejerens navn"),
    "ydernummer": lazy_gettext("Ydernummer"),
    "gln": lazy_gettext("GLN (EAN-lokationsnummer)"),
    "shak": lazy_gettext("SHAK-kode"),
    "closing_date": lazy_gettext("Lukkedato"),
    "replaced_by": lazy_gettext("Erstattet af (SOR-koder)"),
    "remarks": lazy_gettext("Bemærkninger"),
    "address": lazy_gettext("Adresse"),
    "reason": lazy_gettext("Begrundelse"),
}
# The findings the service reports (by code) in the page's language; a finding not named
# here keeps the service's own (English) message. ``%(label)s`` is the field's label.
FINDING_TEXTS = {
    "required": lazy_gettext("%(label)s skal udfyldes."),
    "similar_name": lazy_gettext("Der findes allerede en institution med et lignende navn i "
                                 "samme postnummer."),
    "duplicate_ydernummer": lazy_gettext("Ydernummeret er allerede registreret eller søgt "
                                         "om."),
    "duplicate_address": lazy_gettext("Samme ejer har allerede en institution på denne "
                                      "adresse."),
    "has_ydernummer": lazy_gettext("En institution med ydernummer kan indberette med det og "
                                   "behøver måske ikke en SOR-kode."),
    "has_shak": lazy_gettext("En institution med SHAK-kode kan indberette med den og behøver "
                             "måske ikke en SOR-kode."),
    "ignored": lazy_gettext("En kommunal institution hører under kommunen; det angivne "
                            "CVR-nummer bruges ikke."),
    "change_fields": lazy_gettext("SOR-kode, lukkedato og efterfølgere bruges kun ved "
                                  "ændringsansøgninger."),
    "no_change": lazy_gettext("Angiv hvad der skal ændres."),
    "owner_level": lazy_gettext("En institutionsejer (IE) ændres ikke ved ansøgning."),
    "ownership_change": lazy_gettext("Skift af ejer kræver en ny SOR-kode: søg om en ny."),
    "unknown": lazy_gettext("Ingen enhed har denne SOR-kode."),
    "closed": lazy_gettext("Enheden er lukket."),
    "other_municipality": lazy_gettext("Enheden ligger i en anden kommune end ansøgerens."),
    "too_long": lazy_gettext("Højst 60 tegn."),
    "before_start": lazy_gettext("Lukkedatoen ligger før enhedens startdato."),
    "itself": lazy_gettext("En enhed kan ikke erstatte sig selv."),
    "successor_not_in_force": lazy_gettext("Efterfølgeren er ikke i kraft på lukkedatoen."),
}
# Why a duplicate candidate was found (the service's reason), in the page's language.
CANDIDATE_REASONS = {
    "same ydernummer": lazy_gettext("samme ydernummer"),
    "same owner CVR and address": lazy_gettext("samme ejer (CVR) og adresse"),
    "similar name in the same postcode": lazy_gettext("lignende navn i samme postnummer"),
}



# The mail intake's triage reasons (applications.mail_service).
TRIAGE_REASONS = {
    "unreadable": lazy_gettext("Følger ikke skabelonen"),
    "unknown_sender": lazy_gettext("Ukendt afsender"),
    "oversized": lazy_gettext("For stor"),
    "application_error": lazy_gettext("Oplysninger kunne ikke bruges"),
    "unauthenticated": lazy_gettext("Afsenderen kunne ikke bekræftes"),
    "rate_limited": lazy_gettext("For mange mails fra afsenderen"),
    "message_id_reused": lazy_gettext("Message-ID brugt af en anden mail"),
    "unparseable": lazy_gettext("Kan ikke læses"),
    "failed": lazy_gettext("Behandlingen fejlede"),
}





def finding_text(finding: service.Finding) -> str:
    """A validation finding in the page's language."""
    if finding.code not in FINDING_TEXTS:
        return finding.message
    label = FIELD_LABELS.get(finding.field, finding.field)
    return str(FINDING_TEXTS[finding.code] % {"label": label})


def findings_by_field(validation: service.Validation | None) -> dict[str, dict[str, list[str]]]:
    """{field: {"errors": [...], "warnings": [...]}} for the inline messages."""
    shown: dict[str, dict[str, list[str]]] = {}
    if validation is None:
        return shown
    for kind, findings in (("errors", validation.errors), ("warnings", validation.warnings)):
        for finding in findings:
            name = "street" if finding.field == "address" else finding.field
            shown.setdefault(name, {"errors": [], "warnings": []})[kind].append(
                finding_text(finding))
    return shown


def template_names() -> dict[str, Any]:
    """Lookups the templates use to show codes as words."""
    return {
        "status_name": lambda status: str(STATUS_NAMES.get(status, status)),
        "action_name": lambda action: str(ACTION_NAMES.get(action, action)),
        "kind_name": lambda kind: str(KIND_NAMES.get(kind, kind or "")),
        "ownership_name": lambda value: str(OWNERSHIP_NAMES.get(value, value or "")),
        "municipality_name": lambda code: municipalities().get(code, code),
        "type_name": lambda code: entity_type_name(code, current_language()) or code,
        "label": lambda name: str(FIELD_LABELS.get(name, name)),
        "finding_text": finding_text,
        "candidate_reason": lambda reason: str(CANDIDATE_REASONS.get(reason, reason)),
        "age_days": lambda application: (
            (utcnow() - application.submitted_at).days if application.submitted_at else None
        ),
    }

"""Reading an emailed application: the template's ``Felt: værdi`` lines to fields.

Municipalities apply by mail with a template of ``Felt: værdi`` lines (the
README's "Emailed applications" shows it)::

    Ansøgning: ny
    Institutionens navn: Plejecenter Åbo
    Adresse: Søndergade 12
    Postnummer: 8000
    By: Aarhus C
    ...
    Bemærkninger: free text, may continue on following lines

The parser is forgiving about form and strict about nothing else: labels in any
case and spacing, with common synonyms (``Navn``, ``Postnr.``, ``Tlf.``,
``Mail``, ``Web``, ``Type``, ``Ejer`` …), plain or HTML-only mails in any
transfer encoding and charset, the template anywhere in the body and ended by a
signature or a quoted reply. A mail is *readable* when it names at least the
kind of application and the institution. Checking the values (CVR modulus 11,
SOR codes, …) is the applications service's job; the parser only normalises
the obvious: institution type names to SNOMED CT codes, dates to ISO form.
Getting the text out of a MIME message is :mod:`applications.mail_message`'s.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from typing import Any

from hierarchy.codes import _rows
from hierarchy.text import fold

__all__ = [
    "FIELD_LABELS",
    "TEMPLATE",
    "institution_type_code",
    "parse_template",
]

# The template as municipalities get it; the README shows the same text.
TEMPLATE = """\
Ansøgning: ny
Institutionens navn:
Adresse:
Postnummer:
By:
Telefon:
Fax:
E-mail:
Hjemmeside:
Institutionstype:
Ejerforhold:
CVR:
Ydernummer:
SOR-kode:
Lukkedato:
Kontakt-e-mail:
Bemærkninger:
"""

# Field (the applications service's names; "address.x" goes into the address
# dict) -> the labels that mean it. Labels are compared by their letters only,
# case-folded (``_label_key``): "Postnr.", "post nr" and "POSTNR" are one label.
FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "kind": ("Ansøgning", "Ansøgningstype", "Type af ansøgning", "Anmodning"),
    "institution_name": (
        "Institutionens navn", "Institutionsnavn", "Navn", "Navn på institution",
        "Navn på institutionen", "Institution",
    ),
    "address.street": ("Adresse", "Vejnavn", "Gade", "Gadenavn", "Adr", "Vej og nummer"),
    "address.postal_code": ("Postnummer", "Postnr", "Post nr"),
    "address.city": ("By", "Bynavn", "Postdistrikt"),
    "phone": ("Telefon", "Tlf", "Tlf nr", "Telefonnummer", "Telefonnr", "Telefon nr"),
    "fax": ("Fax", "Telefax", "Faxnummer", "Fax nr"),
    "email": ("E-mail", "Email", "Mail", "E-mailadresse", "Mailadresse"),
    "website": ("Hjemmeside", "Web", "Website", "Webside", "Webadresse", "URL", "www"),
    "institution_type": ("Institutionstype", "Type", "Institutionsart", "Enhedstype"),
    "ownership": ("Ejerforhold", "Ejer", "Ejerskab", "Ejertype"),
    "owner_cvr": ("CVR", "CVR-nr", "CVR-nummer", "Ejers CVR", "Ejerens CVR"),
    "ydernummer": ("Ydernummer", "Ydernr", "Yder nr"),
    "target_sor_code": ("SOR-kode", "SOR", "SOR kode", "SOR-nr", "Nuværende SOR-kode"),
    "closing_date": ("Lukkedato", "Lukningsdato", "Ophørsdato", "Nedlæggelsesdato"),
    "contact_email": ("Kontakt-e-mail", "Kontakt e-mail", "Kontaktmail", "Kontakt email"),
    "remarks": ("Bemærkninger", "Bemærkning", "Kommentar", "Kommentarer", "Note"),
}

# The only field whose value may run over several lines.
_MULTILINE = {"remarks"}

# Hints from the documented template that people leave in place.
_HINTS = re.compile(r"\s*\((?:ny\s*\|\s*ændring|kommunal\s*\|\s*privat)\)\s*$", re.I)

_KIND_WORDS = {
    "new": {"ny", "nyt", "nye", "nyoprettelse", "oprettelse", "opret", "new"},
    "change": {"ændring", "aendring", "ændringer", "ændre", "lukning", "nedlæggelse", "change"},
}
_OWNERSHIP_WORDS = {
    "kommunal": {"kommunal", "kommunalt", "kommune", "kommunen", "municipal"},
    "privat": {"privat", "privatejet", "private", "privatpraksis"},
}
_DANISH_MONTHS = {
    name: number
    for number, names in enumerate(
        [("januar", "jan"), ("februar", "feb"), ("marts", "mar"), ("april", "apr"),
         ("maj",), ("juni", "jun"), ("juli", "jul"), ("august", "aug"),
         ("september", "sep", "sept"), ("oktober", "okt"), ("november", "nov"),
         ("december", "dec")],
        start=1,
    )
    for name in names
}

# A line that ends the template: a signature, a closing greeting, a quoted reply
# or the header block of a forwarded or replied-to mail.
_END_OF_TEMPLATE = re.compile(
    r"""^(?:
        --\s*$
      | >
      | _{5,}
      | -{3,}\s*(?:original|oprindelig|videresendt|forwarded)
      | (?:med\s+)?venlig(?:st)?\s+hilsen\b | mvh\b | vh\b | hilsen\b
      | (?:best|kind)\s+regards\b | regards\b
      | (?:fra|from|sendt|sent)\s*:
      | (?:den|on)\s.+\s(?:skrev|wrote)\s*:?\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_LABELLED_LINE = re.compile(r"^\s*(?P<label>[^:\t]{1,40}?)\s*(?::|\t)\s*(?P<value>.*)$")
_EMAIL_IN_TEXT = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_EMPTY_VALUES = {"", "-", "–", "—", "ingen", "n/a", "na", "nej", "ikke relevant", "."}


def _label_key(label: str) -> str:
    """Letters only, case-folded: how labels are compared."""
    return "".join(ch for ch in label.casefold() if ch.isalpha())


@cache
def _labels() -> dict[str, str]:
    keys: dict[str, str] = {}
    for name, labels in FIELD_LABELS.items():
        for label in labels:
            keys[_label_key(label)] = name
    return keys


# -- values ------------------------------------------------------------------------------


@cache
def _institution_types_by_name() -> dict[str, str]:
    """Folded Danish name -> SNOMED CT code; institution names win over unit names."""

    names: dict[str, str] = {}
    for listing in (
        "sor_institution_types_sdm2013.csv",
        "sor_entity_types_da_medcom.csv",
        "sor_unit_types_sdm2013.csv",
    ):
        for row in _rows(listing):
            names.setdefault(fold(row["danish_name"]), row["snomed_code"])
    return names


def institution_type_code(value: str) -> str:
    """The SNOMED CT code for a code or a Danish name ("plejehjem" -> "42665001").

    A value that is neither is returned as written, for the service to refuse.
    """
    digits = re.search(r"\b\d{6,18}\b", value)
    if digits:
        return digits.group()
    return _institution_types_by_name().get(fold(value), value)


def _words(value: str) -> set[str]:
    return set(re.findall(r"[a-zæøå]+", re.sub(r"\(.*?\)", " ", value.casefold())))


def _choice(value: str, choices: dict[str, set[str]]) -> str | None:
    words = _words(value)
    found = [choice for choice, synonyms in choices.items() if words & synonyms]
    return found[0] if len(found) == 1 else None


def _normalise_date(value: str) -> str:
    """ISO form of dd-mm-åååå, dd.mm.åååå, dd/mm/åååå, åååå-mm-dd or "1. marts 2027"."""
    text = value.strip().casefold()
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    danish = re.fullmatch(r"(\d{1,2})\s*[-./]\s*(\d{1,2})\s*[-./]\s*(\d{4})", text)
    words = re.fullmatch(r"(?:d\.?\s*)?(\d{1,2})\.?\s*([a-zæøå]+)\.?\s+(\d{4})", text)
    try:
        if iso:
            return date(int(iso[1]), int(iso[2]), int(iso[3])).isoformat()
        if danish:
            return date(int(danish[3]), int(danish[2]), int(danish[1])).isoformat()
        if words and words[2] in _DANISH_MONTHS:
            return date(int(words[3]), _DANISH_MONTHS[words[2]], int(words[1])).isoformat()
    except ValueError:
        pass
    return value.strip()


def _first_address(value: str) -> str:
    """``aabo@aarhus.dk <mailto:aabo@aarhus.dk>`` (as Outlook writes it) -> the address."""
    found = _EMAIL_IN_TEXT.search(value.removeprefix("mailto:"))
    return found.group().lower() if found else value.strip()


def _normalise(name: str, value: str) -> Any:
    if name == "kind":
        return _choice(value, _KIND_WORDS) or value
    if name == "ownership":
        return _choice(value, _OWNERSHIP_WORDS) or value
    if name == "institution_type":
        return institution_type_code(value)
    if name in ("email", "contact_email"):
        return _first_address(value)
    if name == "website":
        return value.split()[0].strip("<>")
    if name in ("owner_cvr", "ydernummer", "target_sor_code"):
        compact = re.sub(r"[\s.\-]", "", value)
        return compact[2:] if name == "owner_cvr" and compact[:2].upper() == "DK" else compact
    if name == "closing_date":
        return _normalise_date(value)
    return re.sub(r"[ \t\xa0]+", " ", value).strip()


# -- the template ----------------------------------------------------------------------


def parse_template(text: str) -> tuple[dict[str, Any], list[str]]:
    """Read the template's fields from *text*; returns (fields, problems).

    The template starts at the first line with a known label and ends at a
    signature, closing greeting or quoted reply. Only fields given a value are
    in the result; the first occurrence of a label wins. ``problems`` is empty
    when the mail is readable (kind and institution name found).
    """
    labels = _labels()
    values: dict[str, list[str]] = {}
    current: str | None = None
    started = False
    for line in text.splitlines():
        stripped = line.strip().replace("\xa0", " ")
        if started and _END_OF_TEMPLATE.match(stripped):
            break
        if stripped.startswith(">"):
            continue  # a quoted mail is someone else's (or an older) application
        match = _LABELLED_LINE.match(stripped)
        name = labels.get(_label_key(match["label"])) if match else None
        if match and name and not (name in values and current in _MULTILINE):
            started = True
            current = name if name not in values else None
            if current:
                values[current] = [_HINTS.sub("", match["value"]).strip()]
            continue
        if current in _MULTILINE:
            values[current].append(stripped)
        elif stripped:
            current = None  # free text between fields belongs to no field
    fields: dict[str, Any] = {}
    address: dict[str, str] = {}
    for name, lines in values.items():
        value = "\n".join(lines).strip() if name in _MULTILINE else lines[0]
        if value.casefold() in _EMPTY_VALUES:
            continue
        if name == "address.postal_code":
            # "8000 Aarhus C" on one line: the town too, unless "By" says otherwise.
            code = re.match(r"^(?:DK\s*-?\s*)?(\d{4})\b\s*(.*)$", value, re.I)
            if code:
                value = code[1]
                if code[2] and "address.city" not in values:
                    address["city"] = code[2].strip()
        normalised = _normalise(name, value)
        if name.startswith("address."):
            address[name.removeprefix("address.")] = normalised
        else:
            fields[name] = normalised
    if address:
        fields["address"] = address
    return fields, _problems(values, fields)


def _problems(values: dict[str, list[str]], fields: dict[str, Any]) -> list[str]:
    if not values.get("kind", [""])[0] and not values.get("institution_name", [""])[0]:
        return ["the mail does not follow the template: no 'Ansøgning: ny' (or 'ændring') "
                "and no 'Institutionens navn: …' line"]
    problems = []
    if "kind" not in values or not values["kind"][0]:
        problems.append("'Ansøgning' (ny or ændring) is missing")
    elif fields.get("kind") not in ("new", "change"):
        problems.append(f"'Ansøgning: {values['kind'][0]}' is neither 'ny' nor 'ændring'")
    if not fields.get("institution_name"):
        problems.append("'Institutionens navn' is missing")
    return problems

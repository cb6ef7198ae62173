"""Reading an emailed application: the template, and a MIME message to fields.

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
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import date
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr
from functools import cache
from html.parser import HTMLParser
from typing import Any

from hierarchy.codes import _rows
from hierarchy.text import fold

__all__ = [
    "FIELD_LABELS",
    "TEMPLATE",
    "Attachment",
    "ParsedMail",
    "body_text",
    "html_to_text",
    "institution_type_code",
    "message_key",
    "parse_mail",
    "parse_template",
    "read_headers",
    "sender_address",
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


# -- HTML --------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """HTML to text: blocks become lines, table cells are separated by tabs."""

    _BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
               "ul", "ol", "blockquote", "pre", "hr", "section", "article", "header",
               "footer", "dt", "dd"}
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "blockquote":
            self.parts.append(_QUOTE_START)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        if tag == "blockquote":
            self.parts.append(_QUOTE_END)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


# Private-use characters marking a blockquote's start and end in the extracted text.
_QUOTE_START, _QUOTE_END = "\ue000", "\ue001"


def html_to_text(html: str) -> str:
    """Readable text from an HTML mail body (stdlib only).

    Quoted replies (``<blockquote>``) come out with "> " before each line, as
    mail programs write them in plain text, so the template parser stops there.
    """
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines: list[str] = []
    depth = 0
    for line in "".join(extractor.parts).replace("\xa0", " ").split("\n"):
        quoted = depth > 0 or _QUOTE_START in line
        depth += line.count(_QUOTE_START) - line.count(_QUOTE_END)
        line = line.replace(_QUOTE_START, "").replace(_QUOTE_END, "")
        # Collapse spaces, drop a row's leading empty cell; tabs between cells stay.
        line = re.sub(r" {2,}", " ", line).strip(" \t")
        lines.append("> " + line if quoted and line else line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- the message ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class ParsedMail:
    """What the intake reads from one message."""

    message_id: str
    sender: str | None
    subject: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return not self.problems


def message_key(message_id: str | None, raw: bytes) -> str:
    """The ledger's key: the Message-ID, or a digest of the raw bytes when it has none.

    An overlong Message-ID (the column holds 255) is replaced by its own digest,
    which is as stable as the id itself.
    """
    if message_id:
        cleaned = " ".join(message_id.split())
        if cleaned:
            if len(cleaned) <= 255:
                return cleaned
            return "sha256-id:" + hashlib.sha256(cleaned.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _decode(part: Message) -> str:
    """A text part's content as str, whatever its transfer encoding and charset.

    ISO-8859-1 is read as windows-1252 (its superset, and what Windows mail
    programs really send); a wrong or unknown charset falls back to
    windows-1252 rather than failing.
    """
    data = part.get_payload(decode=True) or b""
    charset = (part.get_content_charset() or "").lower()
    if charset in ("iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1"):
        charset = "windows-1252"
    elif charset in ("", "us-ascii", "ascii"):
        charset = "utf-8"  # undeclared 8-bit text is nowadays UTF-8 more often than not
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return data.decode("windows-1252", errors="replace")


def body_text(message: EmailMessage) -> str:
    """The mail's text: its plain body, or its HTML body made text."""
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    text = _decode(body)
    if body.get_content_subtype() == "html":
        return html_to_text(text)
    return text.replace("\r\n", "\n")


def _attachments(message: EmailMessage) -> list[Attachment]:
    body = message.get_body(preferencelist=("plain", "html"))
    found: list[Attachment] = []
    for part in message.walk():
        if part is body or part.is_multipart():
            continue
        filename = part.get_filename()
        if part.get_content_disposition() != "attachment" and not filename:
            continue  # an alternative body or an unnamed inline part
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            data = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        else:
            data = part.get_payload(decode=True) or b""
        if not filename:
            extension = mimetypes.guess_extension(content_type) or ".bin"
            filename = f"bilag-{len(found) + 1}{extension}"
        found.append(Attachment(filename=filename, content_type=content_type, data=data))
    return found


def sender_address(message: Message) -> str | None:
    """The From address, lower-cased; None when there is no usable one."""
    raw = message.get("From")
    if raw is None:
        return None
    try:
        addresses = getattr(raw, "addresses", None)
        if addresses:
            address = addresses[0].addr_spec
        else:
            address = parseaddr(str(raw))[1]
    except (IndexError, ValueError):
        address = parseaddr(str(raw))[1]
    address = address.strip().lower()
    return address if "@" in address else None


def read_headers(raw: bytes) -> EmailMessage:
    """The message's headers only (for mails too large to parse)."""
    return BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse a raw RFC 822 message into the template's fields, problems and attachments."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    text = body_text(message)
    fields, problems = parse_template(text)
    return ParsedMail(
        message_id=message_key(message.get("Message-ID"), raw),
        sender=sender_address(message),
        subject=str(message.get("Subject", "") or ""),
        text=text,
        fields=fields,
        problems=problems,
        attachments=_attachments(message),
    )

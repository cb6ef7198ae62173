"""Mails as municipalities send them, built with the stdlib ``email`` package."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

AARHUS = "sor@aarhus.dk"  # registered for 0751 Aarhus by the tests
_counter = itertools.count(1)

TEMPLATE_FIELDS = {
    "Ansøgning": "ny",
    "Institutionens navn": "Plejecenter Åbo",
    "Adresse": "Søndergade 12",
    "Postnummer": "8000",
    "By": "Aarhus C",
    "Telefon": "87 12 34 56",
    "Fax": "",
    "E-mail": "aabo@aarhus.dk",
    "Hjemmeside": "https://aarhus.dk/aabo",
    "Institutionstype": "plejehjem",
    "Ejerforhold": "kommunal",
    "CVR": "",
    "Ydernummer": "",
    "SOR-kode": "",
    "Lukkedato": "",
    "Bemærkninger": "Åbner 1. marts.\nTo afdelinger: Æblehaven og Ørnereden.",
}

EXPECTED_FIELDS = {
    "kind": "new",
    "institution_name": "Plejecenter Åbo",
    "address": {"street": "Søndergade 12", "postal_code": "8000", "city": "Aarhus C"},
    "phone": "87 12 34 56",
    "email": "aabo@aarhus.dk",
    "website": "https://aarhus.dk/aabo",
    "institution_type": "42665001",
    "ownership": "kommunal",
    "remarks": "Åbner 1. marts.\nTo afdelinger: Æblehaven og Ørnereden.",
}


def template_text(**changes: str) -> str:
    """The template filled in, with *changes* (label -> value) applied."""
    values = {**TEMPLATE_FIELDS, **{k.replace("_", " "): v for k, v in changes.items()}}
    lines = [f"{label}: {value}" for label, value in values.items()]
    return (
        "Hej SOR\n\nHermed ansøgning om SOR-kode.\n\n" + "\n".join(lines)
        + "\n\nMed venlig hilsen\nKirsten Ølgaard\nAarhus Kommune\nTlf. 89 40 20 00\n"
    )


def mail(
    body: str,
    *,
    sender: str = AARHUS,
    subject: str = "Ansøgning om SOR-kode",
    charset: str = "utf-8",
    cte: str = "quoted-printable",
    subtype: str = "plain",
    message_id: str | None = "auto",
    attachments: list[tuple[str, str, bytes]] = (),
) -> bytes:
    """A mail as bytes; ``message_id=None`` leaves the header out."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = f"Kirsten Ølgaard <{sender}>"
    message["To"] = "SOR <sor@sundhedsdata.dk>"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 11, 22, 12, next(_counter) % 60, tzinfo=UTC))
    if message_id == "auto":
        message_id = make_msgid(f"t{next(_counter)}", domain="aarhus.dk")
    if message_id is not None:
        message["Message-ID"] = message_id
    message.set_content(body, subtype=subtype, charset=charset, cte=cte)
    for filename, content_type, data in attachments:
        maintype, subtype_ = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype_, filename=filename)
    return message.as_bytes()


def html_template(**changes: str) -> str:
    values = {**TEMPLATE_FIELDS, **changes}
    rows = "".join(
        f"<tr><td><b>{label}:</b></td><td>{value.replace(chr(10), '<br>')}</td></tr>"
        for label, value in values.items()
    )
    return (
        "<html><head><style>td {font-family: Calibri}</style></head><body>"
        "<p>Hej SOR</p><p>Hermed ans&oslash;gning.</p>"
        f"<table>{rows}</table>"
        "<p>Med venlig hilsen<br>Kirsten &Oslash;lgaard</p>"
        "<div style='border-top:solid'><p><b>Fra:</b> SOR</p></div>"
        "<blockquote><p>Ans&oslash;gning: &aelig;ndring</p>"
        "<p>Institutionens navn: Forkert</p></blockquote>"
        "</body></html>"
    )


FREE_FORM = (
    "Hej,\n\nvi vil gerne have en SOR-kode til vores nye plejehjem på Søndergade 12 "
    "i Aarhus. Kan I hjælpe?\n\nMed venlig hilsen\nKirsten Ølgaard\nTlf: 89 40 20 00\n"
)

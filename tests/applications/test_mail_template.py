"""The template parser: what municipalities really send, read into the service's fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from applications.mail_headers import message_key
from applications.mail_message import html_to_text, parse_mail
from applications.mail_template import TEMPLATE, institution_type_code, parse_template
from tests.applications.messages import (
    EXPECTED_FIELDS,
    FREE_FORM,
    html_template,
    mail,
    template_text,
)

PDF = b"%PDF-1.4\n% fake but bytes are bytes\n\xff\xfe\x00\x01"


def test_template_in_quoted_printable_utf8():
    raw = mail(template_text(), cte="quoted-printable")
    assert b"=C3=85bo" in raw  # "Åbo", really quoted-printable
    parsed = parse_mail(raw)
    assert parsed.readable, parsed.problems
    assert parsed.fields == EXPECTED_FIELDS
    assert parsed.sender == "sor@aarhus.dk"
    assert parsed.message_id.endswith("@aarhus.dk>")


def test_template_in_base64():
    parsed = parse_mail(mail(template_text(), cte="base64"))
    assert parsed.fields == EXPECTED_FIELDS


def test_iso_8859_1_with_windows_1252_characters():
    # Windows mail programs label windows-1252 as ISO-8859-1: the dash is 0x96.
    body = template_text(Bemærkninger="Åbner 1. marts – før jul.")
    raw = mail(body.replace("–", "-"), charset="iso-8859-1", cte="8bit")
    raw = raw.replace(b"1. marts - f", b"1. marts \x96 f")
    assert b"\xc5bo" in raw  # "Åbo" in Latin-1 bytes
    parsed = parse_mail(raw)
    assert parsed.fields["institution_name"] == "Plejecenter Åbo"
    assert parsed.fields["remarks"] == "Åbner 1. marts – før jul."


def test_html_only_mail_with_table_signature_and_quoted_reply():
    raw = mail(html_template(), subtype="html")
    parsed = parse_mail(raw)
    assert parsed.readable, parsed.problems
    assert parsed.fields == EXPECTED_FIELDS  # not the quoted "Forkert" below the reply line


def test_attachments_kept_with_danish_file_names():
    raw = mail(
        template_text(),
        attachments=[("Plantegning Åbo.pdf", "application/pdf", PDF),
                     ("bilag.txt", "text/plain", "Ærø\n".encode())],
    )
    parsed = parse_mail(raw)
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("Plantegning Åbo.pdf", "application/pdf"),
        ("bilag.txt", "text/plain"),
    ]
    assert parsed.attachments[0].data == PDF
    assert parsed.attachments[1].data == "Ærø\n".encode()
    assert parsed.fields == EXPECTED_FIELDS


def test_label_variants_and_synonyms():
    text = """Ansøgning : Ny institution
NAVN:Fysioterapi Søndergade
adresse:   Søndergade  14
Postnr.: DK-8000 Aarhus C
Tlf. nr.: +45 87 12 34 56
Telefax: -
Mail: info@fysio.dk <mailto:info@fysio.dk>
Web: https://fysio.dk <https://fysio.dk>
Type: Fysioterapiklinik
Ejer: Privat (kommunal | privat)
CVR-nr.: DK 55 13 30 18
Ydernr: 19 062
Kontakt e-mail: Kirsten@Aarhus.dk
"""
    fields, problems = parse_template(text)
    assert problems == []
    assert fields == {
        "kind": "new",
        "institution_name": "Fysioterapi Søndergade",
        "address": {"street": "Søndergade 14", "postal_code": "8000", "city": "Aarhus C"},
        "phone": "+45 87 12 34 56",
        "email": "info@fysio.dk",
        "website": "https://fysio.dk",
        "institution_type": "547011000005103",
        "ownership": "privat",
        "owner_cvr": "55133018",
        "ydernummer": "19062",
        "contact_email": "kirsten@aarhus.dk",
    }


@pytest.mark.parametrize(
    "written, iso",
    [("31-12-2026", "2026-12-31"), ("1.3.2027", "2027-03-01"), ("01/03/2027", "2027-03-01"),
     ("2027-03-01", "2027-03-01"), ("1. marts 2027", "2027-03-01"),
     ("d. 1. jan 2027", "2027-01-01"), ("31-02-2027", "31-02-2027"), ("snart", "snart")],
)
def test_change_with_closing_date_normalised(written, iso):
    fields, problems = parse_template(
        f"Ansøgning: ændring\nNavn: Genoptræning Nord\nSOR-kode: 1234 5678 1000016003\n"
        f"Lukkedato: {written}\n"
    )
    assert problems == []
    assert fields["kind"] == "change"
    assert fields["target_sor_code"] == "123456781000016003"
    assert fields["closing_date"] == iso  # what cannot be read is left for the service


def test_remarks_run_over_lines_until_the_signature():
    fields, _ = parse_template(
        "Ansøgning: ny\nNavn: X\nBemærkninger: linje 1\nlinje 2\n\nlinje 3\n\n"
        "Mvh\nJens\nTlf: 1234\n"
    )
    assert fields["remarks"] == "linje 1\nlinje 2\n\nlinje 3"
    assert "phone" not in fields


def test_quoted_reply_below_is_ignored():
    text = (
        "Ansøgning: ny\nNavn: Sundhedscenter Vest\nType: sundhedscenter\n\n"
        "Den 20. nov. 2026 kl. 10.12 skrev SOR <sor@sds.dk>:\n"
        "> Ansøgning: ændring\n> Navn: Gammel\n> Telefon: 1\n"
    )
    fields, problems = parse_template(text)
    assert problems == []
    assert fields == {"kind": "new", "institution_name": "Sundhedscenter Vest",
                      "institution_type": "264361005"}


def test_a_quoted_template_alone_is_not_an_application():
    _, problems = parse_template("Se nedenfor\n\n> Ansøgning: ny\n> Navn: Gammel\n")
    assert problems


def test_free_form_mail_is_not_readable():
    parsed = parse_mail(mail(FREE_FORM))
    assert not parsed.readable
    assert len(parsed.problems) == 1
    assert "does not follow the template" in parsed.problems[0]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("Navn: X\nTelefon: 1\n", "'Ansøgning' (ny or ændring) is missing"),
        ("Ansøgning: måske\nNavn: X\n", "'Ansøgning: måske' is neither 'ny' nor 'ændring'"),
        ("Ansøgning: ny\nTelefon: 1\n", "'Institutionens navn' is missing"),
        ("Ansøgning:\nNavn:\n", "the mail does not follow the template"),
    ],
)
def test_problems_say_why(text, problem):
    _, problems = parse_template(text)
    assert any(found.startswith(problem) for found in problems), problems


@pytest.mark.parametrize(
    "value, code",
    [("42665001", "42665001"), ("Plejehjem", "42665001"), ("genoptræningsenhed",
     "546811000005109"), ("Genoptræningscenter", "546811000005109"),
     ("plejehjem (42665001)", "42665001"), ("sundhedscenter", "264361005"),
     ("ergoterapiklinik", "546821000005103"), ("rumstation", "rumstation")],
)
def test_institution_types_from_codes_or_danish_names(value, code):
    assert institution_type_code(value) == code


def test_message_key_falls_back_to_a_digest_of_the_bytes():
    raw = mail("Ansøgning: ny\nNavn: X\n", message_id=None)
    parsed = parse_mail(raw)
    assert parsed.message_id.startswith("sha256:") and len(parsed.message_id) == 71
    assert parse_mail(raw).message_id == parsed.message_id
    assert message_key("  <a@b>  ", b"") == "<a@b>"
    assert message_key("<" + "x" * 300 + "@b>", b"").startswith("sha256-id:")


def test_html_to_text_blocks_cells_entities():
    text = html_to_text(
        "<div>Ans&oslash;gning: ny</div><script>x=1</script>"
        "<table><tr><td>Navn</td><td>&AElig;blehaven&nbsp;Syd</td></tr></table>a<br>b"
    )
    assert text == "Ansøgning: ny\n\nNavn\tÆblehaven Syd\n\na\nb"
    fields, problems = parse_template(text)
    assert fields == {"kind": "new", "institution_name": "Æblehaven Syd"} and not problems


def test_a_remark_line_that_looks_like_a_used_label_stays_in_the_remarks():
    fields, _ = parse_template(
        "Ansøgning: ny\nNavn: X\nBemærkninger: flytter fra\nNavn: Gammelt navn\nslut\n"
    )
    assert fields["institution_name"] == "X"
    assert fields["remarks"] == "flytter fra\nNavn: Gammelt navn\nslut"


def test_the_readme_example_is_the_template_and_reads_in_full():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Emailed applications", 1)[1]
    example = section.split("```\n", 2)[1]
    labels = [line.split(":")[0] for line in example.splitlines() if ":" in line]
    assert labels == [line.split(":")[0] for line in TEMPLATE.splitlines()]
    fields, problems = parse_template(example)
    assert problems == []
    assert fields == {
        "kind": "new",
        "institution_name": "Plejecenter Åbo",
        "address": {"street": "Søndergade 12", "postal_code": "8000", "city": "Aarhus C"},
        "phone": "87 12 34 56",
        "email": "aabo@aarhus.dk",
        "website": "https://aarhus.dk/aabo",
        "institution_type": "42665001",
        "ownership": "kommunal",
        "remarks": "Åbner 1. marts 2027 med to afdelinger,\nÆblehaven og Ørnereden.",
    }

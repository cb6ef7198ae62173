"""CSV export: header, BOM, one row per organisation with its effective values and what it
inherits, Excel-safe codes, values Excel would run as formulas defused, the trailer."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from hierarchy.export.csv_format import HEADER, csv_chunks, read_trailer, write_csv
from hierarchy.models import Organisation, table_of
from hierarchy.sor_import import import_sor_file
from tests.conftest import fixture_path
from tests.hierarchy.sor_documents import export_info, register_rows

INFO = export_info(77, "p 77;x", datetime(2024, 5, 1, 2, 0, tzinfo=UTC))
PRAKSIS_OE = "8341000016002"


def _export(session: Any, excel_safe: bool = False) -> bytes:
    out = io.BytesIO()
    write_csv(register_rows(session), out, INFO, excel_safe=excel_safe)
    return out.getvalue()


def _parse(data: bytes) -> tuple[list[str], list[dict[str, str]], str]:
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[-1] == ""
    rows = list(csv.reader(lines[:-2], delimiter=";"))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]], lines[-2]


def _import(session: Any) -> None:
    for name in ("ONE_PRAKSIS.xml", "Sor_small.xml", "ONE_SYGEHUS.xml"):
        import_sor_file(session, fixture_path(name), actor="test")


def test_one_row_per_organisation_with_its_effective_values(session):
    _import(session)
    header, rows, trailer = _parse(_export(session))
    assert tuple(header) == HEADER
    count = session.execute(select(func.count()).select_from(Organisation)).scalar_one()
    assert len(rows) == count == 10
    assert len({row["sor_code"] for row in rows}) == count
    unit = next(row for row in rows if row["sor_code"] == PRAKSIS_OE)
    # The GP unit states none of these itself: they come from its owner.
    assert unit["street"] == "Vesterbrogade 21" and unit["postal_code"] == "3250"
    assert unit["phone"] == "48300204" and unit["fax"] == "48300109"
    assert unit["gln"] == "5790000141227"
    assert set(unit["inherited"].split()) == {"postal_address", "phone", "fax", "gln"}
    assert unit["ydernummer"] == "019062"
    assert unit["level"] == "OE" and unit["ownership"] == "privat"
    assert unit["owner_sor_code"] == "8321000016007"
    assert unit["institution_sor_code"] == "8331000016009"
    assert unit["clinical_specialities"] == "408443003"
    owner = next(row for row in rows if row["sor_code"] == "698471000016005")
    assert owner["inherited"] == "" and owner["cvr"] == "35095748"
    assert owner["municipality_code"] == "0810"
    assert owner["entity_type_name"]  # the owner type's Danish name
    assert owner["valid_from"] == "2018-07-25"


def test_excel_safe_keeps_codes_as_text(session):
    _import(session)
    data = _export(session, excel_safe=True)
    _, rows, _ = _parse(data)
    unit = next(row for row in rows if row["sor_code"] == f'="{PRAKSIS_OE}"')
    assert unit["ydernummer"] == '="019062"'
    assert unit["parent_sor_code"] == '="8331000016009"'
    assert unit["name"] == "Michael Filtenborg"  # text stays text
    owner = next(row for row in rows if row["sor_code"] == '="698471000016005"')
    assert owner["municipality_code"] == '="0810"'
    assert owner["cvr"] == '="35095748"'
    # As the file reads in a text editor: the formula quoted for CSV.
    assert b'"=""019062"""' in data


def test_the_trailer_names_the_feed_position_and_the_row_count(session):
    _import(session)
    _, rows, last = _parse(_export(session))
    trailer = read_trailer(last)
    assert trailer["feed-position"] == "77"
    assert trailer["feed-cursor"] == "p%2077%3Bx"
    assert trailer["snapshot-date"] == "2024-05-01"
    assert trailer["rows"] == str(len(rows))


def _row(**values: Any) -> dict[str, Any]:
    row = {column.name: None for column in table_of(Organisation).columns}
    row.update(sor_code="1000016001", level="IE", name="Klinik", effective={}, inherited=[])
    row.update(values)
    return row


def test_values_excel_would_run_as_formulas_are_defused():
    hostile = '=HYPERLINK("http://example.invalid","klik")'
    rows = [_row(name=hostile, effective={"email": "@SUM(1)", "phone": "+4512345678",
                                          "website": "-2+3"}),
            _row(sor_code='1000016001"&X', name="Plejehjemmet Æblehaven")]
    for excel_safe in (False, True):
        data = b"".join(csv_chunks(rows, INFO, excel_safe=excel_safe))
        _, parsed, _ = _parse(data)
        assert parsed[0]["name"] == "'" + hostile
        assert parsed[0]["email"] == "'@SUM(1)" and parsed[0]["website"] == "'-2+3"
        assert parsed[1]["name"] == "Plejehjemmet Æblehaven"
        if excel_safe:
            assert parsed[0]["phone"] == '="+4512345678"'
            assert parsed[1]["sor_code"] == '="1000016001""&X"'  # stays inside the string
        else:
            assert parsed[0]["phone"] == "'+4512345678"


def test_an_empty_register_is_a_header_and_a_trailer():
    header, rows, last = _parse(b"".join(csv_chunks([], INFO)))
    assert tuple(header) == HEADER and rows == []
    assert read_trailer(last)["rows"] == "0"

"""The SHAK register file parser, on real records cut from the SKS file."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from hierarchy.shak_format import (
    RECORD_LENGTH,
    ShakFormatError,
    ShakRecord,
    parse_shak,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shak_sample.TXT"
# The full register lives beside the repository (../shared); a fresh clone has none.
SHARED_SHAK = Path(__file__).resolve().parents[3] / "shared" / "data" / "sor" / "shak"
FULL_FILE = SHARED_SHAK / "SHAKCOMPLETE.TXT"
FULL_CSV = SHARED_SHAK / "shak_codes.csv"


@pytest.fixture(scope="module")
def sample_bytes() -> bytes:
    return FIXTURE.read_bytes()


@pytest.fixture(scope="module")
def sample(sample_bytes: bytes) -> list[ShakRecord]:
    return list(parse_shak(io.BytesIO(sample_bytes)))


def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def parse_lines(lines: list[bytes], end: bytes = b"\n") -> list[ShakRecord]:
    return list(parse_shak(io.BytesIO(b"".join(line + end for line in lines))))


def replace_columns(line: bytes, start: int, value: bytes) -> bytes:
    """Overwrite 1-based columns from *start* with *value*, keeping the length."""
    return line[: start - 1] + value + line[start - 1 + len(value) :]


def by_code(records: list[ShakRecord], code: str) -> list[ShakRecord]:
    return [r for r in records if r.code == code]


# -- the sample -----------------------------------------------------------------------------


def test_fixture_is_real_fixed_width_iso_8859_1(sample_bytes: bytes) -> None:
    lines = lines_of(sample_bytes)
    assert len(lines) == 58
    assert {len(line) for line in lines} == {RECORD_LENGTH}
    assert "Øjenklinik".encode("iso-8859-1") in sample_bytes
    assert "Øjenklinik".encode() not in sample_bytes


def test_sample_parses_every_record_with_its_line(sample: list[ShakRecord]) -> None:
    assert [r.line for r in sample] == list(range(1, 59))
    assert Counter(r.kind for r in sample) == {"hospital": 12, "department": 3, "section": 43}
    assert Counter(r.record_type for r in sample) == {"sgh": 12, "afd": 46}
    for record in sample:
        assert (record.record_type == "sgh") == (record.kind == "hospital")


def test_first_record_is_rigshospitalet(sample: list[ShakRecord]) -> None:
    assert sample[0] == ShakRecord(
        line=1,
        record_type="sgh",
        code="1301",
        valid_from=date(1976, 4, 1),
        changed=date(2002, 6, 27),
        valid_to=None,
        text="Rigshospitalet",
        agrp="101",
        bgrp="1",
        cgrp=None,
        dgrp=None,
        egrp="SKS",
        dval="3",
    )


def test_hospital_department_and_section(sample: list[ShakRecord]) -> None:
    (hospital,) = by_code(sample, "2529")
    (department,) = by_code(sample, "252901")
    (section,) = by_code(sample, "2529010")
    assert (hospital.kind, department.kind, section.kind) == ("hospital", "department", "section")
    assert hospital.text == "Roskilde Øjenklinik"
    assert (hospital.agrp, hospital.bgrp) == ("161", "2")  # institutionsart, ejerforhold
    assert department.text == "Roskilde Øjenklinik, afdeling"
    assert department.agrp is None
    assert section.agrp == "044"  # main speciality: oftalmologi
    assert {r.valid_from for r in (hospital, department, section)} == {date(2009, 8, 1)}
    assert {r.valid_to for r in (hospital, department, section)} == {None}


def test_letters_in_codes(sample: list[ShakRecord]) -> None:
    assert by_code(sample, "1500A1")[0].kind == "department"
    assert by_code(sample, "1500A1A")[0].kind == "section"
    assert by_code(sample, "660001F")[0].kind == "section"


def test_history_of_a_section(sample: list[ShakRecord]) -> None:
    history = by_code(sample, "1301011")
    assert [(r.valid_from, r.valid_to) for r in history] == [
        (date(1979, 1, 1), date(1982, 12, 31)),
        (date(1983, 1, 1), date(1994, 12, 31)),
        (date(1995, 1, 1), date(1999, 12, 31)),
        (date(2000, 1, 1), date(2003, 12, 31)),
        (date(2004, 1, 1), None),
    ]
    assert [r.text for r in history][0] == "ANÆSTHESIAFD. AN"
    assert [r.text for r in history][-1] == "Anæstesi-/operationsklinik, ABD"
    assert [r.dval for r in history] == [None, None, "3", "3", "1"]
    assert [r.egrp for r in history] == [None, None, "SKS", "SKS", "SKS"]


def test_history_of_a_hospital(sample: list[ShakRecord]) -> None:
    history = by_code(sample, "1304")
    assert [r.agrp for r in history] == ["106", "121", "122"]
    assert all(r.text == "KØBENHAVN, ØRESUNDSHOSPITALET" for r in history)
    assert history[-1].valid_to == date(1987, 12, 30)


def test_specialities_of_a_section(sample: list[ShakRecord]) -> None:
    (record,) = by_code(sample, "135109U")
    assert (record.agrp, record.bgrp, record.cgrp, record.dgrp) == ("002", "006", "012", "020")


def test_danish_letters_are_decoded(sample: list[ShakRecord]) -> None:
    texts = {r.text for r in sample}
    assert "ÅBENRÅ, SCT. ANSGAR HOSPITAL" in texts
    assert "Anæstesi-/operationsklinik, opvågningsafsnit, ABD" in texts
    assert "Færøsk sygehusafdeling" in texts


def test_windows_1252_dash_comes_through_as_iso_8859_1(sample: list[ShakRecord]) -> None:
    # The file holds byte 0x96 (an en dash in Windows-1252) in a few names; read as
    # ISO-8859-1, as the format says, it is the C1 control U+0096.
    (record,) = by_code(sample, "660001F")
    assert record.text == "PVE Klinik for traumatiserede flygtninge \x96 Herning"


def test_obligatory_fields_left_blank_in_real_data(sample: list[ShakRecord]) -> None:
    # Real records with no name at all, and hospitals without an institutionsart.
    (nameless,) = by_code(sample, "1301352")
    assert nameless.text == ""
    assert nameless.agrp is None
    (hospital,) = by_code(sample, "1313")
    assert hospital.agrp is None and hospital.bgrp is None


def test_records_are_frozen(sample: list[ShakRecord]) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample[0].code = "9999"  # type: ignore[misc]
    assert not hasattr(sample[0], "__dict__")


def test_kind_of_a_hand_made_record_with_a_bad_code(sample: list[ShakRecord]) -> None:
    record = dataclasses.replace(sample[0], code="13O1")
    with pytest.raises(ValueError, match="'13O1' is not a SHAK code"):
        _ = record.kind


# -- line ends and blank lines ----------------------------------------------------------------


def test_crlf_line_ends(sample_bytes: bytes, sample: list[ShakRecord]) -> None:
    assert parse_lines(lines_of(sample_bytes), end=b"\r\n") == sample


def test_last_line_without_line_end(sample_bytes: bytes, sample: list[ShakRecord]) -> None:
    assert list(parse_shak(io.BytesIO(sample_bytes.removesuffix(b"\n")))) == sample


def test_trailing_blank_lines_are_fine(sample_bytes: bytes, sample: list[ShakRecord]) -> None:
    data = sample_bytes + b"\n\r\n" + b" " * RECORD_LENGTH + b"\n\x1a"
    assert list(parse_shak(io.BytesIO(data))) == sample


def test_empty_file() -> None:
    assert list(parse_shak(io.BytesIO(b""))) == []


def test_blank_line_between_records(sample_bytes: bytes) -> None:
    lines = lines_of(sample_bytes)
    with pytest.raises(ShakFormatError, match="line 4: blank line between records") as info:
        parse_lines(lines[:3] + [b"", b""] + lines[3:])
    assert info.value.line == 4


# -- errors -------------------------------------------------------------------------------------


def test_error_is_a_value_error_with_line_and_reason() -> None:
    error = ShakFormatError(7, "something is wrong")
    assert isinstance(error, ValueError)
    assert (error.line, error.reason) == (7, "something is wrong")
    assert str(error) == "SHAK file line 7: something is wrong"


def test_truncated_record(sample_bytes: bytes) -> None:
    lines = lines_of(sample_bytes)
    lines[2] = lines[2][:-1]
    with pytest.raises(ShakFormatError) as info:
        parse_lines(lines)
    assert info.value.line == 3
    assert str(info.value) == "SHAK file line 3: record has 213 characters, expected 214"


def test_record_too_long(sample_bytes: bytes) -> None:
    lines = lines_of(sample_bytes)
    lines[4] += b"  "
    with pytest.raises(ShakFormatError, match="line 5: record has 216 characters") as info:
        parse_lines(lines)
    assert info.value.line == 5


def test_line_far_too_long_is_not_read_whole(sample_bytes: bytes) -> None:
    lines = lines_of(sample_bytes)
    lines[1] += b" " * 100_000
    with pytest.raises(ShakFormatError, match="line 2: record is longer than 214") as info:
        parse_lines(lines)
    assert info.value.line == 2


def test_length_counts_characters_not_utf8_bytes(sample_bytes: bytes) -> None:
    # A file re-saved as UTF-8 grows by a byte per Danish letter.
    line = sample_bytes.decode("iso-8859-1").splitlines()[1].encode()
    with pytest.raises(ShakFormatError, match="line 1: record has 215 characters"):
        parse_lines([line])


def test_unknown_record_type(sample_bytes: bytes) -> None:
    lines = lines_of(sample_bytes)
    lines[5] = replace_columns(lines[5], 1, b"xyz")
    with pytest.raises(ShakFormatError) as info:
        parse_lines(lines)
    assert info.value.line == 6
    assert str(info.value) == (
        "SHAK file line 6: unknown record type 'xyz' (expected 'sgh' or 'afd')"
    )


@pytest.mark.parametrize(
    ("start", "value", "message"),
    [
        (24, b"20091301", "DatoFra (columns 24-31) '20091301' is not a valid date"),
        (24, b"2009-1-1", "DatoFra (columns 24-31) '2009-1-1' is not a date in the form YYYYMMDD"),
        (24, b"        ", "DatoFra (columns 24-31) is blank"),
        (32, b"20110230", "DatoÆndring (columns 32-39) '20110230' is not a valid date"),
        (40, b"2500010X", "DatoTil (columns 40-47) '2500010X' is not a date"),
        (40, b"        ", "DatoTil (columns 40-47) is blank"),
    ],
)
def test_bad_dates(sample_bytes: bytes, start: int, value: bytes, message: str) -> None:
    lines = lines_of(sample_bytes)
    lines[9] = replace_columns(lines[9], start, value)
    with pytest.raises(ShakFormatError, match=f"^SHAK file line 10: {re.escape(message)}") as info:
        parse_lines(lines)
    assert info.value.line == 10


def test_blank_change_date_is_allowed(sample_bytes: bytes) -> None:
    line = replace_columns(lines_of(sample_bytes)[0], 32, b" " * 8)
    (record,) = parse_lines([line])
    assert record.changed is None
    assert record.valid_from == date(1976, 4, 1)


@pytest.mark.parametrize(
    ("line_no", "code", "message"),
    [
        (1, b"130101", "code '130101' (columns 4-23) is not a hospital code"),
        (2, b"1301  ", "code '1301' (columns 4-23) is not a department or section code"),
        (3, b"13O1010", "code '13O1010' (columns 4-23) is not a department or section code"),
        (3, b"130101a", "code '130101a' (columns 4-23) is not a department or section code"),
        (3, b" 130101", "code '130101' (columns 4-23) is not a department or section code"),
        (3, b"13010101", "code '13010101' (columns 4-23) is not a department or section code"),
    ],
)
def test_code_must_match_its_record_type(
    sample_bytes: bytes, line_no: int, code: bytes, message: str
) -> None:
    lines = lines_of(sample_bytes)
    lines[line_no - 1] = replace_columns(lines[line_no - 1], 4, code)
    with pytest.raises(
        ShakFormatError, match=f"^SHAK file line {line_no}: {re.escape(message)}"
    ) as info:
        parse_lines(lines)
    assert info.value.line == line_no


def test_records_before_the_bad_one_are_yielded(sample_bytes: bytes) -> None:
    # Streaming: the error comes when the parser reaches the bad line, not before.
    records = parse_shak(io.BytesIO(sample_bytes + b"garbage\n"))
    assert isinstance(records, Iterator)
    seen = []
    with pytest.raises(ShakFormatError) as info:
        for record in records:
            seen.append(record)
    assert len(seen) == 58
    assert info.value.line == 59


# -- the full register --------------------------------------------------------------------------


def _csv_view(record: ShakRecord) -> dict[str, str]:
    """The record as shak_codes.csv writes it."""

    def day(value: date | None, default: str = "") -> str:
        return value.strftime("%Y%m%d") if value else default

    return {
        "record_type": record.record_type,
        "shak_code": record.code,
        "valid_from": day(record.valid_from),
        "changed": day(record.changed),
        "valid_to": day(record.valid_to, "25000101"),
        "text": record.text,
        "agrp": record.agrp or "",
        "bgrp": record.bgrp or "",
        "cgrp": record.cgrp or "",
        "dgrp": record.dgrp or "",
        "egrp": record.egrp or "",
        "dval": record.dval or "",
    }


@pytest.mark.skipif(
    not (FULL_FILE.is_file() and FULL_CSV.is_file()),
    reason="the full SHAK register (../shared/data/sor/shak) is not here",
)
def test_full_register_agrees_with_the_csv_parse() -> None:
    with FULL_FILE.open("rb") as stream, FULL_CSV.open(encoding="utf-8", newline="") as rows:
        count = 0
        kinds: Counter[str] = Counter()
        for count, (record, row) in enumerate(
            zip(parse_shak(stream), csv.DictReader(rows), strict=True), start=1
        ):
            assert record.line == count
            assert _csv_view(record) == row, f"line {record.line}"
            kinds[record.kind] += 1
    assert count == 19_428
    assert kinds == {"hospital": 1_017, "department": 1_899, "section": 16_512}

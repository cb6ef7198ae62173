"""A streaming parser of the SHAK register file (SKS ``SHAKCOMPLETE.TXT``).

SHAK (sygehus-afdelingskode) is the hospital / department / section classification of
SKS. The file is fixed width, ISO-8859-1, one 214-character record a line (CRLF or LF),
holding every version of every code (history included). Layout, from
``sks_shak_record_format.pdf`` (1-based columns, the same for every record type)::

    field        cols      width  use
    RecArt         1-3       3    "sgh" (hospital) or "afd" (department or section)
    SKSkode        4-23     20    the code, left-aligned
    DatoFra       24-31      8    valid from, YYYYMMDD
    DatoÆndring   32-39      8    created / last changed, YYYYMMDD
    DatoTil       40-47      8    valid to, YYYYMMDD; 25000101 = open
    Kodetekst     48-167   120    the name (at most 60 used)
    AGrp         168-170     3    sgh: institutionsart; section: main speciality
    BGrp         171-173     3    sgh: ejerforhold; section: sub-speciality 1
    CGrp         174-176     3    section: sub-speciality 2
    DGrp         177-179     3    section: sub-speciality 3
    EGrp         180-182     3    "SKS" (set on newer codes only)
    AVal, BVal, CVal 183-187      not used
    DVal         188         1    "1" added, "3" overwritten, blank on older codes
    Inklusion    189-213    25    not used
    EkstraReg    214         1    not used

Pure and memory-flat: one line is read, checked and yielded at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO

from hierarchy.identifiers import shak_kind

__all__ = [
    "ENCODING",
    "OPEN_END",
    "RECORD_LENGTH",
    "RECORD_TYPES",
    "ShakFormatError",
    "ShakRecord",
    "parse_shak",
]

ENCODING = "iso-8859-1"
RECORD_LENGTH = 214
OPEN_END = "25000101"
# Record type -> the code shapes it may carry.
RECORD_TYPES: dict[str, frozenset[str]] = {
    "sgh": frozenset({"hospital"}),
    "afd": frozenset({"department", "section"}),
}
# A line longer than a record plus CRLF is read no further (keeps memory flat).
_READ_LIMIT = RECORD_LENGTH + 3


@dataclass(frozen=True, slots=True)
class ShakRecord:
    """One version of one SHAK code, as it stands on one line of the file."""

    line: int
    record_type: str
    code: str
    valid_from: date
    changed: date | None
    valid_to: date | None  # None: open (25000101 in the file)
    text: str
    agrp: str | None
    bgrp: str | None
    cgrp: str | None
    dgrp: str | None
    egrp: str | None
    dval: str | None

    @property
    def kind(self) -> str:
        """Return "hospital", "department" or "section", from the code's shape."""
        kind = shak_kind(self.code)
        if kind is None:  # only for records not made by parse_shak
            raise ValueError(f"{self.code!r} is not a SHAK code")
        return kind


class ShakFormatError(ValueError):
    """A record of the SHAK file that breaks the layout; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"SHAK file line {line}: {reason}")
        self.line = line
        self.reason = reason


def _field(record: str, start: int, end: int) -> str | None:
    """Return the 1-based, inclusive columns *start*..*end* stripped, or None if blank."""
    value = record[start - 1 : end].strip()
    return value or None


def _date(record: str, line: int, name: str, start: int, *, required: bool) -> date | None:
    """Parse the YYYYMMDD date at 1-based column *start*; blank gives None unless required."""
    raw = record[start - 1 : start + 7]
    where = f"{name} (columns {start}-{start + 7})"
    if not raw.strip():
        if required:
            raise ShakFormatError(line, f"{where} is blank")
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ShakFormatError(line, f"{where} {raw!r} is not a date in the form YYYYMMDD")
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError as exc:
        raise ShakFormatError(line, f"{where} {raw!r} is not a valid date ({exc})") from None


def _parse_record(record: str, line: int) -> ShakRecord:
    """Check one decoded 214-character record and turn it into a ShakRecord."""
    record_type = record[0:3]
    allowed = RECORD_TYPES.get(record_type)
    if allowed is None:
        expected = " or ".join(repr(t) for t in RECORD_TYPES)
        raise ShakFormatError(line, f"unknown record type {record_type!r} (expected {expected})")

    raw_code = record[3:23]
    code = raw_code.rstrip(" ")
    kind = shak_kind(code) if code == code.strip() and code == code.upper() else None
    if kind not in allowed:
        shapes = " or ".join(sorted(allowed))
        raise ShakFormatError(
            line,
            f"code {raw_code.strip()!r} (columns 4-23) is not a {shapes} code, "
            f"as record type {record_type!r} requires",
        )

    valid_from = _date(record, line, "DatoFra", 24, required=True)
    if valid_from is None:  # unreachable: required=True raises instead
        raise ShakFormatError(line, "DatoFra (columns 24-31) is blank")
    changed = _date(record, line, "DatoÆndring", 32, required=False)
    valid_to = (
        None if record[39:47] == OPEN_END else _date(record, line, "DatoTil", 40, required=True)
    )
    return ShakRecord(
        line=line,
        record_type=record_type,
        code=code,
        valid_from=valid_from,
        changed=changed,
        valid_to=valid_to,
        text=record[47:167].strip(),
        agrp=_field(record, 168, 170),
        bgrp=_field(record, 171, 173),
        cgrp=_field(record, 174, 176),
        dgrp=_field(record, 177, 179),
        egrp=_field(record, 180, 182),
        dval=_field(record, 188, 188),
    )


def parse_shak(stream: BinaryIO) -> Iterator[ShakRecord]:
    """Yield the records of a SHAK file opened in binary mode, one line at a time.

    Raises ShakFormatError on the first bad record. Blank lines are allowed only at the
    end of the file.
    """
    line = 0
    first_blank: int | None = None
    while chunk := stream.readline(_READ_LIMIT):
        line += 1
        if not chunk.endswith(b"\n") and len(chunk) == _READ_LIMIT:
            raise ShakFormatError(line, f"record is longer than {RECORD_LENGTH} characters")
        raw = chunk.removesuffix(b"\n").removesuffix(b"\r")
        if not raw.strip(b" \t\r\x1a"):  # \x1a: a DOS end-of-file mark
            first_blank = first_blank or line
            continue
        if first_blank is not None:
            raise ShakFormatError(first_blank, "blank line between records")
        record = raw.decode(ENCODING)
        if len(record) != RECORD_LENGTH:
            raise ShakFormatError(
                line, f"record has {len(record)} characters, expected {RECORD_LENGTH}"
            )
        yield _parse_record(record, line)

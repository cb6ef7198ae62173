"""The register as CSV for people: one row per organisation, for Excel.

UTF-8 with a byte order mark (so Excel reads æ, ø and å) and semicolons between the
columns (what Excel expects in a Danish locale, where the comma is the decimal sign).
A header row names the columns (the API's field names); each row gives the
organisation's *effective* address and contact data - what it inherits from its
parents filled in - and ``inherited`` names the values that came from an ancestor
(``postal_address phone ...``, as the API's ``inherited``).

``excel_safe`` writes the codes as ``="…"``, as SDS's own files do, so that Excel keeps
them as text: leading zeros (ydernummer 019062, kommunekode 0810) and all 18 digits of
a SOR code survive. Whatever the mode, a text value that Excel would take for a formula
(beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading
apostrophe (OWASP's advice against CSV injection).

With all history (:func:`csv_history_writer`) each row is one version of an
organisation, by SOR code and version (:data:`HISTORY_COLUMNS`): the version's number,
when it was in force (``valid_from`` / ``valid_to``, valid time), when the register
recorded it and when a newer version superseded it (``recorded_at`` /
``superseded_at``, transaction time; empty: the current one), its source and reference,
then its *own* values as recorded (the addresses and contact data it states itself;
what it inherited then is not repeated per version).

The last line is a trailer naming the feed position the snapshot was taken at (the
export's one snapshot, ``hierarchy.export.snapshot``), the cursor to follow the feed from,
its date and the number of rows - a file cut short lacks it.

:func:`csv_writer` gives the export registry's writer (``(rows, write, info)``);
``hierarchy.export`` registers ``csv`` and ``csv-excel-safe``. The Excel-safe codes are a
format of their own rather than an option: a variant of the bytes is what the registry
calls a format, so ``--format``, the API's ``?format=``, the ``ETag`` (format, position,
day) and the OpenAPI description cover it with nothing added to the command or the route.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hierarchy.codes import entity_type_name
from hierarchy.export.rows import Row, mappings, write_function
from hierarchy.export.snapshot import ExportInfo, ExportRow, Write, Writer

if TYPE_CHECKING:
    from hierarchy.export.rows import Output

MEDIA_TYPE = "text/csv"
BOM = b"\xef\xbb\xbf"
DELIMITER = ";"
# Rows gathered before a chunk is handed on.
CHUNK_ROWS = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _own(column: str) -> Callable[[Row], Any]:
    return lambda row: row[column]


def _effective(name: str) -> Callable[[Row], Any]:
    return lambda row: (row["effective"] or {}).get(name)


def _address(which: str, part: str) -> Callable[[Row], Any]:
    return lambda row: ((row["effective"] or {}).get(which) or {}).get(part)


def _words(column: str) -> Callable[[Row], Any]:
    return lambda row: " ".join(row[column] or ()) or None


def _specialities(row: Row) -> str | None:
    return " ".join(item["code"] for item in row["clinical_specialities"] or ()) or None


# (header, value, is a code): the columns in order.
COLUMNS: tuple[tuple[str, Callable[[Row], Any], bool], ...] = (
    ("sor_code", _own("sor_code"), True),
    ("level", _own("level"), False),
    ("name", _own("name"), False),
    ("entity_type", _own("entity_type"), True),
    ("entity_type_name", lambda row: entity_type_name(row["entity_type"]), False),
    ("ownership", _own("ownership"), False),
    ("parent_sor_code", _own("parent_sor_code"), True),
    ("institution_sor_code", _own("institution_sor_code"), True),
    ("owner_sor_code", _own("owner_sor_code"), True),
    ("cvr", _own("owner_cvr"), True),
    ("shak", _own("shak"), True),
    ("ydernummer", _own("ydernummer"), True),
    ("gln", _effective("gln"), True),
    ("p_number", _own("p_number"), True),
    ("street", _address("postal_address", "street"), False),
    ("postal_code", _address("postal_address", "postal_code"), True),
    ("city", _address("postal_address", "city"), False),
    ("municipality_code", _address("postal_address", "municipality_code"), True),
    ("region_code", _address("postal_address", "region_code"), True),
    ("visiting_street", _address("visiting_address", "street"), False),
    ("visiting_postal_code", _address("visiting_address", "postal_code"), True),
    ("visiting_city", _address("visiting_address", "city"), False),
    ("phone", _effective("phone"), True),
    ("fax", _effective("fax"), True),
    ("email", _effective("email"), False),
    ("website", _effective("website"), False),
    ("inherited", _words("inherited"), False),
    ("clinical_specialities", _specialities, True),
    ("first_valid_from", _own("first_valid_from"), False),
    ("valid_from", _own("valid_from"), False),
    ("valid_to", _own("valid_to"), False),
    ("updated_at_source", _own("source_updated_at"), False),
    ("replaces", _words("replaces"), True),
    ("replaced_by", _words("replaced_by"), True),
)
HEADER = tuple(header for header, _, _ in COLUMNS)


def _stated(name: str) -> Callable[[Row], Any]:
    return lambda row: (row["snapshot"] or {}).get(name)


def _stated_address(which: str, part: str) -> Callable[[Row], Any]:
    return lambda row: ((row["snapshot"] or {}).get(which) or {}).get(part)


def _stated_words(name: str) -> Callable[[Row], Any]:
    return lambda row: " ".join((row["snapshot"] or {}).get(name) or ()) or None


def _stated_specialities(row: Row) -> str | None:
    stated = (row["snapshot"] or {}).get("clinical_specialities") or ()
    return " ".join(item["code"] for item in stated) or None


# An all-history row: a version of organisation_versions (hierarchy.export.snapshot).
HISTORY_COLUMNS: tuple[tuple[str, Callable[[Row], Any], bool], ...] = (
    ("sor_code", _own("sor_code"), True),
    ("version", _own("version"), False),
    ("valid_from", _stated("valid_from"), False),
    ("valid_to", _stated("valid_to"), False),
    ("recorded_at", _own("recorded_at"), False),
    ("superseded_at", _own("superseded_at"), False),
    ("source", _own("source"), False),
    ("reference", _own("reference"), False),
    ("level", _stated("level"), False),
    ("name", _stated("name"), False),
    ("entity_type", _stated("entity_type"), True),
    ("entity_type_name", lambda row: entity_type_name(_stated("entity_type")(row)), False),
    ("parent_sor_code", _stated("parent_sor_code"), True),
    ("cvr", _stated("cvr"), True),
    ("shak", _stated("shak"), True),
    ("ydernummer", _stated("ydernummer"), True),
    ("gln", _stated("gln"), True),
    ("p_number", _stated("p_number"), True),
    ("street", _stated_address("postal_address", "street"), False),
    ("postal_code", _stated_address("postal_address", "postal_code"), True),
    ("city", _stated_address("postal_address", "city"), False),
    ("municipality_code", _stated_address("postal_address", "municipality_code"), True),
    ("region_code", _stated_address("postal_address", "region_code"), True),
    ("visiting_street", _stated_address("visiting_address", "street"), False),
    ("visiting_postal_code", _stated_address("visiting_address", "postal_code"), True),
    ("visiting_city", _stated_address("visiting_address", "city"), False),
    ("phone", _stated("phone"), True),
    ("fax", _stated("fax"), True),
    ("email", _stated("email"), False),
    ("website", _stated("website"), False),
    ("clinical_specialities", _stated_specialities, True),
    ("first_valid_from", _stated("first_valid_from"), False),
    ("updated_at_source", _stated("source_updated_at"), False),
    ("replaces", _stated_words("replaces"), True),
    ("replaced_by", _stated_words("replaced_by"), True),
)
HISTORY_HEADER = tuple(header for header, _, _ in HISTORY_COLUMNS)


@dataclass(slots=True)
class CsvStats:
    rows: int = 0


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _cell(value: Any, is_code: bool, excel_safe: bool) -> str:
    text = _text(value)
    if not text:
        return text
    if is_code and excel_safe:
        return '="' + text.replace('"', '""') + '"'
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


Columns = tuple[tuple[str, Callable[[Row], Any], bool], ...]


def _cells(row: Row, excel_safe: bool, columns: Columns = COLUMNS) -> list[str]:
    return [_cell(value(row), is_code, excel_safe) for _, value, is_code in columns]


def trailer(info: ExportInfo, rows: int) -> str:
    """The last line: where in the change feed the snapshot was taken, and how many rows."""
    return (f"# feed-position={info.position} feed-cursor={quote(info.cursor, safe='')}"
            f" snapshot-date={info.snapshot_date.isoformat()}"
            f" created-at={info.taken_at.isoformat()} rows={rows}")


def csv_chunks(rows: Iterable[Row], info: ExportInfo, excel_safe: bool = False,
               stats: CsvStats | None = None, delimiter: str = DELIMITER,
               columns: Columns = COLUMNS) -> Iterator[bytes]:
    """The CSV of *rows* as successive byte chunks (for a streamed HTTP answer)."""
    stats = stats if stats is not None else CsvStats()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([header for header, _, _ in columns])
    pending = 0
    first = True
    for row in rows:
        writer.writerow(_cells(row, excel_safe, columns))
        stats.rows += 1
        pending += 1
        if pending >= CHUNK_ROWS:
            yield _take(buffer, first)
            first = False
            pending = 0
    buffer.write(trailer(info, stats.rows) + "\r\n")
    yield _take(buffer, first)


def _take(buffer: io.StringIO, first: bool) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return BOM + data if first else data


def write_csv(rows: Iterable[Row], out: Output, info: ExportInfo, excel_safe: bool = False,
              delimiter: str = DELIMITER) -> CsvStats:
    """Write *rows* to *out* as CSV; see the module's docstring."""
    write = write_function(out)
    stats = CsvStats()
    for chunk in csv_chunks(rows, info, excel_safe, stats, delimiter):
        write(chunk)
    return stats


def csv_writer(*, excel_safe: bool) -> Writer:
    """The export registry's writer of the CSV (with Excel-safe codes or not)."""

    def write_rows(rows: Iterable[ExportRow], write: Write, info: ExportInfo) -> None:
        write_csv(mappings(rows), write, info, excel_safe=excel_safe)

    return write_rows


def csv_history_writer(*, excel_safe: bool) -> Writer:
    """The export registry's writer of an all-history CSV (one row per version)."""

    def write_rows(rows: Iterable[ExportRow], write: Write, info: ExportInfo) -> None:
        for chunk in csv_chunks(mappings(rows), info, excel_safe, columns=HISTORY_COLUMNS):
            write(chunk)

    return write_rows


def read_trailer(line: str) -> Mapping[str, str]:
    """The trailer's fields, for a reader that checks a file is whole."""
    if not line.startswith("# "):
        raise ValueError("not an export trailer")
    return dict(part.split("=", 1) for part in line[2:].split())


__all__ = ["COLUMNS", "HEADER", "HISTORY_COLUMNS", "HISTORY_HEADER", "MEDIA_TYPE",
           "CsvStats", "csv_chunks", "csv_history_writer", "csv_writer", "read_trailer",
           "trailer", "write_csv"]

"""Exports of the register: each format a writer, every export one consistent snapshot
that names the feed position it was taken at.

``sorregistry export --format NAME [--on DATE] [--all-history] OUT`` (``hierarchy.export.cli``)
and ``GET /api/v1/export/register.<extension>`` (``hierarchy.export.routes``) read the
register in one snapshot (``hierarchy.export.snapshot``) and hand its rows to the
format's writer. A format is registered here, once, with :func:`register_format`:

- *name*: what ``--format`` and the API's ``format`` parameter take (``ndjson``);
- *media_type* and *extension* of the file (``register.<extension>`` over HTTP; formats
  sharing an extension are told apart by ``?format=``, the first registered by default);
- *writer*: ``(rows, write, info) -> None``, a pure function of the rows
  (:data:`~hierarchy.export.snapshot.ExportRow`), writing bytes through ``write`` and
  naming ``info.position`` / ``info.cursor`` (:class:`~hierarchy.export.snapshot.ExportInfo`)
  in the file;
- *order*: the rows' order, ``code`` (SOR code) or ``path`` (depth first, parents before
  their units: what nested formats need);
- *history_writer*: the writer of an all-history export (``--all-history``,
  ``?all_history=1``: every version, ``hierarchy.export.snapshot.Snapshot.versions``),
  for formats that carry history; the others refuse the option (422). SOR XML is one
  of them: the real v2 file (``Sor_small.xml``) and the importer hold one state per
  organisation - ``FromDate``, ``UpdatedAt``, ``FirstFromDate`` - and no element for
  earlier ones (SDS publishes history as the separate "SOR2" CSV set).

The formats (the first of an extension is its default):

========================  ==========  =====================================================
``sor-xml``               ``.xml``    SOR XML v2.0.0, as SDS publishes it (``sor_xml``)
``sor-xml-v1``            ``.xml``    SOR XML v1.0.0
``csv``                   ``.csv``    for people, in Excel (``csv_format``)
``csv-excel-safe``        ``.csv``    the same, codes as ``="…"`` so Excel keeps them whole
``ndjson``                ``.ndjson`` the API's organisation items (``ndjson``)
``fhir-ndjson``           ``.ndjson`` FHIR Organization/Location resources
                                      (``hierarchy.fhir.export``)
========================  ==========  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from hierarchy.export import csv_format, ndjson, sor_xml
from hierarchy.export.snapshot import ExportInfo, ExportRow, Order, Write, Writer
from hierarchy.fhir import export as fhir_export

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportInfo",
    "ExportRow",
    "UnknownFormat",
    "Write",
    "Writer",
    "format_for",
    "register_format",
]


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """A registered export format (see the module's text)."""

    name: str
    media_type: str
    extension: str
    writer: Writer
    order: Order = "path"
    history_writer: Writer | None = None

    @property
    def history(self) -> bool:
        """Whether it carries all history."""
        return self.history_writer is not None


FORMATS: dict[str, ExportFormat] = {}


class UnknownFormat(LookupError):
    """No export format of that name or extension."""


def register_format(name: str, media_type: str, extension: str, writer: Writer, *,
                    order: Order = "path", history_writer: Writer | None = None) -> None:
    """Make *name* an export format (the command's ``--format``, the API's files)."""
    FORMATS[name] = ExportFormat(name, media_type, extension, writer, order, history_writer)


def format_for(*, name: str | None = None, extension: str | None = None) -> ExportFormat:
    """The format named *name* (and of *extension*, when given), or the first of
    *extension*; :class:`UnknownFormat` saying what there is."""
    candidates = [f for f in FORMATS.values() if extension is None or f.extension == extension]
    if name is not None:
        candidates = [f for f in candidates if f.name == name]
    if not candidates:
        known = ", ".join(f"{f.name} (.{f.extension})" for f in FORMATS.values())
        asked = " ".join(part for part in (name and f"format {name}",
                                           extension and f"extension .{extension}") if part)
        raise UnknownFormat(f"no export in {asked}; there are: {known}")
    return candidates[0]


register_format("ndjson", ndjson.MEDIA_TYPE, "ndjson", ndjson.write_ndjson, order="code",
                history_writer=ndjson.write_ndjson_history)
register_format("fhir-ndjson", fhir_export.MEDIA_TYPE, "ndjson", fhir_export.fhir_ndjson_writer,
                order="code")
# SOR XML nests units in their parents: the rows parents first.
register_format("sor-xml", sor_xml.MEDIA_TYPE, "xml", sor_xml.sor_xml_writer("2.0.0"),
                order="path")
register_format("sor-xml-v1", sor_xml.MEDIA_TYPE, "xml", sor_xml.sor_xml_writer("1.0.0"),
                order="path")
register_format("csv", csv_format.MEDIA_TYPE, "csv", csv_format.csv_writer(excel_safe=False),
                order="path", history_writer=csv_format.csv_history_writer(excel_safe=False))
register_format("csv-excel-safe", csv_format.MEDIA_TYPE, "csv",
                csv_format.csv_writer(excel_safe=True), order="path",
                history_writer=csv_format.csv_history_writer(excel_safe=True))

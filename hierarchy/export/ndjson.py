"""NDJSON: one organisation per line, exactly as ``GET /api/v1/organisations/{code}``
shows it, after a first line that names the export and the feed position it is at.

The first line is ``{"export": "sor-register", "format": "ndjson", "position": P,
"cursor": C, "on": null | "YYYY-MM-DD", "organisations": N}``; a consumer loads the
lines after it, then follows ``/api/v1/changes?after=C``. Lines come in SOR code
order; the same register at the same position gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from hierarchy.export.snapshot import ExportInfo, ExportRow, Write
from hierarchy.schemas import organisation_item

MEDIA_TYPE = "application/x-ndjson"
_FLUSH_BYTES = 64 * 1024


def header(info: ExportInfo) -> bytes:
    """The first line."""
    return orjson.dumps({
        "export": "sor-register",
        "format": info.format,
        "position": info.position,
        "cursor": info.cursor,
        "on": info.on,
        "organisations": info.count,
    }) + b"\n"


def write_ndjson(rows: Iterable[ExportRow], write: Write, info: ExportInfo) -> None:
    """Write the export: the first line, then one organisation per line."""
    buffer = bytearray(header(info))
    for row in rows:
        buffer += orjson.dumps(organisation_item(row))
        buffer += b"\n"
        if len(buffer) >= _FLUSH_BYTES:
            write(bytes(buffer))
            buffer.clear()
    if buffer:
        write(bytes(buffer))

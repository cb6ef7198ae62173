"""NDJSON: one organisation per line, exactly as ``GET /api/v1/organisations/{code}``
shows it (a closed one naming a successor with its ``successors``, judged on the
export's day, as the change feed's items carry them), after a first line that names the
export and the feed position it is at.

The first line is ``{"export": "sor-register", "format": "ndjson", "position": P,
"cursor": C, "on": null | "YYYY-MM-DD", "organisations": N}``; a consumer loads the
lines after it, then follows ``/api/v1/changes?after=C``. Lines come in SOR code
order; the same register at the same position gives the same bytes.

With all history (:func:`write_ndjson_history`) the first line also says
``"history": true`` and ``"versions": N``, and each line after it is one version of an
organisation, by SOR code and version: ``{"sor_code", "version", "valid_from",
"valid_to", "recorded_at", "superseded_at", "source", "reference", "snapshot"}`` - when
that state was in force (valid time, from its own values), when the register recorded it
and when a newer version superseded it (transaction time; null: the current one), and
its own values as recorded (``snapshot``, as ``/api/v1/organisations/{code}/history``
shows them). Effective values are not repeated per version: they are derived from the
ancestors' versions of the same moment (``?on=`` / ``?as_recorded=`` answer them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from itertools import islice
from typing import Any

import orjson

from hierarchy.export.snapshot import ExportInfo, ExportRow, Write
from hierarchy.schemas import organisation_item, with_successors

MEDIA_TYPE = "application/x-ndjson"
_FLUSH_BYTES = 64 * 1024
_SUCCESSOR_CHUNK = 1000  # rows whose successors are looked up together


def header(info: ExportInfo) -> bytes:
    """The first line."""
    first: dict[str, Any] = {
        "export": "sor-register",
        "format": info.format,
        "position": info.position,
        "cursor": info.cursor,
        "on": info.on,
        "organisations": info.count,
    }
    if info.all_history:
        first |= {"history": True, "versions": info.versions}
    return orjson.dumps(first) + b"\n"


def write_ndjson(rows: Iterable[ExportRow], write: Write, info: ExportInfo) -> None:
    """Write the export: the first line, then one organisation per line."""
    _lines(_items(rows, info), write, info, lambda item: item)


def _items(rows: Iterable[ExportRow], info: ExportInfo) -> Iterator[dict[str, Any]]:
    """The rows as the API shows them, their successors read a chunk of rows at a time."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, _SUCCESSOR_CHUNK)):
        starts = {row.sor_code: row.replaced_by for row in chunk if row.replaced_by}
        found = info.successors(starts) if starts and info.successors else {}
        for row in chunk:
            yield with_successors(organisation_item(row), found.get(row.sor_code))


def version_line(row: ExportRow) -> dict[str, Any]:
    """One version as an all-history line shows it (see the module's text)."""
    own = row.snapshot or {}
    return {
        "sor_code": row.sor_code,
        "version": row.version,
        "valid_from": own.get("valid_from"),
        "valid_to": own.get("valid_to"),
        "recorded_at": row.recorded_at.astimezone(UTC),
        "superseded_at": row.superseded_at.astimezone(UTC) if row.superseded_at else None,
        "source": row.source,
        "reference": row.reference,
        "snapshot": own,
    }


def _lines(rows: Iterable[Any], write: Write, info: ExportInfo,
           line: Callable[[Any], Any]) -> None:
    buffer = bytearray(header(info))
    for row in rows:
        buffer += orjson.dumps(line(row))
        buffer += b"\n"
        if len(buffer) >= _FLUSH_BYTES:
            write(bytes(buffer))
            buffer.clear()
    if buffer:
        write(bytes(buffer))


def write_ndjson_history(rows: Iterable[ExportRow], write: Write, info: ExportInfo) -> None:
    """Write an all-history export: the first line, then one version per line."""
    _lines(rows, write, info, version_line)

"""The register as FHIR NDJSON (FHIR Bulk Data's shape): one resource a line.

:func:`write_ndjson` writes one stream per resource type (Bulk Data's files), from one
statement - one consistent state of the register, read in the caller's transaction.
:func:`write_rows` is the writer of the export format ``fhir-ndjson`` in the shape of the
export's format registry (issue 13, ``hierarchy.export``: a pure function of the
snapshot's rows, every column of ``organisations``, writing bytes): each unit's
Organization, then its Location where it has one, in one stream. Once the registry is on
main it is registered with one line (in ``hierarchy.export``, or ``hierarchy.fhir``'s
``init_app``)::

    register_format("fhir-ndjson", MEDIA_TYPE, "ndjson", fhir_ndjson_writer, order="code")

``GET /fhir/Organization?_format=ndjson`` streams a search's matches the same way, page by
page (``hierarchy.fhir.searching``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import IO, Any, Protocol, cast

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hierarchy.fhir.parameters import ResourceType
from hierarchy.fhir.resources import UnitRow, has_location, location, organization
from hierarchy.models import Organisation
from hierarchy.search import PAGE_COLUMNS

MEDIA_TYPE = "application/fhir+ndjson"
_BATCH = 250
_EVERY_UNIT = select(*PAGE_COLUMNS).order_by(Organisation.sor_code)


def write_ndjson(session: Session, outputs: Mapping[ResourceType, IO[bytes]],
                 day: date | None = None) -> dict[ResourceType, int]:
    """Write every unit's Organization and (where it has one) Location to the stream of its
    type in *outputs* (a type left out is not written); the number written of each.

    Closed units are written too (``active=false``): the register never forgets one. The
    rows are streamed (a server-side cursor on PostgreSQL), so memory stays flat; a batch
    is small (:data:`_BATCH`) because its rows' decoded JSON is what the garbage collector's
    young collections walk and promote (at 2,000 a batch the collections took a third of
    the export's time; at 250, a tenth), and each batch is written with one call.
    """
    day = day or date.today()
    counts: dict[ResourceType, int] = {kind: 0 for kind in outputs}
    organizations = outputs.get("Organization")
    locations = outputs.get("Location")
    result = session.execute(_EVERY_UNIT, execution_options={"yield_per": _BATCH})
    for rows in result.partitions():
        units = cast("list[UnitRow]", rows)
        if organizations is not None:
            organizations.write(b"".join([orjson.dumps(organization(unit, day)) + b"\n"
                                          for unit in units]))
            counts["Organization"] += len(units)
        if locations is not None:
            lines = [orjson.dumps(location(unit, day)) + b"\n"
                     for unit in units if has_location(unit)]
            locations.write(b"".join(lines))
            counts["Location"] += len(lines)
    return counts


class _Info(Protocol):
    """What the writer reads of the export registry's ``ExportInfo``: the day it shows."""

    @property
    def on(self) -> date | None: ...


class _SnapshotUnit:
    """A row of every column of ``organisations`` (the export's snapshot) seen as a search
    row: with ``own_address``, which the search computes (``hierarchy.search.directory``)."""

    __slots__ = ("_row", "own_address")

    def __init__(self, row: Any) -> None:
        self._row = row
        self.own_address = (row.visiting_address is not None
                            or row.postal_address is not None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


def write_rows(rows: Iterable[Any], write: Callable[[bytes], object],
               day: date | None = None) -> dict[ResourceType, int]:
    """Each row's Organization and (where it has one) Location, one a line, through
    *write*; the number written of each. *rows* carry every column of ``organisations``
    (or a search row's); closed units are written too (``active=false``)."""
    day = day or date.today()
    counts: dict[ResourceType, int] = {"Organization": 0, "Location": 0}
    lines: list[bytes] = []
    for row in rows:
        unit = cast(UnitRow, row if hasattr(row, "own_address") else _SnapshotUnit(row))
        lines.append(orjson.dumps(organization(unit, day)) + b"\n")
        counts["Organization"] += 1
        if has_location(unit):
            lines.append(orjson.dumps(location(unit, day)) + b"\n")
            counts["Location"] += 1
        if len(lines) >= _BATCH:  # one write a batch, not one a line
            write(b"".join(lines))
            lines.clear()
    if lines:
        write(b"".join(lines))
    return counts


def fhir_ndjson_writer(rows: Iterable[Any], write: Callable[[bytes], object],
                       info: _Info) -> None:
    """The export format ``fhir-ndjson``: the registry's writer (rows, write, info)."""
    write_rows(rows, write, info.on or date.today())

"""The register as FHIR NDJSON (FHIR Bulk Data's shape): one resource a line, one stream per
resource type, from one statement - one consistent state of the register, read in the
caller's transaction.

:func:`write_ndjson` is the writer of the export format ``fhir-ndjson``; the export command
(``sorregistry export --format fhir-ndjson``, issue 13's format registry) hands it the
session of its snapshot and the files to write. ``GET /fhir/Organization?_format=ndjson``
streams a search's matches the same way, page by page (``hierarchy.fhir.searching``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import IO, cast

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hierarchy.fhir.parameters import ResourceType
from hierarchy.fhir.resources import UnitRow, has_location, location, organization
from hierarchy.models import Organisation
from hierarchy.search import PAGE_COLUMNS

MEDIA_TYPE = "application/fhir+ndjson"
_BATCH = 2000
_EVERY_UNIT = select(*PAGE_COLUMNS).order_by(Organisation.sor_code)


def write_ndjson(session: Session, outputs: Mapping[ResourceType, IO[bytes]],
                 day: date | None = None) -> dict[ResourceType, int]:
    """Write every unit's Organization and (where it has one) Location to the stream of its
    type in *outputs* (a type left out is not written); the number written of each.

    Closed units are written too (``active=false``): the register never forgets one. The
    rows are streamed (a server-side cursor on PostgreSQL), so memory stays flat.
    """
    day = day or date.today()
    counts: dict[ResourceType, int] = {kind: 0 for kind in outputs}
    organizations = outputs.get("Organization")
    locations = outputs.get("Location")
    result = session.execute(_EVERY_UNIT, execution_options={"yield_per": _BATCH})
    for row in result:
        unit = cast(UnitRow, row)
        if organizations is not None:
            organizations.write(orjson.dumps(organization(unit, day)) + b"\n")
            counts["Organization"] += 1
        if locations is not None and has_location(unit):
            locations.write(orjson.dumps(location(unit, day)) + b"\n")
            counts["Location"] += 1
    return counts

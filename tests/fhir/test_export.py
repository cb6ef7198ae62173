"""The register as FHIR NDJSON (the export format fhir-ndjson): every unit's Organization,
every Location, one valid resource a line, closed units too."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

from hierarchy import service
from hierarchy.fhir.export import write_ndjson
from tests.applications.helpers import EXISTING_SI
from tests.support.fhir import check_resource


def test_every_unit_and_location_one_line_each(register):
    service.close_organisation(register, EXISTING_SI, date.today() - timedelta(days=1),
                               source="staff", actor="test")
    organizations, locations = io.BytesIO(), io.BytesIO()
    counts = write_ndjson(register, {"Organization": organizations, "Location": locations})
    assert counts == {"Organization": 17, "Location": 6}
    written = {}
    for stream in (organizations, locations):
        for line in stream.getvalue().splitlines():
            resource = json.loads(line)
            check_resource(resource)  # FHIR R4B, DK Core's invariants
            written[(resource["resourceType"], resource["id"])] = resource
    assert len(written) == 23
    assert written[("Organization", EXISTING_SI)]["active"] is False
    assert written[("Location", EXISTING_SI)]["status"] == "inactive"


def test_only_the_types_asked_for(register):
    locations = io.BytesIO()
    assert write_ndjson(register, {"Location": locations}) == {"Location": 6}
    assert {json.loads(line)["resourceType"] for line in locations.getvalue().splitlines()} \
        == {"Location"}

"""The register as FHIR NDJSON (the export format fhir-ndjson): every unit's Organization,
every Location, one valid resource a line, closed units too."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from hierarchy import service
from hierarchy.fhir.export import fhir_ndjson_writer, write_ndjson
from hierarchy.models import Organisation, table_of
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


def test_the_registry_writer_on_rows_of_every_column_writes_the_same(register):
    """fhir_ndjson_writer takes the export snapshot's rows (every column of organisations,
    no search row's own_address) and writes what write_ndjson writes, in one stream."""
    organizations, locations = io.BytesIO(), io.BytesIO()
    write_ndjson(register, {"Organization": organizations, "Location": locations})
    expected = sorted(organizations.getvalue().splitlines() + locations.getvalue().splitlines())
    rows = register.execute(select(table_of(Organisation)).order_by(Organisation.sor_code))
    written = io.BytesIO()
    fhir_ndjson_writer(rows, written.write, SimpleNamespace(on=date.today()))
    lines = written.getvalue().splitlines()
    assert sorted(lines) == expected and len(lines) == 23
    for line in lines:
        check_resource(json.loads(line))
    kinds = [json.loads(line)["resourceType"] for line in lines]
    assert kinds[0] == "Organization"  # each unit's Organization, then its Location
    assert all(kinds[n - 1] == "Organization" for n, kind in enumerate(kinds) if kind == "Location")

"""All-history exports: every version of every organisation, one a line, with its valid
and recorded times, in NDJSON and CSV, by the command and over HTTP (SQLite, PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from sqlalchemy import func, select

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.export.csv_format import BOM, HISTORY_HEADER, read_trailer
from hierarchy.models import Organisation, OrganisationVersion, RegisterVersion
from hierarchy.sor_import import import_sor_files
from tests.conftest import fixture_path
from tests.hierarchy.test_feed_api import _bearer
from tests.support.feed import feed, latest_items

FILES = [fixture_path(name) for name in ("ONE_SYGEHUS.xml", "Sor_small.xml")]


@pytest.fixture
def history(session) -> str:
    """A register whose first organisation has three versions: imported, a phone
    changed, closed."""
    import_sor_files(session, FILES, actor="test")
    session.commit()
    code = session.scalars(select(Organisation.sor_code).order_by(Organisation.sor_code)
                           .limit(1)).one()
    service.change_organisation(session, code, {"phone": "70121212"}, source="staff",
                                actor="test")
    session.commit()
    service.close_organisation(session, code, date(2030, 1, 1), source="staff", actor="test")
    session.commit()
    return code


def _versions(session) -> list[OrganisationVersion]:
    return list(session.scalars(select(OrganisationVersion).order_by(
        OrganisationVersion.sor_code, OrganisationVersion.version)))


def test_the_command_writes_every_version_with_its_times(runner, session, history,
                                                         tmp_path):
    out = tmp_path / "history.ndjson"
    result = runner.invoke(args=["export", "--format", "ndjson", "--all-history", str(out)])
    assert result.exit_code == 0, result.output
    first, *lines = out.read_bytes().splitlines()
    header = json.loads(first)
    versions = _versions(session)
    organisations = session.scalar(select(func.count()).select_from(Organisation))
    assert (header["history"], header["versions"], header["organisations"]) == (
        True, len(versions), organisations)
    assert header["position"] == session.scalar(select(RegisterVersion.last_position))
    assert f"({len(versions)} versions)" in result.output
    shown = [json.loads(line) for line in lines]
    assert [(v["sor_code"], v["version"]) for v in shown] == [
        (v.sor_code, v.version) for v in versions]
    assert [line["snapshot"] for line in shown] == [version.snapshot for version in versions]

    mine = [v for v in shown if v["sor_code"] == history]
    assert [v["version"] for v in mine] == [1, 2, 3]
    assert [v["snapshot"]["phone"] for v in mine][1:] == ["70121212", "70121212"]
    assert [v["valid_to"] for v in mine] == [None, None, "2030-01-01"]
    assert [v["source"] for v in mine] == ["import", "staff", "staff"]
    # Transaction time: each version superseded when the next was recorded; the last open.
    assert mine[0]["superseded_at"] == mine[1]["recorded_at"]
    assert mine[1]["superseded_at"] == mine[2]["recorded_at"]
    assert mine[2]["superseded_at"] is None
    assert mine[2]["recorded_at"].endswith("+00:00")


def test_the_api_streams_history_as_csv_one_row_per_version(client, session, history):
    reporter = _bearer(session, "reporter")
    response = client.get("/api/v1/export/register.csv?all_history=1", headers=reporter)
    assert response.status_code == 200, response.get_data(as_text=True)
    position = session.scalar(select(RegisterVersion.last_position))
    assert response.headers["X-Feed-Position"] == str(position)
    assert response.headers["ETag"] == f'"csv-{position}-history"'
    assert "sor-history-" in response.headers["Content-Disposition"]
    data = response.get_data()
    assert data.startswith(BOM)
    text = data[len(BOM):].decode()
    *table, last = text.rstrip("\r\n").split("\r\n")
    rows = list(csv.DictReader(io.StringIO("\r\n".join(table)), delimiter=";"))
    assert tuple(rows[0]) == HISTORY_HEADER
    versions = _versions(session)
    assert read_trailer(last)["rows"] == str(len(rows)) == str(len(versions))
    mine = [row for row in rows if row["sor_code"] == history]
    assert [(r["version"], r["phone"], r["valid_to"], r["source"]) for r in mine] == [
        ("1", versions[0].snapshot["phone"] or "", "", "import"),
        ("2", "70121212", "", "staff"), ("3", "70121212", "2030-01-01", "staff")]
    assert mine[0]["superseded_at"] == mine[1]["recorded_at"] != ""
    assert mine[2]["superseded_at"] == ""

    # The same position gives the same file: 304 without reading it again.
    again = client.get("/api/v1/export/register.csv?all_history=1",
                       headers={**reporter, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    plain = client.get("/api/v1/export/register.csv", headers=reporter)
    assert plain.headers["ETag"] != response.headers["ETag"]


@pytest.mark.parametrize("query, reason", [
    ("register.xml?all_history=1", "carries no history"),
    ("register.xml?format=sor-xml-v1&all_history=1", "carries no history"),
    ("register.ndjson?format=fhir-ndjson&all_history=true", "carries no history"),
    ("register.ndjson?all_history=1&on=2020-01-01", "one or the other"),
    ("register.csv?all_history=perhaps", "all_history"),
])
def test_history_the_format_cannot_carry_is_a_422(client, session, history, query, reason):
    response = client.get(f"/api/v1/export/{query}", headers=_bearer(session, "reporter"))
    assert response.status_code == 422
    assert reason in response.get_data(as_text=True)


def test_a_replaced_organisation_carries_its_successors_in_the_export_as_in_the_api(
        runner, client, session, history, tmp_path):
    # An organisation closed and replaced by two: history's (closing in 2030, so still in
    # force) and a new one.
    closed, successor = (ids.make_sor_code(item) for item in (91_000_001, 91_000_002))
    for code in (closed, successor):
        service.create_organisation(session, code, {
            "level": "IE", "name": f"Ejer {code}", "entity_type": "550891000005100",
            "cvr": "25313763"}, source="staff", actor="test")
    service.change_organisation(session, closed, {
        "valid_to": date(2024, 1, 1), "replaced_by": [history, successor]}, source="staff",
        actor="test")
    session.commit()
    out = tmp_path / "register.ndjson"
    assert runner.invoke(args=["export", "--format", "ndjson", str(out)]).exit_code == 0
    lines = {item["sor_code"]: item for item in map(json.loads, out.read_bytes().splitlines()[1:])}
    api = client.get(f"/api/v1/organisations/{closed}",
                     headers=_bearer(session, "reporter")).get_json()
    assert [s["sor_code"] for s in lines[closed]["successors"]] == [history, successor]
    assert lines[closed]["successor_dead_ends"] == []
    assert lines[closed] == api
    # The feed's last entry of it shows the same organisation.
    assert latest_items(feed(session))[closed] == api
    assert "successors" not in lines[successor]  # names no successor itself

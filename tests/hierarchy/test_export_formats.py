"""The formats of the export registry end to end: ``sorregistry export --format F`` and
``GET /api/v1/export/register.<ext>[?format=F]`` give SOR XML v2/v1, CSV (plain and
Excel-safe) and FHIR NDJSON from the feed's one snapshot, each naming the feed position
it was taken at; a SOR XML file exported and imported again changes nothing (SQLite,
PostgreSQL)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree
from sqlalchemy import func, select, update

from hierarchy.export import FORMATS, format_for
from hierarchy.export.csv_format import read_trailer
from hierarchy.export.sor_xml import sor_xml_writer
from hierarchy.feed.cursor import decode_cursor
from hierarchy.models import FeedState, Organisation, RegisterVersion, table_of
from hierarchy.sor_import import import_sor_files
from hierarchy.sor_xml import NAMESPACE_V1, NAMESPACE_V2
from tests.conftest import fixture_path
from tests.hierarchy.test_feed_api import _bearer

FILES = [fixture_path(name) for name in ("ONE_SYGEHUS.xml", "ONE_PRAKSIS.xml",
                                         "Sor_small.xml")]
# Written by the import itself, not values of the register.
IMPORT_STAMPS = {"created_at", "updated_at"}


@pytest.fixture
def register(session: Any) -> None:
    import_sor_files(session, FILES, actor="test")
    session.commit()


def _position(session: Any) -> int:
    return int(session.execute(select(RegisterVersion.last_position)
                               .where(RegisterVersion.name == "register")).scalar_one())


def _count(session: Any) -> int:
    return int(session.execute(select(func.count()).select_from(Organisation)).scalar_one())


def _key(session: Any) -> bytes:
    return bytes.fromhex(session.query(FeedState).one().cursor_key)


def _comment(data: bytes) -> dict[str, str]:
    """The fields of the comment before the SOR XML root."""
    root = etree.fromstring(data)
    text = next(node.text for node in root.itersiblings(preceding=True)
                if isinstance(node, etree._Comment))
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


def _csv(data: bytes) -> tuple[list[dict[str, str]], dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[-1] == ""
    return list(csv.DictReader(lines[:-2], delimiter=";")), dict(read_trailer(lines[-2]))


def _check(name: str, data: bytes, position: int, count: int) -> None:
    """*data* is an export of *name* holding *count* organisations and naming *position*
    where its format can."""
    if name.startswith("sor-xml"):
        comment = _comment(data)
        assert comment["feed-position"] == str(position)
        root = etree.fromstring(data)
        assert root.nsmap[None] == (NAMESPACE_V2 if name == "sor-xml" else NAMESPACE_V1)
        written = sum(1 for node in root.iter("{*}SorIdentifier")
                      if not node.getparent().tag.endswith("Collection"))
        assert written == count
    elif name.startswith("csv"):
        rows, trailer = _csv(data)
        assert trailer["feed-position"] == str(position)
        assert len(rows) == count == int(trailer["rows"])
        assert rows[0]["sor_code"].startswith('="') == (name == "csv-excel-safe")
    else:  # fhir-ndjson: resources only (FHIR Bulk Data), the position is in the headers
        kinds = [orjson.loads(line)["resourceType"] for line in data.splitlines()]
        assert kinds.count("Organization") == count
        assert set(kinds) <= {"Organization", "Location"}


OURS = ("sor-xml", "sor-xml-v1", "csv", "csv-excel-safe", "fhir-ndjson")


def test_the_registry_holds_every_format_with_its_defaults():
    assert set(OURS) | {"ndjson"} == set(FORMATS)
    assert format_for(extension="xml").name == "sor-xml"
    assert format_for(extension="csv").name == "csv"
    assert format_for(extension="ndjson").name == "ndjson"
    assert FORMATS["sor-xml"].order == FORMATS["sor-xml-v1"].order == "path"
    assert FORMATS["fhir-ndjson"].media_type == "application/fhir+ndjson"
    assert FORMATS["fhir-ndjson"].order == "code"
    assert {name for name in FORMATS if FORMATS[name].history} == {
        "ndjson", "csv", "csv-excel-safe"}
    with pytest.raises(ValueError, match="unknown SOR XML version"):
        sor_xml_writer("3.0.0")


@pytest.mark.parametrize("name", OURS)
def test_the_command_writes_each_format_naming_its_position(runner, session, register, tmp_path,
                                                            name):
    out = tmp_path / f"register.{FORMATS[name].extension}"
    result = runner.invoke(args=["export", "--format", name, str(out)])
    assert result.exit_code == 0, result.output
    position = _position(session)
    assert f"feed position {position}" in result.output
    _check(name, out.read_bytes(), position, _count(session))
    if name != "fhir-ndjson":  # the cursor the file names is the feed's, for the position
        fields = (_comment(out.read_bytes()) if name.startswith("sor-xml")
                  else _csv(out.read_bytes())[1])
        cursor = fields["feed-cursor"].replace("%2D", "-")
        assert decode_cursor(cursor, _key(session)) == position


@pytest.mark.parametrize("name", ["sor-xml", "csv"])
def test_on_a_day_only_the_organisations_in_force_then(runner, session, register, tmp_path,
                                                       name):
    organisations = table_of(Organisation)
    closed = session.execute(select(organisations.c.sor_code).where(
        organisations.c.level == "OE").order_by(organisations.c.path.desc())).scalar()
    session.execute(update(organisations).where(organisations.c.sor_code == closed)
                    .values(valid_to=date(2024, 1, 1)))
    session.commit()
    files = {}
    for day in ("2023-12-31", "2024-01-01"):  # the closing day is exclusive
        files[day] = tmp_path / f"{day}.{FORMATS[name].extension}"
        result = runner.invoke(args=["export", "--format", name, "--on", day, str(files[day])])
        assert result.exit_code == 0, result.output
    before, after = (files[day].read_bytes() for day in ("2023-12-31", "2024-01-01"))
    if name == "sor-xml":
        assert closed.encode() in before and closed.encode() not in after
        assert _comment(after)["snapshot-date"] == "2024-01-01"
        assert etree.fromstring(after).findtext("{*}SnapshotDate") == "2024-01-01"
    else:
        assert closed in {row["sor_code"] for row in _csv(before)[0]}
        assert closed not in {row["sor_code"] for row in _csv(after)[0]}
        assert _csv(after)[1]["snapshot-date"] == "2024-01-01"


@pytest.mark.parametrize("name", ["sor-xml", "sor-xml-v1", "fhir-ndjson"])
def test_history_is_refused_and_nothing_written(runner, register, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(args=["export", "--format", name, "--all-history", "out"])
    assert result.exit_code != 0
    assert "carries no history" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, name", [
    ("register.xml", "sor-xml"),
    ("register.xml?format=sor-xml-v1", "sor-xml-v1"),
    ("register.csv", "csv"),
    ("register.csv?format=csv-excel-safe", "csv-excel-safe"),
    ("register.ndjson?format=fhir-ndjson", "fhir-ndjson"),
])
def test_the_api_streams_each_format_with_its_position(client, session, register, path, name):
    response = client.get(f"/api/v1/export/{path}", headers=_bearer(session, "reporter"),
                          buffered=False)  # the answer as the app made it: a stream
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == FORMATS[name].media_type
    position = _position(session)
    assert response.headers["X-Feed-Position"] == str(position)
    assert decode_cursor(response.headers["X-Feed-Cursor"], _key(session)) == position
    assert response.headers["ETag"].strip('"').startswith(f"{name}-{position}-")
    _check(name, response.get_data(), position, _count(session))
    response.close()


def test_the_api_refuses_a_format_of_another_extension(client, session, register):
    staff = _bearer(session, "sds")
    wrong = client.get("/api/v1/export/register.xml?format=csv", headers=staff)
    assert wrong.status_code == 404
    assert "sor-xml (.xml)" in wrong.get_json()["message"]


def _table(session: Any) -> dict[str, dict[str, Any]]:
    organisations = table_of(Organisation)
    rows = session.execute(select(organisations)).mappings()
    return {row["sor_code"]: {k: v for k, v in row.items() if k not in IMPORT_STAMPS}
            for row in rows}


# The real v1 samples: a register that came from v1 files is whole in a v1 export (one from
# v2 files is not: v1 has no CVR, P-number, kommunekode or coordinates).
V1_FILES = [fixture_path(name) for name in ("ONE_SYGEHUS.xml", "ONE_PRAKSIS.xml",
                                            "ONE_APOTEK.xml")]


@pytest.mark.parametrize("name, files", [("sor-xml", FILES), ("sor-xml-v1", V1_FILES)])
def test_a_sor_xml_export_imported_again_changes_nothing(runner, session, tmp_path: Path,
                                                        name, files):
    import_sor_files(session, files, actor="test")
    session.commit()
    out = tmp_path / "register.xml"
    assert runner.invoke(args=["export", "--format", name, str(out)]).exit_code == 0
    before, position = _table(session), _position(session)
    result = runner.invoke(args=["import-sor", str(out)])
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert _position(session) == position  # no change recorded, so none in the feed
    assert _table(session) == before

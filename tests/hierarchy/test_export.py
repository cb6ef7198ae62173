"""Exports: the NDJSON writer, ``sorregistry export`` and ``GET /api/v1/export/register.*``,
each from one snapshot that names the feed position it was taken at (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from datetime import date

import orjson
import pytest
from sqlalchemy import select

from hierarchy import service
from hierarchy.export import FORMATS, UnknownFormat, format_for
from hierarchy.export.snapshot import open_snapshot
from hierarchy.feed.cursor import decode_cursor
from hierarchy.models import FeedState, Organisation, RegisterVersion
from hierarchy.schemas import organisation_item
from hierarchy.sor_import import import_sor_files
from sorregistry import create_app
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.conftest import fixture_path
from tests.hierarchy.test_feed_api import _bearer

FILES = [fixture_path(name) for name in ("ONE_SYGEHUS.xml", "ONE_PRAKSIS.xml",
                                         "Sor_small.xml")]


@pytest.fixture
def register(session) -> None:
    import_sor_files(session, FILES, actor="test")
    session.commit()


def _expected_lines(session, on: date | None = None) -> list[bytes]:
    query = select(Organisation).order_by(Organisation.sor_code)
    if on is not None:
        query = query.where(*service.active_on_clause(on))
    return [orjson.dumps(organisation_item(o)) for o in session.scalars(query)]


def _last_position(session) -> int:
    return session.execute(select(RegisterVersion.last_position)).scalar_one()


def _key(session) -> bytes:
    return bytes.fromhex(session.query(FeedState).one().cursor_key)


def test_the_command_writes_one_organisation_a_line_after_a_line_naming_the_position(
        runner, session, register, tmp_path):
    out = tmp_path / "register.ndjson"
    result = runner.invoke(args=["export", "--format", "ndjson", str(out)])
    assert result.exit_code == 0, result.output
    first, *lines = out.read_bytes().splitlines()
    header = json.loads(first)
    position = _last_position(session)
    assert header == {"export": "sor-register", "format": "ndjson", "position": position,
                      "cursor": header["cursor"], "on": None, "organisations": len(lines)}
    assert decode_cursor(header["cursor"], _key(session)) == position
    assert lines == _expected_lines(session)
    assert f"feed position {position}" in result.output
    assert not list(tmp_path.glob(".*.part"))  # the temporary file is gone

    # The same register gives the same bytes; stdout ('-') carries the same file.
    to_stdout = runner.invoke(args=["export", "--format", "ndjson", "-"])
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout_bytes == out.read_bytes()


def test_on_a_day_only_the_organisations_active_that_day(runner, session, register, tmp_path):
    day = date(2015, 6, 1)
    out = tmp_path / "on.ndjson"
    assert runner.invoke(args=["export", "--format", "ndjson", "--on", day.isoformat(),
                               str(out)]).exit_code == 0
    first, *lines = out.read_bytes().splitlines()
    assert json.loads(first)["on"] == day.isoformat()
    assert lines == _expected_lines(session, day)
    assert 0 < len(lines) < len(_expected_lines(session))


@pytest.mark.parametrize("args, message", [
    (["--format", "sor-xml", "--all-history", "x.xml"], "carries no history"),
    (["--format", "ndjson", "--all-history", "--on", "2020-01-01", "x.ndjson"],
     "give one or the other"),
    (["--format", "ndjson", "/no/such/dir/x.ndjson"], "no such directory"),
    (["--format", "pdf", "x.pdf"], "Invalid value for '--format'"),
    (["--format", "ndjson", "--on", "someday", "x.ndjson"], "Invalid value for '--on'"),
])
def test_the_command_refuses_what_it_cannot_do_and_writes_nothing(
        runner, register, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(args=["export", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_api_streams_the_export_with_its_position_and_etag(client, session, register):
    reporter = _bearer(session, "reporter")
    # Unbuffered: the answer as the app made it (a stream), read as a server would.
    response = client.get("/api/v1/export/register.ndjson", headers=reporter, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.is_streamed
    position = _last_position(session)
    assert response.headers["X-Feed-Position"] == str(position)
    assert decode_cursor(response.headers["X-Feed-Cursor"], _key(session)) == position
    first, *lines = response.get_data().splitlines()
    response.close()
    assert json.loads(first)["position"] == position
    assert lines == _expected_lines(session)

    etag = response.headers["ETag"]
    again = client.get("/api/v1/export/register.ndjson",
                       headers={**reporter, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    # A change moves the position: the ETag no longer matches.
    code = lines and json.loads(lines[0])["sor_code"]
    service.change_organisation(session, code, {"name": "Omdøbt"}, source="staff", actor="t")
    session.commit()
    moved = client.get("/api/v1/export/register.ndjson",
                       headers={**reporter, "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag
    assert int(moved.headers["X-Feed-Position"]) > position

    on = client.get("/api/v1/export/register.ndjson?on=2015-06-01", headers=reporter)
    assert on.get_data().splitlines()[1:] == _expected_lines(session, date(2015, 6, 1))


def test_the_api_refuses_strangers_unknown_files_and_bad_days(client, session, register):
    assert client.get("/api/v1/export/register.ndjson").status_code == 401
    municipality = _bearer(session, "municipality")
    assert client.get("/api/v1/export/register.ndjson",
                      headers=municipality).status_code == 403
    staff = _bearer(session, "sds")
    assert client.get("/api/v1/export/register.ndjson", headers=staff).status_code == 200
    unknown = client.get("/api/v1/export/register.pdf", headers=staff)
    assert unknown.status_code == 404
    assert "ndjson" in unknown.get_json()["message"]
    wrong = client.get("/api/v1/export/register.ndjson?format=csv", headers=staff)
    assert wrong.status_code == 404
    bad_day = client.get("/api/v1/export/register.ndjson?on=tomorrow", headers=staff)
    assert bad_day.status_code == 422


def test_the_format_registry_names_what_there_is():
    assert FORMATS["ndjson"].media_type == "application/x-ndjson"
    assert format_for(extension="ndjson").name == "ndjson"
    with pytest.raises(UnknownFormat, match=r"ndjson \(\.ndjson\)"):
        format_for(extension="pdf")


def test_an_export_is_one_snapshot_while_writers_commit(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        import_sor_files(db.session, FILES, actor="test")
        db.session.commit()
        before = _expected_lines(db.session)
        codes = [o["sor_code"] for o in map(json.loads, before)]
        snapshot = open_snapshot(db.session, format="ndjson", order="code")
        db.session.remove()
        try:
            rows = snapshot.rows()
            first = next(rows)
            # Another writer commits mid-export: renames one row ahead, adds nothing seen.
            with write_step(db.session()) as writer:
                service.change_organisation(writer, codes[-1], {"name": "Efter eksporten"},
                                            source="staff", actor="test")
            db.session.remove()
            read = [orjson.dumps(organisation_item(row)) for row in [first, *rows]]
        finally:
            snapshot.close()
        assert read == before
        assert snapshot.info.position < _last_position(db.session)
        db.session.remove()
        db.engine.dispose()

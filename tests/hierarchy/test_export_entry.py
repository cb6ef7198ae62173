"""The formats' entry functions (session, output, on, all_history): one snapshot that names
the feed position it was taken at, the day's organisations with ``on``, history refused;
and the adapter to the change feed's export registry (``(rows, write, info)``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select, update

from hierarchy.export.csv_format import export_csv, read_trailer, write_csv
from hierarchy.export.rows import NoHistory, feed_writer, snapshot
from hierarchy.export.sor_xml import export_sor_xml, write_sor_xml
from hierarchy.models import Organisation, RegisterVersion, table_of
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app
from sorregistry.extensions import db
from tests.conftest import fixture_path

SYGEHUS = "ONE_SYGEHUS.xml"


def _comment(data: bytes) -> str:
    root = etree.fromstring(data)
    return next(node.text for node in root.itersiblings(preceding=True)
                if isinstance(node, etree._Comment))


def _codes(data: bytes) -> list[str]:
    return [node.text for node in etree.fromstring(data).iter("{*}SorIdentifier")]


def _csv_rows(data: bytes) -> tuple[list[dict[str, str]], str]:
    lines = data.decode("utf-8-sig").split("\r\n")
    rows = list(csv.DictReader(lines[:-2], delimiter=";"))
    return rows, lines[-2]


def _position(session: Any) -> int:
    return int(session.execute(select(RegisterVersion.last_position)
                               .where(RegisterVersion.name == "register")).scalar_one())


def test_each_export_names_the_position_of_the_register_it_holds(session):
    import_sor_file(session, fixture_path(SYGEHUS), actor="test")
    position = _position(session)
    assert position > 0
    count = len(session.execute(select(Organisation.sor_code)).all())

    out = io.BytesIO()
    stats = export_sor_xml(session, out)
    assert sum(stats.written.values()) == count
    assert f"feed-position={position} " in _comment(out.getvalue())
    assert len(_codes(out.getvalue())) == count

    v1 = io.BytesIO()
    export_sor_xml(session, v1, version="1.0.0")
    assert etree.fromstring(v1.getvalue()).nsmap[None].endswith(":1.0.0")

    text = io.BytesIO()
    assert export_csv(session, text, excel_safe=True).rows == count
    rows, trailer = _csv_rows(text.getvalue())
    assert len(rows) == count and rows[0]["sor_code"].startswith('="')
    assert read_trailer(trailer)["feed-position"] == str(position)


def test_on_a_day_only_the_organisations_in_force_then(session):
    import_sor_file(session, fixture_path(SYGEHUS), actor="test")
    organisations = table_of(Organisation)
    leaves = session.execute(
        select(organisations.c.sor_code).where(organisations.c.level == "OE")
        .order_by(organisations.c.path.desc())).scalars().all()
    closed = leaves[0]
    session.execute(update(organisations).where(organisations.c.sor_code == closed)
                    .values(valid_to=date(2024, 1, 1)))
    everyone = session.execute(select(organisations.c.sor_code)).scalars().all()

    before, after = io.BytesIO(), io.BytesIO()
    export_sor_xml(session, before, on=date(2023, 12, 31))
    export_sor_xml(session, after, on=date(2024, 1, 1))  # the closing day is exclusive
    assert closed in _codes(before.getvalue())
    assert closed not in _codes(after.getvalue())
    assert len(_codes(after.getvalue())) == len(everyone) - 1
    assert "snapshot-date=2024-01-01" in _comment(after.getvalue())
    assert etree.fromstring(after.getvalue()).findtext("{*}SnapshotDate") == "2024-01-01"

    text = io.BytesIO()
    export_csv(session, text, on=date(2024, 1, 1))
    rows, trailer = _csv_rows(text.getvalue())
    assert closed not in {row["sor_code"] for row in rows}
    assert read_trailer(trailer)["snapshot-date"] == "2024-01-01"


@pytest.mark.parametrize("export", [export_sor_xml, export_csv])
def test_all_history_is_refused_before_anything_is_written(session, export):
    import_sor_file(session, fixture_path(SYGEHUS), actor="test")
    out = io.BytesIO()
    with pytest.raises(NoHistory) as refused:
        export(session, out, all_history=True)
    assert refused.value.status == 422
    assert "history" in refused.value.message
    assert out.getvalue() == b""


def test_an_unknown_sor_xml_version_is_refused(session):
    out = io.BytesIO()
    with pytest.raises(ValueError, match="unknown SOR XML version"):
        export_sor_xml(session, out, version="3.0.0")
    assert out.getvalue() == b""


def test_a_change_committed_during_the_export_is_not_in_it(fresh_database):
    """On an engine the export opens a transaction of its own (REPEATABLE READ on
    PostgreSQL, a WAL read transaction on SQLite): the rows read after a concurrent
    commit are still the snapshot's, at the position it names."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    organisations = table_of(Organisation)
    with app.app_context():
        try:
            import_sor_file(db.session, fixture_path(SYGEHUS), actor="test")
            db.session.commit()
            position = _position(db.session)
            last = db.session.execute(select(organisations.c.sor_code, organisations.c.name)
                                      .order_by(organisations.c.path.desc())).first()
            assert last is not None
            db.session.remove()
            with snapshot(db.session, chunk_size=2) as (rows, info):
                first = next(rows)
                with db.engine.begin() as other:
                    other.execute(update(organisations)
                                  .where(organisations.c.sor_code == last.sor_code)
                                  .values(name="Omdøbt midt i eksporten"))
                    other.execute(update(table_of(RegisterVersion))
                                  .values(last_position=position + 1))
                seen = [first, *rows]
            assert info.feed_position == position
            assert {row["sor_code"]: row["name"] for row in seen}[last.sor_code] == last.name
            # Afterwards, a new export sees the change and names the new position.
            out = io.BytesIO()
            export_sor_xml(db.session, out)
            assert f"feed-position={position + 1} " in _comment(out.getvalue())
            assert b"Omd\xc3\xb8bt midt i eksporten" in out.getvalue()
        finally:
            db.session.remove()
            db.engine.dispose()


@dataclass(frozen=True)
class _FeedInfo:
    """The fields of the change feed's ExportInfo that the adapter reads."""

    position: int
    cursor: str
    on: date | None


def test_the_feed_registry_can_call_every_writer_with_sqlalchemy_rows(session):
    import_sor_file(session, fixture_path(SYGEHUS), actor="test")
    organisations = table_of(Organisation)
    statement = select(*organisations.columns).order_by(organisations.c.path)
    count = len(session.execute(statement).all())
    info = _FeedInfo(position=41, cursor="p41-x", on=date(2024, 3, 1))

    parts: list[bytes] = []
    feed_writer(write_sor_xml)(session.execute(statement), parts.append, info)
    data = b"".join(parts)
    assert len(_codes(data)) == count
    assert "feed-position=41 feed-cursor=p41%2Dx snapshot-date=2024-03-01" in _comment(data)

    parts.clear()
    feed_writer(write_csv)(session.execute(statement), parts.append, info)
    rows, trailer = _csv_rows(b"".join(parts))
    assert len(rows) == count
    assert read_trailer(trailer)["feed-position"] == "41"
    assert read_trailer(trailer)["feed-cursor"] == "p41-x"

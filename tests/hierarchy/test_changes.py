"""Recording register changes: hooks on the app's sessions only, positions in commit order."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from hierarchy import changes, service
from hierarchy import identifiers as ids
from hierarchy.models import (
    Organisation,
    OrganisationVersion,
    RegisterCommit,
    RegisterVersion,
    ShakCode,
)
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.conftest import fixture_path
from tests.support.exports import generator

SYGEHUS = fixture_path("ONE_SYGEHUS.xml")
DEPARTMENT = "347821000016008"


def _counters(connection) -> tuple[int, int]:
    """The register version and the last position handed out, read past any session."""
    row = connection.execute(
        select(RegisterVersion.version, RegisterVersion.last_position).where(
            RegisterVersion.name == "register")
    ).one()
    return row[0], row[1]


def _positions(session) -> list[tuple[str, int, int, int]]:
    """(sor_code, version, row id, position) of every recorded change, in position order."""
    return [
        tuple(row)
        for row in session.execute(
            select(OrganisationVersion.sor_code, OrganisationVersion.version,
                   OrganisationVersion.id, changes.CHANGE_POSITION)
            .join(RegisterCommit, RegisterCommit.id == OrganisationVersion.commit_id)
            .order_by(changes.CHANGE_POSITION)
        )
    ]


def _create(session, item: int, name: str) -> str:
    code = ids.make_sor_code(item)
    service.create_organisation(session, code, {"level": "IE", "name": name},
                                source="staff", actor="test")
    return code


def test_the_hooks_leave_a_plain_session_alone(session):
    connection = session.connection()
    before = _counters(connection)
    plain = Session(bind=connection, join_transaction_mode="create_savepoint")
    assert not changes.is_installed(plain)
    plain.add(ShakCode(code="9999", kind="hospital", hospital="9999", record_type="sgh",
                       valid_from=date(2020, 1, 1), text="Plain", text_search="plain"))
    plain.execute(update(Organisation).where(Organisation.sor_code == "0").values(name="x"))
    plain.commit()
    # Neither the flush nor the statement marked it, and its commit bumped nothing.
    assert not plain.info and _counters(connection) == before
    with pytest.raises(RuntimeError, match="does not record register changes"):
        changes.recording(plain)
    plain.close()

    assert changes.is_installed(session())
    session.add(ShakCode(code="9998", kind="hospital", hospital="9998", record_type="sgh",
                         valid_from=date(2020, 1, 1), text="App", text_search="app"))
    session.commit()
    assert _counters(connection) == (before[0] + 1, before[1])


def test_install_refuses_every_session_of_the_process():
    with pytest.raises(TypeError, match="every Session"):
        changes.install(scoped_session(sessionmaker()))


def test_every_recorded_change_gets_the_next_position_at_commit(session):
    connection = session.connection()
    _, last = _counters(connection)
    result = import_sor_file(session, SYGEHUS, actor="test")
    session.commit()
    created = _create(session, 90_000_000, "Ny ejer")
    service.change_organisation(session, created, {"phone": "12345678"}, source="staff",
                                actor="test")
    session.commit()
    service.change_organisation(session, DEPARTMENT, {"name": "Øjenafdelingen"},
                                source="application", actor="kommune")
    session.commit()

    positions = _positions(session)
    imported = result.total
    assert [p for *_, p in positions] == list(range(last + 1, last + imported + 4))
    assert _counters(connection)[1] == last + imported + 3
    # The import's changes first, in the order it recorded them, then the later commits.
    assert [(code, version) for code, version, *_ in positions[imported:]] == [
        (created, 1), (created, 2), (DEPARTMENT, 2)]
    commits = session.execute(
        select(RegisterCommit.first_position, RegisterCommit.changes)
        .order_by(RegisterCommit.first_position)
    ).all()
    assert commits[-3:] == [(last + 1, imported), (last + imported + 1, 2),
                            (last + imported + 3, 1)]


def test_each_organisation_has_one_open_version_its_current_one(session, tmp_path):
    gen = generator()
    plain, changed = tmp_path / "plain.xml", tmp_path / "changed.xml"
    gen.generate(plain, 600, seed=5, municipalities=1, regions=0)
    gen.generate(changed, 600, seed=5, municipalities=1, regions=0, mutate=0.1, drop=0.02)
    import_sor_file(session, plain, actor="test")
    session.commit()
    result = import_sor_file(session, changed, actor="test")  # changes and closes
    assert sum(result.count(level, "changed") + result.count(level, "closed")
               for level in ("IE", "SI", "OE")) > 20
    session.commit()
    open_versions = dict(session.execute(
        select(OrganisationVersion.sor_code, OrganisationVersion.version)
        .where(OrganisationVersion.superseded_at.is_(None))
    ).all())
    current = dict(session.execute(select(Organisation.sor_code, Organisation.version)).all())
    assert open_versions == current
    superseded = session.execute(
        select(func.count()).select_from(OrganisationVersion)
        .where(OrganisationVersion.superseded_at.is_not(None))
    ).scalar_one()
    assert superseded == sum(version - 1 for version in current.values())


def test_a_transaction_that_records_nothing_leaves_no_commit_row(session):
    import_sor_file(session, SYGEHUS, actor="test")
    session.commit()
    count = select(func.count()).select_from(RegisterCommit)
    commits = session.execute(count).scalar_one()
    version, last = _counters(session.connection())
    import_sor_file(session, SYGEHUS, actor="test")  # unchanged: records nothing
    session.commit()
    assert session.execute(count).scalar_one() == commits
    assert _counters(session.connection()) == (version, last)


def test_a_change_rolled_back_with_its_savepoint_takes_no_position(session):
    session.commit()
    _, last = _counters(session.connection())
    savepoint = session.begin_nested()
    _create(session, 90_000_001, "Rulles tilbage")  # makes the transaction's commit row
    savepoint.rollback()
    kept = _create(session, 90_000_002, "Bliver")
    session.commit()
    assert session.get(Organisation, ids.make_sor_code(90_000_001)) is None
    # Its number stays unused; the commit row, lost with the savepoint, is made again.
    assert [(code, p) for code, _, _, p in _positions(session)] == [(kept, last + 2)]
    assert _counters(session.connection())[1] == last + 2


def test_positions_follow_commit_order_not_insert_order(fresh_database, backend):
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time: no two write transactions in flight")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        first, second = db.session.session_factory(), db.session.session_factory()
        early = _create(first, 90_000_010, "Indsat først")
        late = _create(second, 90_000_011, "Indsat sidst")
        second.commit()  # the later insert commits first ...
        first.commit()
        first.close()
        second.close()
        positions = _positions(db.session)
        db.session.remove()
        db.engine.dispose()
    # ... and comes first in the feed, though its row was inserted after.
    assert [code for code, *_ in positions] == [late, early]
    assert positions[0][2] > positions[1][2]


def test_concurrent_writers_never_share_a_position(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            with app.app_context():
                start.wait()
                with write_step(db.session) as session:
                    code = _create(session, 90_000_100 + number, f"Ejer {number}")
                    service.change_organisation(session, code, {"phone": f"7000000{number}"},
                                                source="staff", actor="test")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with app.app_context():
        positions = _positions(db.session)
        last = _counters(db.session.connection())[1]
        db.session.remove()
        db.engine.dispose()
    assert [p for *_, p in positions] == list(range(1, 17)) and last == 16
    # Each transaction's two changes hold neighbouring positions, in the order recorded.
    for created, changed in zip(positions[::2], positions[1::2], strict=True):
        assert created[0] == changed[0] and (created[1], changed[1]) == (1, 2)


def test_the_migration_numbers_the_history_in_recorded_order(database_url, request, tmp_path):
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'history.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("sor_history_backfill")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade(revision="0010")
            code = ids.make_sor_code(90_000_200)
            now = datetime(2024, 1, 1, tzinfo=UTC)
            with db.engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO organisations (sor_code, level, name, gln_inherited, path, "
                    "depth, owner_sor_code, name_search, effective, inherited, version, "
                    "content_hash, derived_hash, created_at, updated_at) VALUES (:code, 'IE', "
                    "'Ejer', false, :path, 0, :code, 'ejer', '{}', '[]', 3, '', '', :now, :now)"
                ), {"code": code, "path": f"/{code}/", "now": now.isoformat(sep=" ")})
                # Inserted out of order: the positions follow recorded_at, not the row ids.
                for version in (2, 3, 1):
                    connection.execute(text(
                        "INSERT INTO organisation_versions (sor_code, version, recorded_at, "
                        "source, actor, snapshot) VALUES (:code, :version, :at, 'staff', "
                        "'test', '{}')"
                    ), {"code": code, "version": version,
                        "at": (now + timedelta(seconds=version)).isoformat(sep=" ")})
            upgrade()
            positions = _positions(db.session)
            assert [(version, p) for _, version, _, p in positions] == [(1, 1), (2, 2), (3, 3)]
            assert _counters(db.session.connection())[1] == 3
            db.session.remove()
            db.engine.dispose()
    finally:
        if not database_url.startswith("sqlite"):
            server.drop_database(url)


def test_versions_are_written_by_the_one_writer_only(session):
    """commit_id and commit_seq are required: a version row made elsewhere is refused."""
    _create(session, 90_000_300, "Ejer")
    session.flush()
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(insert(OrganisationVersion.__table__).values(
                sor_code=ids.make_sor_code(90_000_300), version=9,
                recorded_at=datetime.now(UTC), source="staff", actor="x", snapshot={}))

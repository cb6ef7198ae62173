"""``sorregistry backup`` / ``restore``: a dump restores to a working register.

On a real PostgreSQL, with the real pg_dump and pg_restore: load data, dump, drop the
database, restore, ``db upgrade`` has nothing to do, health answers 200, every table
holds what it held, and the register takes a new change (its sequences came back too).
The commands run in the test's process (Flask's CLI runner): starting the app in a
process of its own costs seconds, and adds nothing the tools do not already prove.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from applications import service
from hierarchy import demo_register
from sorregistry import create_app
from sorregistry.extensions import db
from sorregistry.health import _revisions
from sorregistry.models import Base
from tests.applications.helpers import AARHUS, AARHUS_CVR, bearer, build_register, new_nursing_home
from tests.conftest import BACKENDS
from tests.support import postgres


def _app(url: str) -> Flask:
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": url}
    if url.startswith("postgresql"):
        config["PG_BINDIR"] = str(postgres._bindir())
    return create_app(config)


def _sorregistry(url: str, *args: str) -> Result:
    app = _app(url)
    result = app.test_cli_runner().invoke(args=list(args))
    with app.app_context():
        db.engine.dispose()
    return result


def _counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        counts = {table.name: db.session.execute(select(func.count()).select_from(table))
                  .scalar_one() for table in Base.metadata.sorted_tables}
        db.session.remove()
        db.engine.dispose()
    return counts


def _fill(app: Flask) -> tuple[dict[str, str], list[int]]:
    """The demo register, clients, two submitted applications, one of them approved."""
    with app.app_context():
        demo_register.load(db.session)  # what load-demo loads (its logins aside)
        db.session.commit()
        build_register(db.session)
        sds = bearer(db.session, "sds", cvr="29190909", name="SDS")
        actor = service.Actor(name="test", roles=("municipality",), municipality_code=AARHUS,
                              cvr=AARHUS_CVR)
        ids = []
        for n in range(2):
            application = service.create_application(db.session, actor, new_nursing_home(
                institution_name=f"Plejehjem nr. {n}",
                address={"street": f"Vej {n}", "postal_code": "8000", "city": "Aarhus C"}))
            service.submit_application(db.session, actor, application.id)
            ids.append(application.id)
        db.session.commit()
        db.session.remove()
    answer = app.test_client().post(f"/api/v1/applications/{ids[0]}/approve", json={},
                                    headers=sds)
    assert answer.status_code == 200, answer.data
    with app.app_context():
        db.engine.dispose()
    return sds, ids


@pytest.fixture
def source(postgres_server: postgres.Server) -> Iterator[str]:
    url = postgres_server.create_database("sor_backup")
    yield url
    postgres_server.drop_database(url)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL (SOR_TEST_BACKENDS)")
def test_a_dump_restores_to_a_working_register(source: str, postgres_server: postgres.Server,
                                               tmp_path: Path) -> None:
    app = _app(source)
    with app.app_context():
        upgrade()
    sds, ids = _fill(app)
    before = _counts(app)
    assert before["organisations"] > 10 and before["audit_events"] >= 1
    assert before["outbox_messages"] >= 1 and before["feed_entries"] > 10

    dump = tmp_path / "register.dump"
    made = _sorregistry(source, "backup", str(dump))
    assert made.exit_code == 0, made.output
    assert "Backed up" in made.output and dump.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*partial"))
    again = _sorregistry(source, "backup", str(dump))  # never over an existing file
    assert again.exit_code == 1 and "exists" in again.output

    postgres_server.drop_database(source)
    postgres_server.create_database("sor_backup")
    restored = _sorregistry(source, "restore", str(dump))
    assert restored.exit_code == 0, restored.output
    app = _app(source)
    with app.app_context():
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        db.session.remove()
    upgraded = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    with app.app_context():
        assert db.session.execute(
            text("SELECT version_num FROM alembic_version")).scalar() == revision
        assert revision == _revisions(app.extensions["migrate"].directory)[0]
        db.session.remove()

    health = app.test_client().get("/api/v1/health")
    assert health.status_code == 200 and health.get_json()["schema"] == "current"
    assert _counts(app) == before
    # The sequences came back with the rows: the next approval gets new ids.
    answer = app.test_client().post(f"/api/v1/applications/{ids[1]}/approve", json={},
                                    headers=sds)
    assert answer.status_code == 200, answer.data
    after = _counts(app)
    assert after["organisations"] == before["organisations"] + 1
    assert after["audit_events"] > before["audit_events"]

    # Into a database that holds a register: refused, nothing touched.
    refused = _sorregistry(source, "restore", str(dump))
    assert refused.exit_code == 1 and "is not empty" in refused.output
    assert _counts(app) == after


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL (SOR_TEST_BACKENDS)")
def test_a_file_that_is_no_dump_restores_nothing(source: str, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-dump"
    bogus.write_bytes(b"PGDMP" + b"\0" * 200)
    failed = _sorregistry(source, "restore", str(bogus))
    assert failed.exit_code == 1 and "Error: pg_restore failed" in failed.output
    assert _counts_of_tables(_app(source)) == []


def _counts_of_tables(app: Flask) -> list[str]:
    with app.app_context():
        names = db.inspect(db.engine).get_table_names()
        db.engine.dispose()
    return names


def test_a_sqlite_register_backs_up_and_restores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'register.db'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
    _fill(app)
    before = _counts(app)
    copy = tmp_path / "backup.db"
    runner = app.test_cli_runner()
    made = runner.invoke(args=["backup", str(copy)])
    assert made.exit_code == 0, made.output
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    restored_app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": target})
    restored = restored_app.test_cli_runner().invoke(args=["restore", str(copy)])
    assert restored.exit_code == 0, restored.output
    assert _counts(restored_app) == before
    assert restored_app.test_client().get("/api/v1/health").status_code == 200
    refused = restored_app.test_cli_runner().invoke(args=["restore", str(copy)])
    assert refused.exit_code == 1 and "is not empty" in refused.output

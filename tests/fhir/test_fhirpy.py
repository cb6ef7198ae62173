"""A real FHIR client, fhirpy, against the directory served by a threaded server on
127.0.0.1 over a committed database: it pages a municipality's 1,500 units to the end,
finds a practice by its ydernummer without the leading zeros, and catches up with
``_history?_since`` after an approval. Every /fhir answer it gets is checked as FHIR
(tests/support/fhir.py's WSGI middleware)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhirpy import SyncFHIRClient
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import make_server

from applications import service as applications
from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.models import Organisation
from hierarchy.search.names import NAMES
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from tests.applications.helpers import build_register, new_nursing_home
from tests.support.exports import generator
from tests.support.fhir import ValidatingApp

PRACTICE = ids.make_sor_code(301)
PRACTITIONER = ids.make_sor_code(302)


@pytest.fixture(scope="module")
def municipality_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One municipality with about 1,500 units, and private practices beside it."""
    path = tmp_path_factory.mktemp("fhirpy") / "municipality.xml"
    generator().generate(path, 1800, seed=14, municipalities=1, regions=0,
                         private_share=0.15, state_owners=0)
    return path


@pytest.fixture
def served(fresh_database: str, municipality_export: Path) -> Iterator[tuple[Flask, str]]:
    # werkzeug's server runs each request on a thread of its own, which would leave each
    # its own direct-read connection (sorregistry.reads) to be collected unclosed: the
    # reads go through the session here (gunicorn's threads, in the benchmark, keep theirs).
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "FAST_READS": False})
    checker = ValidatingApp(app.wsgi_app)
    app.wsgi_app = checker  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}/fhir"
    finally:
        server.shutdown()
        thread.join(timeout=30)
        NAMES.wait()
        NAMES.clear()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    assert checker.failures == []


def _set_up(app: Flask, export: Path) -> tuple[str, set[str], str]:
    """The register (the export, the applications' small one, a practice whose provider
    has ydernummer 001037) and a reader's token; the municipality and its units."""
    with app.app_context():
        session = db.session
        import_sor_file(session, export, actor="test")
        build_register(session)
        service.create_organisation(session, PRACTICE, {
            "level": "SI", "parent_sor_code": ids.make_sor_code(112), "name": "Lægerne Ved Åen",
            "entity_type": "394761003"}, source="staff", actor="test")
        service.create_organisation(session, PRACTITIONER, {
            "level": "OE", "parent_sor_code": PRACTICE, "name": "Læge Jens Jensen",
            "entity_type": "394761003", "ydernummer": "001037"}, source="staff", actor="test")
        sizes = select(Organisation.owner_sor_code, func.count()).group_by(
            Organisation.owner_sor_code).order_by(func.count().desc())
        municipality = session.execute(sizes.limit(1)).first()[0]
        units = set(session.execute(select(Organisation.sor_code).where(
            Organisation.owner_sor_code == municipality,
            Organisation.sor_code != municipality)).scalars())
        _, token = create_client(session, "fhirpy", cvr="55133018", roles=["reporter"])
        session.commit()
    return municipality, units, token


def test_fhirpy_pages_finds_and_catches_up(served, municipality_export):
    app, base = served
    municipality, units, token = _set_up(app, municipality_export)
    assert len(units) >= 1500
    client = SyncFHIRClient(base, authorization=f"Bearer {token}")

    subtree = client.resources("Organization").search(partof__below=municipality).limit(500)
    found = [resource["id"] for resource in subtree.fetch_all()]
    assert len(found) == len(set(found)) == len(units)  # each once ...
    assert set(found) == units  # ... exactly the subtree

    practitioners = client.resources("Organization").search(
        identifier="urn:oid:1.2.208.176.1.4|1037").fetch_all()
    assert [p["id"] for p in practitioners] == [PRACTITIONER]
    assert practitioners[0]["partOf"]["reference"] == f"Organization/{PRACTICE}"

    with app.app_context():
        actor = applications.Actor(name="Aarhus", roles=("municipality",),
                                   municipality_code="0751", cvr="55133018")
        application = applications.create_application(db.session, actor, new_nursing_home())
        applications.submit_application(db.session, actor, application.id)
        application_id = application.id
        db.session.commit()
    before = datetime.now(UTC)
    time.sleep(0.01)
    with app.app_context():
        staff = applications.Actor(name="SDS", roles=("sds",))
        approved = applications.approve_application(db.session, staff, application_id)
        new_code = approved.sor_code
        db.session.commit()
    stamp = before.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    history = client.execute("Organization/_history", method="get", params={"_since": stamp})
    assert history["type"] == "history"
    entries = history.get("entry", [])
    assert [(e["resource"]["id"], e["request"]["method"]) for e in entries] == [
        (new_code, "POST")]
    assert entries[0]["resource"]["name"] == "Plejecenter Åbo"

"""Twelve approvals at once, over real HTTP, each get their own SOR code."""

from __future__ import annotations

import json
import threading
import urllib.request

from werkzeug.serving import make_server

from applications import service
from hierarchy import identifiers as ids
from hierarchy.models import Organisation
from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.helpers import bearer, build_register, new_nursing_home

COUNT = 12


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=b"{}", method="POST",
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_twelve_concurrent_approvals_get_twelve_distinct_codes(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        build_register(db.session)
        sds = bearer(db.session, "sds", cvr="29190909", name="SDS")
        actor = service.Actor(name="test", roles=("municipality",), municipality_code="0751",
                              cvr="55133018")
        ids_ = []
        for n in range(COUNT):
            application = service.create_application(
                db.session, actor, new_nursing_home(institution_name=f"Plejehjem nr. {n}",
                                                    address={"street": f"Vej {n}",
                                                             "postal_code": "8000",
                                                             "city": "Aarhus C"}))
            service.submit_application(db.session, actor, application.id)
            ids_.append(application.id)
        db.session.commit()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1/applications"
    start = threading.Barrier(COUNT)
    results: list[tuple[int, dict]] = []

    def approve(application_id: int) -> None:
        start.wait()
        results.append(_post(f"{base}/{application_id}/approve", sds))

    workers = [threading.Thread(target=approve, args=(i,)) for i in ids_]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        server.shutdown()
    assert [status for status, _ in results] == [200] * COUNT, results
    codes = [body["sor_code"] for _, body in results]
    assert len(set(codes)) == COUNT
    assert all(ids.sor_code_has_valid_check_digit(code) for code in codes)
    with app.app_context():
        stored = {o.sor_code: o.name for o in db.session.query(Organisation).filter(
            Organisation.sor_code.in_(codes))}
        assert len(stored) == COUNT
        db.session.remove()
        db.engine.dispose()

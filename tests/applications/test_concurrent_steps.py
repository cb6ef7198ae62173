"""Every write path waits its turn: reject, request-info, withdraw, submit and PATCH at
once, over real HTTP, on different applications - none answers 503 (SQLite has one
writer at a time; each step takes the write lock first, in write_step, and queues)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from werkzeug.serving import make_server

from applications import service
from applications.models import Application
from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.helpers import AARHUS, AARHUS_CVR, bearer, build_register, new_nursing_home

EACH = 4  # applications per kind of step: 20 requests at once


def _send(method: str, url: str, headers: dict[str, str], body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_parallel_workflow_steps_on_different_applications_all_succeed(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    actor = service.Actor(name="test", roles=("municipality",), municipality_code=AARHUS,
                          cvr=AARHUS_CVR)
    with app.app_context():
        build_register(db.session)
        sds = bearer(db.session, "sds", cvr="29190909", name="SDS")
        municipality = bearer(db.session, "municipality", name="Aarhus")

        def application(n: int, submit: bool) -> int:
            created = service.create_application(db.session, actor, new_nursing_home(
                institution_name=f"Plejehjem nr. {n}",
                address={"street": f"Vej {n}", "postal_code": "8000", "city": "Aarhus C"}))
            if submit:
                service.submit_application(db.session, actor, created.id)
            return created.id

        submitted = [application(n, True) for n in range(3 * EACH)]
        drafts = [application(n, False) for n in range(3 * EACH, 5 * EACH)]
        db.session.commit()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1/applications"
    steps: list[tuple[str, Callable[[], tuple[int, dict]]]] = []
    for n, application_id in enumerate(submitted):
        kind = ("reject", "request-info", "withdraw")[n // EACH]
        who = municipality if kind == "withdraw" else sds
        steps.append((kind, lambda i=application_id, k=kind, h=who: _send(
            "POST", f"{base}/{i}/{k}", h, {"reason": "Parallel"})))
    for n, application_id in enumerate(drafts):
        if n < EACH:
            steps.append(("patch", lambda i=application_id: _send(
                "PATCH", f"{base}/{i}", municipality,
                new_nursing_home(institution_name=f"Omdøbt {i}", phone="87 13 00 01"))))
        else:
            steps.append(("submit", lambda i=application_id: _send(
                "POST", f"{base}/{i}/submit", municipality, {})))
    start = threading.Barrier(len(steps))
    results: dict[str, list[int]] = {}
    lock = threading.Lock()

    def run(kind: str, step: Callable[[], tuple[int, dict]]) -> None:
        start.wait()
        status, body = step()
        with lock:
            results.setdefault(kind, []).append(status)
            if status != 200:
                results.setdefault("errors", []).append(body)

    workers = [threading.Thread(target=run, args=step) for step in steps]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=180)
    finally:
        server.shutdown()
    assert results == {kind: [200] * EACH
                       for kind in ("reject", "request-info", "withdraw", "patch", "submit")}
    with app.app_context():
        statuses = dict(db.session.query(Application.id, Application.status))
        assert [statuses[i] for i in submitted] == (
            ["rejected"] * EACH + ["info_requested"] * EACH + ["withdrawn"] * EACH)
        assert [statuses[i] for i in drafts] == ["draft"] * EACH + ["submitted"] * EACH
        names = {i: name for i, name in db.session.query(Application.id,
                                                         Application.institution_name)}
        assert all(names[i] == f"Omdøbt {i}" for i in drafts[:EACH])
        db.session.remove()
        db.engine.dispose()

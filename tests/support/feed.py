"""Helpers of the feed's tests: reading the whole feed, a register served on a real HTTP
server with applications to approve, a poller, and the example mirror client
(examples/mirror.py, loaded by path: it is no package)."""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from flask import Flask
from werkzeug.serving import BaseWSGIServer

from applications import service as applications_service
from hierarchy.feed.reading import read_page
from hierarchy.models import Organisation
from hierarchy.schemas import organisation_item, with_successors
from hierarchy.sor_import import import_sor_file
from hierarchy.successors import find_successors
from sorregistry import create_app
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.reads import SessionReads, close_connections
from tests.applications.helpers import bearer, build_register, new_nursing_home
from tests.support.exports import generator

MIRROR = Path(__file__).parents[2] / "examples" / "mirror.py"


def feed(session, after: int = 0) -> list[dict[str, Any]]:
    """Every entry after *after*, through the session."""
    found: list[dict[str, Any]] = []
    while True:
        page = read_page(SessionReads(session), after, 1000)
        found += page.items
        after = page.last
        if not page.more:
            return found


def latest_items(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The organisation each code's last entry shows: what a mirror holds."""
    return {entry["sor_code"]: entry["organisation"] for entry in entries}


def register_items(session) -> dict[str, dict[str, Any]]:
    """Every organisation as the API shows it now (JSON: dates as text), successors with
    those that name one."""
    organisations = list(session.query(Organisation))
    found = find_successors(session, {o.sor_code: o.replaced_by for o in organisations},
                            date.today())
    return {o.sor_code: orjson.loads(orjson.dumps(
        with_successors(organisation_item(o), found.get(o.sor_code))))
        for o in organisations}


@functools.cache
def mirror_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sor_mirror_example", MIRROR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PooledServer(BaseWSGIServer):
    """Werkzeug's server with a fixed pool of worker threads, as gunicorn's gthread
    workers are: each thread keeps its direct-read connection (``sorregistry.reads``)
    across requests. A thread per request (``threaded=True``) would open a connection
    per request, a poller's hundreds of pages exhausting the server's connections."""

    def __init__(self, app: Flask, threads: int) -> None:
        super().__init__("127.0.0.1", 0, app)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self._handle, request, client_address)

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - reported as socketserver does
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


@contextmanager
def serve(app: Flask, threads: int = 24) -> Iterator[str]:
    """*app* on a real HTTP server on 127.0.0.1 with *threads* workers; its base URL."""
    server = PooledServer(app, threads)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        close_connections()  # the workers' direct-read connections, before their threads end
        server.pool.shutdown(wait=True)
        server.server_close()


# --- a register served over HTTP, with applications waiting for approval -----------------


@dataclass
class LiveRegister:
    """A committed register (a generated export, a municipality) served on 127.0.0.1."""

    app: Flask
    url: str
    reporter: dict[str, str]
    sds: dict[str, str]
    applications: list[int]  # submitted new-institution applications, to approve
    plain: Path  # the export loaded
    changed: Path  # the same export, changed (5 % changed, 1 % gone)

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return http_json("GET", f"{self.url}{path}?{query}", self.reporter)

    def approve(self, application_id: int) -> Any:
        return http_json("POST", f"{self.url}/api/v1/applications/{application_id}/approve",
                         self.sds, b"{}")

    def reimport(self, path: Path) -> None:
        """Import *path* as the command does, in a transaction of its own."""
        with self.app.app_context():
            with write_step(db.session()) as session:
                import_sor_file(session, path, actor="test")
            db.session.remove()


def http_json(method: str, url: str, headers: dict[str, str], body: bytes | None = None,
              timeout: float = 120) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers={
        **headers, **({"Content-Type": "application/json"} if body is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {url}: {error.code} {error.read()[:500]!r}") from error


@contextmanager
def live_register(database_url: str, folder: Path, *, applications: int = 12,
                  entities: int = 600) -> Iterator[LiveRegister]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url})
    gen = generator()
    plain, changed = folder / "plain.xml", folder / "changed.xml"
    gen.generate(plain, entities, seed=11, municipalities=1, regions=1)
    gen.generate(changed, entities, seed=11, municipalities=1, regions=1, mutate=0.05,
                 drop=0.01)
    with app.app_context():
        import_sor_file(db.session, plain, actor="test")
        db.session.commit()
        build_register(db.session)
        sds = bearer(db.session, "sds", cvr="29190909", name="SDS")
        reporter = bearer(db.session, "reporter", name="Mirror")
        actor = applications_service.Actor(name="Aarhus", roles=("municipality",),
                                           municipality_code="0751", cvr="55133018")
        waiting = []
        for n in range(applications):
            application = applications_service.create_application(
                db.session, actor, new_nursing_home(
                    institution_name=f"Plejehjem nr. {n}",
                    address={"street": f"Vej {n}", "postal_code": "8000", "city": "Aarhus C"}))
            applications_service.submit_application(db.session, actor, application.id)
            waiting.append(application.id)
        db.session.commit()
        db.session.remove()
    try:
        with serve(app) as url:
            yield LiveRegister(app, url, reporter, sds, waiting, plain, changed)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        close_connections()


class Poller(threading.Thread):
    """Follows the feed over HTTP until told to stop and it has read all there is."""

    def __init__(self, live: LiveRegister, cursor: str | None = None, limit: int = 7,
                 wait: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.live, self.cursor, self.limit, self.wait = live, cursor, limit, wait
        self.entries: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                drained = self.stop.is_set()  # a page asked for after the writers finished
                page = self.live.get("/api/v1/changes", after=self.cursor, limit=self.limit,
                                     wait=self.wait)
                self.entries += page["items"]
                self.cursor = page["next"]
                if drained and not page["items"] and not page["more"]:
                    return
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 120) -> list[dict[str, Any]]:
        self.stop.set()
        self.join(timeout)
        assert not self.is_alive(), "the poller did not finish"
        if self.error is not None:
            raise self.error
        return self.entries

"""Helpers of the feed's tests: reading the whole feed, a real HTTP server, the example
mirror client (examples/mirror.py, loaded by path: it is no package)."""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from hierarchy.feed.reading import read_page
from hierarchy.schemas import organisation_item
from hierarchy.models import Organisation
from sorregistry.reads import SessionReads

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
    """Every organisation as the API shows it now."""
    return {o.sor_code: organisation_item(o) for o in session.query(Organisation)}


@functools.cache
def mirror_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sor_mirror_example", MIRROR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """*app* on a real threaded HTTP server on 127.0.0.1; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()

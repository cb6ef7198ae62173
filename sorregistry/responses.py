"""Fast JSON responses for the lookups, with ETags from the body.

Marshmallow documents the API (the OpenAPI document is made from the
schemas), but dumping hundreds of nested items through it costs more than the
database does; lists are therefore built as plain dicts and encoded with
orjson. The ETag is a digest of the exact bytes sent, so If-None-Match gives
a 304 whenever the answer would be the same.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import orjson
from flask import Response, request


def json_response(payload: Any, status: int = 200) -> Response:
    body = orjson.dumps(payload)
    response = Response(body, status=status, mimetype="application/json")
    if request.method in ("GET", "HEAD") and status == 200:
        response.set_etag(hashlib.blake2b(body, digest_size=16).hexdigest())
        response.make_conditional(request)
    return response


def cached_json_response(body: bytes, etag: str) -> Response:
    """A 200 answered before (same bytes, same ETag), or 304 when the client has it."""
    response = Response(body, status=200, mimetype="application/json")
    response.set_etag(etag)
    response.make_conditional(request)
    return response


class AnswerCache:
    """Encoded answers, per worker process, valid for one version of the data.

    Entries of another version are never returned, and the first entry of a new
    version drops all others. Least recently used entries go first when the
    byte budget is full. Thread-safe (gunicorn's gthread workers share it).
    """

    def __init__(self, budget: int = 64 * 1024 * 1024, largest: int = 2 * 1024 * 1024) -> None:
        self.budget = budget
        self.largest = largest
        self.version: Any = None
        self.entries: OrderedDict[Any, tuple[bytes, str]] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, version: Any, key: Any) -> tuple[bytes, str] | None:
        with self.lock:
            if version != self.version:
                return None
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            return entry

    def put(self, version: Any, key: Any, body: bytes, etag: str) -> None:
        if len(body) > self.largest:
            return
        with self.lock:
            if version != self.version:
                self.version, self.entries, self.size = version, OrderedDict(), 0
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old[0])
            while self.entries and self.size + len(body) > self.budget:
                _, (dropped, _) = self.entries.popitem(last=False)
                self.size -= len(dropped)
            self.entries[key] = (body, etag)
            self.size += len(body)

    def clear(self) -> None:
        with self.lock:
            self.version, self.entries, self.size = None, OrderedDict(), 0


def dumps_text(value: Any) -> str:
    """orjson for SQLAlchemy's JSON columns (which want text)."""
    return orjson.dumps(value).decode()

"""Fast JSON responses for the lookups, with ETags from the body.

Marshmallow documents the API (the OpenAPI document is made from the
schemas), but dumping hundreds of nested items through it costs more than the
database does; lists are therefore built as plain dicts and encoded with
orjson. The ETag is a digest of the exact bytes sent, so If-None-Match gives
a 304 whenever the answer would be the same.
"""

from __future__ import annotations

import hashlib
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


def dumps_text(value: Any) -> str:
    """orjson for SQLAlchemy's JSON columns (which want text)."""
    return orjson.dumps(value).decode()

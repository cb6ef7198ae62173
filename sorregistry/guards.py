"""Request guards: what no view should have to think about, refused before any view runs.

Each guard answers a clear 4xx and changes nothing:

- **NUL characters** (400) in the query, a form field or a JSON body: no field of the
  register can hold one, PostgreSQL refuses them in text, and SQLite would store them.
  Uploaded files may hold any byte; only their names are checked.
- **A body an API does not read** (415): a declared API reads JSON (``application/json``
  or ``application/*+json``) unless it declares other media types; anything else would be
  ignored silently by the argument parser, and the request carried out without it.
- **JSON the service will not parse** (400): malformed, nested deeper than
  ``MAX_JSON_DEPTH`` (the deepest body of the API is 3 levels; the standard library's
  parser would raise RecursionError at about 1,000), a lone surrogate (no text column
  can store it), or a number too large for a double (a 5,000-digit integer).
- **Who before what** (401/403 before 422): an API view that requires roles
  (``sorregistry.security.require``) authenticates before its arguments are parsed, so a
  caller without a token, or without the role, learns nothing of the body's rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from flask import Flask, abort, current_app
from werkzeug.routing import IntegerConverter

from sorregistry.api import current_api
from sorregistry.request_id import current_request
from sorregistry.security import check_required_roles

MAX_JSON_DEPTH = 32
_VIEWS = "sor.guards.views"  # app.extensions: the view per (endpoint, method)
_JSON_NUL = re.compile(rb"\\u0000", re.IGNORECASE)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` in URLs, up to the largest 64-bit key: a larger number is no page or
    record (404), not an overflow in the database (500)."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, 2**63 - 1 if max is None else max, signed)


def refuse_nul_bytes() -> None:
    req = current_request()
    query = req.query_string
    # A NUL reaches the query as %00 (or raw): decoding the whole query to find one costs
    # more than looking for both.
    if b"%00" in query or b"\x00" in query:
        abort(400, description="the request contains a NUL character, which no field allows")
    # No Content-Length, no body Werkzeug reads (its content_length is None then).
    if not req.environ.get("CONTENT_LENGTH") or not req.content_length:
        return
    if req.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        texts = [*req.form.keys(), *req.form.values(),
                 *(upload.filename or "" for upload in req.files.values())]
        found = any("\x00" in text for text in texts)
    else:
        body = req.get_data(cache=True)
        found = b"\x00" in body or bool(_JSON_NUL.search(body))
    if found:
        abort(400, description="the request contains a NUL character, which no field allows")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether *value* nests deeper than *limit* (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterator[Any]
        if isinstance(item, dict):
            children = iter(item.values())
        elif isinstance(item, list):
            children = iter(item)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_api_body() -> None:
    req = current_request()
    if req.method not in _WRITES or not req.content_length:
        return
    declaration = current_api()
    if declaration is None:
        return
    mimetype = req.mimetype
    is_json = mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))
    if not is_json:
        if mimetype in declaration.accepts:
            return
        accepted = ", ".join(("application/json", *declaration.accepts))
        abort(415, description=f"the body must be {accepted}, not {mimetype or 'untyped'}")
    try:
        parsed = orjson.loads(req.get_data(cache=True))
    except orjson.JSONDecodeError as exc:
        abort(400, description=f"the body is not JSON the service can read: {exc}")
    if _depth_exceeds(parsed, MAX_JSON_DEPTH):
        abort(400, description=f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")


def authenticate_before_arguments() -> None:
    """An API view's required roles are checked before its arguments are parsed."""
    req = current_request()
    rule = req.url_rule
    if rule is None or current_api() is None:
        return
    # The view that will answer, found once per route and method (it never changes).
    views: dict[tuple[str, str], Callable[..., Any] | None] = (
        current_app.extensions.setdefault(_VIEWS, {}))
    route = (rule.endpoint, req.method)
    if route in views:
        view = views[route]
    else:
        view = views[route] = _view_for(current_app.view_functions, *route)
    if view is not None:
        check_required_roles(view)


def _view_for(views: Mapping[str, Callable[..., Any]], endpoint: str,
              method: str) -> Callable[..., Any] | None:
    """The function that answers *method* at *endpoint* (a MethodView's method)."""
    view = views.get(endpoint)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, method.lower(), None)
        if view is None and method == "HEAD":
            view = getattr(view_class, "get", None)
    return view


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedIntConverter
    app.before_request(refuse_nul_bytes)
    app.before_request(check_api_body)
    app.before_request(authenticate_before_arguments)

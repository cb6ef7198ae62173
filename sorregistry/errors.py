"""One JSON error envelope under /api/, HTML error pages elsewhere."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from flask import Flask, Response, abort, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def handle_http_exception(error: HTTPException) -> Response | tuple[str, int, list]:
    # flask-smorest's abort() and webargs put the message, field errors and
    # extra headers (WWW-Authenticate, ...) in error.data.
    data = getattr(error, "data", None) or {}
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    headers += list((data.get("headers") or {}).items())
    if _wants_json():
        body: dict = {
            "code": error.code,
            "status": error.name,
            "message": data.get("message") or error.description,
        }
        errors = data.get("errors") or data.get("messages")
        if errors:
            body["errors"] = errors
        response = jsonify(body)
        response.status_code = error.code or 500
        for key, value in headers:
            response.headers[key] = value
        return response
    html = render_template("error.html", error=error, message=data.get("message"))
    return html, error.code or 500, headers


# SQLSTATEs of a database out of reach: connection exceptions (class 08), the server
# shutting down or restarting (57P01-57P03), too many connections (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file")


def database_unavailable(error: Exception) -> bool:
    """Whether *error* says the database cannot be reached now (and a retry may work), not
    that a statement was wrong (a missing table, a syntax error, a cancelled query)."""
    if isinstance(error, PoolTimeout):
        return True  # every connection of the pool busy: out of reach for now
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if isinstance(error.orig, Exception) else error
    state = getattr(error, "sqlstate", None)
    if state is not None:
        return str(state).startswith(_UNAVAILABLE_STATES)
    if type(error).__module__.startswith("psycopg"):
        # No SQLSTATE: libpq's own failure (refused, lost, timed out connecting) - except
        # a pipeline aborted by an earlier statement's error, which is that error's.
        return type(error).__name__ != "PipelineAborted"
    return any(text in str(error) for text in _SQLITE_UNAVAILABLE)


def handle_database_error(error: Exception) -> Response | tuple[str, int, list]:
    """The database cannot be reached (down, restarting, out of connections) or SQLite is
    busy beyond its timeout: 503, so clients and proxies know to come back, rather than
    a 500 that says the service failed on the request. Any other database error is the
    500 it is, with its traceback in the log."""
    from flask import current_app

    if not database_unavailable(error):
        return handle_unexpected(error)
    current_app.logger.error("database unavailable on %s %s: %s", request.method,
                             request.path, (str(error).strip().splitlines() or [""])[0])
    reading = request.method in ("GET", "HEAD", "OPTIONS")
    unavailable = ServiceUnavailable(
        "the register's database is unavailable for a moment; try again shortly"
        if reading else
        "the register's database became unavailable; whether this request was carried "
        "out is not known: look before you send it again")
    response = handle_http_exception(unavailable)
    if reading:
        if isinstance(response, Response):
            response.headers["Retry-After"] = "5"
        else:
            body, status, headers = response
            response = body, status, [*headers, ("Retry-After", "5")]
    return response


def handle_unexpected(error: Exception) -> Response | tuple[str, int, list]:
    from flask import current_app

    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError())


_JSON_NUL = re.compile(rb"\\u0000", re.IGNORECASE)


def refuse_nul_bytes() -> None:
    """Refuse input carrying NUL characters: no register field can hold one, and
    PostgreSQL rejects them in text (it would otherwise surface as a 500)."""
    if not request.path.startswith("/api/"):
        return
    query = unquote_to_bytes(request.query_string)
    body = request.get_data(cache=True) if request.content_length else b""
    if b"\x00" in query or b"\x00" in body or _JSON_NUL.search(body):
        abort(400, description="the request contains a NUL character, which no field allows")


def register(app: Flask) -> None:
    app.before_request(refuse_nul_bytes)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    try:  # the lookups' direct reads raise the driver's own (sorregistry.reads)
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    else:
        app.register_error_handler(psycopg.OperationalError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)

"""Errors: one base for the domain's refusals, one handler per kind, one envelope per API.

Flask's "Returning API Errors as JSON" pattern: a domain error carries its HTTP status,
message and field errors (:class:`DomainError`), and one registered handler turns it
into the answer - the JSON envelope ``{"code", "status", "message", "errors"}`` for a
declared API (:mod:`sorregistry.api`; an API may render its own, as FHIR's
OperationOutcome), an HTML error page for the pages. Routes raise; none maps errors by
hand. Pages that want a friendlier answer (a flash message and a redirect) catch the
errors they expect themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import psycopg
from flask import Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.http import HTTP_STATUS_CODES

from sorregistry.api import current_api
from sorregistry.extensions import db

FieldErrors = Mapping[str, Any]


class DomainError(Exception):
    """A request the domain refuses, with the HTTP status that says how.

    Subclasses set ``status`` (404 unknown, 403 not allowed, 409 not now, 422 never
    right); ``field_errors`` says which input was wrong and why, shaped as the API
    shows it (``{field: [reasons]}``, or webargs' ``{"json": {field: [reasons]}}``
    for a request body).
    """

    status: ClassVar[int] = 422

    def __init__(self, message: str = "", *, field_errors: FieldErrors | None = None) -> None:
        super().__init__(message)
        self.field_errors: FieldErrors | None = field_errors

    @property
    def message(self) -> str:
        return str(self)


def error_body(status: int, message: str, errors: Any = None) -> dict[str, Any]:
    """The API's JSON error envelope."""
    body: dict[str, Any] = {"code": status, "status": HTTP_STATUS_CODES.get(status, "Error"),
                            "message": message}
    if errors:
        body["errors"] = errors
    return body


def _answer(status: int, message: str, errors: Any, headers: list[tuple[str, str]],
            error: HTTPException | None = None) -> Response | tuple[str, int, list[Any]]:
    declaration = current_api()
    if declaration is not None and declaration.render_error is not None:
        return declaration.render_error(status, message, errors, headers)
    if declaration is not None:
        response = jsonify(error_body(status, message, errors))
        response.status_code = status
        for key, value in headers:
            response.headers[key] = value
        return response
    shown = error if error is not None else HTTPException(message)
    if error is None:
        shown.code = status
    html = render_template("error.html", error=shown, message=message)
    return html, status, headers


def handle_http_exception(error: HTTPException) -> Response | tuple[str, int, list[Any]]:
    # flask-smorest's abort() and webargs put the message, field errors and
    # extra headers (WWW-Authenticate, ...) in error.data.
    data = getattr(error, "data", None) or {}
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    headers += list((data.get("headers") or {}).items())
    message = data.get("message") or error.description or ""
    errors = data.get("errors") or data.get("messages")
    return _answer(error.code or 500, message, errors, headers, error)


def handle_domain_error(error: DomainError) -> Response | tuple[str, int, list[Any]]:
    """A domain refusal: nothing of the request is committed, and the caller is told why."""
    db.session.rollback()
    return _answer(error.status, error.message, error.field_errors, [])


# SQLSTATEs of a database out of reach: connection exceptions (class 08), the server
# shutting down or restarting (57P01-57P03), too many connections (53300).
# 25006 read_only_sql_transaction: a write that reached a server just demoted to a
# standby (a switchover); it changed nothing, and the promoted one takes it shortly.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300", "25006")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file")


def database_unavailable(error: BaseException) -> bool:
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


def handle_database_error(error: Exception) -> Response | tuple[str, int, list[Any]]:
    """The database cannot be reached (down, restarting, out of connections) or SQLite is
    busy beyond its timeout: 503, so clients and proxies know to come back, rather than
    a 500 that says the service failed on the request. Any other database error is the
    500 it is, with its traceback in the log."""
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


def handle_unexpected(error: Exception) -> Response | tuple[str, int, list[Any]]:
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(OperationalError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    # The lookups' direct reads raise the driver's own (sorregistry.reads).
    app.register_error_handler(psycopg.OperationalError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)

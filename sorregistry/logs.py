"""Logs: one line per request, and every log line as JSON (or text) on standard error.

``SOR_LOG_FORMAT`` = ``json`` (the default in production) or ``text`` (the default in
development). In JSON each line is one object - ``time``, ``level``, ``logger``,
``message`` and the record's fields - for a log shipper to read without a parser of its
own; the standard logging does the work, python-json-logger the formatting, so a
library's warnings come out in the same shape.

The request line (logger ``sorregistry.request``, level INFO) is written once the answer
has been sent (the server closes it: the client does not wait for the line):
``method``, ``path``, ``endpoint`` (the Flask endpoint, as the metrics name it),
``status``, ``duration_ms`` (from the app's start of the request until the last byte
was handed to the server), ``request_id`` (also sent back as
``X-Request-Id`` and written into audit rows and the register's commits), ``client``
(``client:<id>`` for an API client, ``user:<id>`` for a person logged in, absent
otherwise) and ``remote_addr``. A line logged while a request is served carries its
``request_id`` too. Under gunicorn, its access log is off when this one is JSON
(``gunicorn.conf.py``): one line per request, not two.

Nothing is set up under tests unless a test asks (``LOG_FORMAT`` in its config): the
test runner captures logs its own way.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from typing import IO, Any

from flask import Flask, Request, Response, g, has_request_context
from pythonjsonlogger.orjson import OrjsonFormatter as JsonFormatter

from sorregistry.request_id import (
    STARTED_KEY,
    after_sent,
    current_request,
    current_request_id,
    endpoint_label,
    seconds_since,
)

FORMATS = ("json", "text")
REQUEST_LOGGER = logging.getLogger("sorregistry.request")
_HANDLER_MARK = "_sor_handler"
_IDENTITY = "sor.identity"  # request.environ: the API caller (sorregistry.security)
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Give a record made while a request is served that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = current_request_id()
        return True


def formatter(kind: str) -> logging.Formatter:
    """The formatter of *kind* (``json`` or ``text``)."""
    if kind == "json":
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    return logging.Formatter(_TEXT)


def handler(kind: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing records as *kind* to *stream* (standard error by default)."""
    made = logging.StreamHandler(stream if stream is not None else sys.stderr)
    made.setFormatter(formatter(kind))
    made.addFilter(RequestIdFilter())
    setattr(made, _HANDLER_MARK, True)
    return made


def log_format(app: Flask) -> str:
    """The configured format: SOR_LOG_FORMAT, else json in production, text elsewhere."""
    configured = app.config.get("LOG_FORMAT")
    if configured:
        return str(configured)
    return "json" if app.config.get("SOR_ENV") == "production" else "text"


def configure(kind: str, stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records (INFO and up) to one handler of *kind*, replacing
    the one this module set before (create_app may run more than once in a process)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            root.removeHandler(existing)
    made = handler(kind, stream)
    root.addHandler(made)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return made


def _caller(environ: dict[str, Any]) -> str | None:
    """Who made the request, as far as the request already knows (nothing is loaded for
    the log's sake): the API client, or the person logged in (Flask-Login's user)."""
    identity = environ.get(_IDENTITY)
    if identity is not None:
        return f"client:{identity.id}"
    user: Any = g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{getattr(user, 'id', None) or user.get_id()}"
    return None


def request_fields(req: Request, response: Response) -> dict[str, Any]:
    """The request line's fields, but its duration (made when the answer has been sent)."""
    fields: dict[str, Any] = {
        "method": req.method,
        "path": req.path,
        "endpoint": endpoint_label(req),
        "status": response.status_code,
        "request_id": current_request_id(),
        "remote_addr": req.remote_addr,
    }
    caller = _caller(req.environ)
    if caller is not None:
        fields["client"] = caller
    return fields


def _log_request(response: Response) -> Response:
    if REQUEST_LOGGER.isEnabledFor(logging.INFO):
        # The fields are the request's, so they are read now; the line is made and
        # written once the answer has been sent (:func:`after_sent`), not before it.
        # One lookup of the request behind the proxy, not one per field (a request
        # line is written for every answer).
        req = current_request()
        after_sent(response, partial(_write_request_line, request_fields(req, response),
                                     req.environ.get(STARTED_KEY)))
    return response


def _write_request_line(fields: dict[str, Any], started: float | None) -> None:
    # Until the last byte left, as the client waited (0 when the start was not noted).
    fields["duration_ms"] = round(seconds_since(started) * 1000, 2)
    # The record made directly: Logger.info would look up the caller's file and line (a
    # stack walk, a third of the line's cost), which the line never shows.
    REQUEST_LOGGER.handle(REQUEST_LOGGER.makeRecord(
        REQUEST_LOGGER.name, logging.INFO, __file__, 0, "%s %s %s %.1f ms",
        (fields["method"], fields["path"], fields["status"], fields["duration_ms"]),
        None, extra=fields))


def init_app(app: Flask) -> None:
    """Set up the log (outside tests) and the request line. Call it early: after_request
    hooks run last-registered first, so an early one sees the final answer."""
    kind = log_format(app)
    if not app.testing or app.config.get("LOG_FORMAT"):
        configure(kind)
    app.after_request(_log_request)


class Outage:
    """A background thread's connection trouble, logged once when it begins and once when
    it ends - not a traceback at every retry (such threads retry every few seconds for as
    long as the database is away, in every worker)."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what  # "the feed's watcher", ...
        self.down = False

    def failed(self, error: BaseException, doing: str = "cannot connect") -> None:
        """An attempt failed with *error*; warned of when it is the outage's first."""
        if not self.down:
            self.logger.warning("%s %s (%s); retrying", self.what, doing,
                                str(error).strip() or type(error).__name__)
        self.down = True

    def ended(self) -> None:
        """An attempt succeeded: noted when it ends an outage."""
        if self.down:
            self.logger.info("%s is connected again", self.what)
        self.down = False

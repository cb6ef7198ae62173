"""A request id for every answer: taken from a trusted proxy's ``X-Request-Id`` when it is
sane, made otherwise, sent back in ``X-Request-Id`` and written into the audit log, the
register's commits (``hierarchy.changes``) and the request's log line
(``sorregistry.logs``). The request's start is noted here too, for its duration, and
:func:`after_sent` runs what the client need not wait for once the answer has left."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

from flask import Flask, Request, Response, has_request_context, request

HEADER = "X-Request-Id"
_UNMATCHED = "<unmatched>"  # the endpoint label of a path that matches no route
_SANE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_ID = "sor.request_id"  # request.environ: this request's id
STARTED_KEY = "sor.started"  # request.environ: perf_counter() when the app began the request


def current_request_id() -> str | None:
    """This request's id; None outside a request (a command)."""
    if not has_request_context():
        return None
    # The request's own (g belongs to the app context, which a test's may outlive).
    environ = request.environ
    known: str | None = environ.get(_ID)
    if known is None:
        offered = environ.get("HTTP_X_REQUEST_ID", "")
        known = environ[_ID] = offered if _SANE.match(offered) else uuid.uuid4().hex
    return known


def current_request() -> Request:
    """The request itself, not Flask's proxy to it: each attribute read through the proxy
    looks the request up again (~1 microsecond each). The hooks every request runs read
    several of its attributes; they take it once."""
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]  # noqa: SLF001


def seconds_since(started: float | None) -> float:
    """Seconds since *started* (a request's noted start, ``STARTED_KEY``); 0 for None."""
    return 0.0 if started is None else time.perf_counter() - started


def after_sent(response: Response, callback: Callable[[], None]) -> None:
    """Run *callback* once *response* has been sent.

    A WSGI server closes an answer after handing over its last byte (PEP 3333; gunicorn
    before it reads the connection's next request), and the answer then calls what it was
    given. Work the client need not wait for - the request line, the metrics' count -
    goes there, with what it needs of the request read before (the request is gone by
    then). The timing it records runs until the answer left, streamed ones included.
    """
    response.call_on_close(callback)


def endpoint_label(req: Request | None = None) -> str:
    """The request's Flask endpoint (the view's name: one per route, whatever the codes in
    its URL), or ``<unmatched>`` for a path that matches no route."""
    rule = (request if req is None else req).url_rule
    if rule is not None and rule.endpoint:
        return str(rule.endpoint)
    return _UNMATCHED


def _note_start() -> None:
    request.environ.setdefault(STARTED_KEY, time.perf_counter())


def _send_back(response: Response) -> Response:
    request_id = current_request_id()
    if request_id:
        response.headers[HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    """Call it first: its start is the request's, its header is on every answer."""
    app.before_request(_note_start)
    app.after_request(_send_back)

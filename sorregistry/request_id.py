"""A request id for every answer: taken from a trusted proxy's ``X-Request-Id`` when it is
sane, made otherwise, sent back in ``X-Request-Id`` and written into the audit log."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-Id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def current_request_id() -> str | None:
    """This request's id; None outside a request (a command)."""
    if not has_request_context():
        return None
    known: str | None = g.get("request_id")
    if known is None:
        offered = request.headers.get(HEADER, "")
        known = offered if _SANE.match(offered) else uuid.uuid4().hex
        g.request_id = known
    return known


def _send_back(response: Response) -> Response:
    request_id = current_request_id()
    if request_id:
        response.headers[HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    app.after_request(_send_back)

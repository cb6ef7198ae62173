"""One JSON error envelope under /api/, HTML error pages elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError


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


def handle_unexpected(error: Exception) -> Response | tuple[str, int, list]:
    from flask import current_app

    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError())


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)

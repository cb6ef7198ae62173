"""One JSON error envelope under /api/, HTML error pages elsewhere."""

from __future__ import annotations

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def handle_http_exception(error: HTTPException) -> Response | tuple[str, int, list]:
    headers = list(error.get_headers())
    headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
    if _wants_json():
        body: dict = {
            "code": error.code,
            "status": error.name,
            "message": error.description,
        }
        # flask-smorest / webargs put the field errors on the exception.
        data = getattr(error, "data", None) or {}
        if "messages" in data:
            body["errors"] = data["messages"]
        elif "errors" in data:
            body["errors"] = data["errors"]
        if getattr(error, "errors", None):
            body["errors"] = error.errors  # type: ignore[attr-defined]
        from flask import jsonify

        response = jsonify(body)
        response.status_code = error.code or 500
        for key, value in headers:
            response.headers[key] = value
        return response
    html = render_template("error.html", error=error)
    return html, error.code or 500, headers


def handle_unexpected(error: Exception) -> Response | tuple[str, int, list]:
    from flask import current_app

    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError())


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)

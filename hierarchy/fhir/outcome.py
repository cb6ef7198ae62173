"""FHIR's answers: ``application/fhir+json`` bodies, and every error as an OperationOutcome.

The directory is a declared API (``sorregistry.api.register_api``) whose ``render_error``
is :func:`render_error`: the one error handler (``sorregistry.errors``) hands it every
refusal - the directory's own (:class:`FhirError`), a missing or unknown token (401), a
role it lacks (403), a path it does not serve (404), a method it does not allow (405), a
body it does not read (415), the database out of reach (503), a failure (500) - and it
answers each as an OperationOutcome with the status and FHIR's issue type for it. Nothing
else renders an error.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, request

from hierarchy.fhir import systems
from sorregistry.errors import DomainError
from sorregistry.responses import conditional as made_conditional
from sorregistry.responses import etag_of

# HTTP status -> FHIR's issue type (http://hl7.org/fhir/valueset-issue-type.html).
ISSUE_TYPES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 409: "conflict",
               410: "deleted", 412: "conflict", 413: "too-costly", 415: "not-supported",
               422: "processing", 429: "throttled", 503: "transient"}


class FhirError(DomainError):
    """A request the directory refuses: 400 unless a subclass says otherwise."""

    status = 400


class NotFound(FhirError):
    """No such resource, version or resource type (404)."""

    status = 404


class NotAcceptable(FhirError):
    """The client accepts no format this server writes (406)."""

    status = 406


def outcome(status: int, message: str, details: Any = None) -> dict[str, Any]:
    """An OperationOutcome with one issue naming the parameter *details* names (one more
    for each, when it names several)."""
    code = ISSUE_TYPES.get(status, "exception" if status >= 500 else "processing")
    issues: list[dict[str, Any]] = [{"severity": "error" if status >= 400 else "information",
                                     "code": code, "diagnostics": message or str(status)}]
    fields = [(str(field), reason) for field, reasons in
              (details.items() if isinstance(details, dict) else [])
              for reason in (reasons if isinstance(reasons, list) else [reasons])]
    if len(fields) == 1:  # the message is about this one parameter: say which
        issues[0]["expression"] = [fields[0][0]]
    else:
        issues += [{"severity": "error", "code": code, "diagnostics": f"{field}: {reason}",
                    "expression": [field]} for field, reason in fields]
    return {"resourceType": "OperationOutcome", "issue": issues}


def fhir_response(payload: Any, status: int = 200, *, conditional: bool = False) -> Response:
    """*payload* (or its JSON, bytes) as ``application/fhir+json``; with *conditional*, an
    ETag of its bytes and 304 when the client holds them."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    response = Response(body, status=status, content_type=f"{systems.JSON}; charset=utf-8")
    if conditional and request.method in ("GET", "HEAD") and status == 200:
        response.set_etag(etag_of(body))
        made_conditional(response)
    return response


def render_error(status: int, message: str, errors: Any,
                 headers: list[tuple[str, str]]) -> Response:
    """The directory's error body (``sorregistry.api.ErrorRenderer``): an OperationOutcome."""
    response = fhir_response(outcome(status, message, errors), status)
    for key, value in headers:
        response.headers[key] = value
    return response

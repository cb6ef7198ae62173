"""The rate limits in the OpenAPI document (:mod:`sorregistry.ratelimit` counts them): the
429 answer on every limited operation, the limits in the document's text and in
``x-rate-limits``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Flask
from werkzeug.routing import Rule

from sorregistry.extensions import api as openapi

RATE_LIMITED = "RATE_LIMITED"  # the OpenAPI document's response component


class _RateLimitDoc(BasePlugin):
    """Adds the 429 answer to every operation that is limited, as the views register."""

    def __init__(self, app: Flask, exempt_paths: list[str],
                 is_exempt: Callable[[object | None], bool]) -> None:
        self.app = app
        self.exempt_paths = exempt_paths
        self.is_exempt = is_exempt

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **kwargs: Any) -> None:
        rule = kwargs.get("rule")
        view = self.app.view_functions.get(rule.endpoint) if isinstance(rule, Rule) else None
        if self.is_exempt(view):
            self.exempt_paths.append(path or "")
            return
        for operation in (operations or {}).values():
            operation.setdefault("responses", {})["429"] = RATE_LIMITED


def document(app: Flask, on: bool, is_exempt: Callable[[object | None], bool]) -> None:
    """Describe the limits in the OpenAPI document: its text, ``x-rate-limits``, and the
    429 answer of every operation whose view *is_exempt* does not exempt."""
    config = app.config
    spec: APISpec = openapi.spec
    spec.components.response(RATE_LIMITED, {
        "description": "Too many requests: over the rate limit / for mange forespørgsler",
        "headers": {"Retry-After": {
            "description": "Seconds until a request is allowed again / sekunder til næste",
            "schema": {"type": "integer", "minimum": 1}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
    exempt_paths: list[str] = []
    spec.plugins = [*spec.plugins, _RateLimitDoc(app, exempt_paths, is_exempt)]
    described = (
        f"Rate limits{'' if on else ' (turned off on this instance)'}: "
        f"{config['RATELIMIT_API']} per API client, over every endpoint together; a "
        f"request without a valid token counts for its address, "
        f"{config['RATELIMIT_ANONYMOUS']}. Over the limit: 429 Too Many Requests with "
        f"Retry-After (seconds). / Hastighedsgrænser: {config['RATELIMIT_API']} pr. "
        f"API-klient; uden gyldigt token {config['RATELIMIT_ANONYMOUS']} pr. adresse; "
        f"derover 429 med Retry-After.")
    info = spec.options.setdefault("info", {})
    info["description"] = "\n\n".join(filter(None, (info.get("description"), described)))
    spec.options["x-rate-limits"] = {
        "enabled": on,
        "algorithm": "sliding window counter",
        "per_client": str(config["RATELIMIT_API"]),
        "per_address_without_valid_token": str(config["RATELIMIT_ANONYMOUS"]),
        "exempt": exempt_paths,
    }

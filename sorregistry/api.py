"""APIs are declared, not guessed from their URL.

A feature registers each API blueprint with :func:`register_api`. Every request a
declared API serves - and every request under a declared API's URL prefix that
matches no route - is an API request: errors are JSON (or what the API's own
``render_error`` makes of them, FHIR's OperationOutcome say), no cookie session is
opened or saved, and no CSRF token is asked for (no cookie authenticates an API, so
there is nothing to forge). Whatever the prefix: a blueprint under ``/fhir`` is as
much an API as one under ``/api/v1``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from weakref import WeakKeyDictionary

import swagger_ui_bundle
from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    has_request_context,
    send_from_directory,
)
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, ValidationError, fields, missing
from webargs.core import _UNKNOWN_DEFAULT_PARAM
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy

from sorregistry.extensions import api as openapi
from sorregistry.request_id import current_request

_APIS = "sor.apis"
_CURRENT = "sor.api"  # request.environ: the API this request is for, once routed
_BY_PREFIX = "sor.apis.by_prefix"  # app.extensions: the declarations, longest prefix first

# An API's own error body: (status, message, field errors or None, headers) -> response.
ErrorRenderer = Callable[[int, str, Any, list[tuple[str, str]]], Response]


@dataclass(frozen=True, slots=True)
class ApiDeclaration:
    """One declared API: its blueprint's name, URL prefix and error renderer."""

    name: str
    url_prefix: str
    render_error: ErrorRenderer | None = None
    # Media types of request bodies it reads besides JSON (FHIR's form-encoded _search).
    accepts: tuple[str, ...] = ()


def declare_api(app: Flask, name: str, url_prefix: str,
                render_error: ErrorRenderer | None = None,
                accepts: tuple[str, ...] = ()) -> None:
    """Declare the blueprint *name*, served under *url_prefix*, as an API."""
    declarations: dict[str, ApiDeclaration] = app.extensions.setdefault(_APIS, {})
    declarations[name] = ApiDeclaration(name, url_prefix.rstrip("/"), render_error, accepts)
    app.extensions.pop(_BY_PREFIX, None)  # made again from the declarations when asked


def register_api(app: Flask, blueprint: Blueprint, *, url_prefix: str,
                 render_error: ErrorRenderer | None = None,
                 accepts: tuple[str, ...] = ()) -> None:
    """Register *blueprint* under *url_prefix* and declare it an API (reading JSON bodies,
    and the media types in *accepts*).

    A flask-smorest blueprint goes into the OpenAPI document; a plain Flask
    blueprint (FHIR, say, which documents itself) is registered as it is.
    """
    if isinstance(blueprint, SmorestBlueprint):
        openapi.register_blueprint(blueprint, url_prefix=url_prefix)
    else:
        app.register_blueprint(blueprint, url_prefix=url_prefix)
    declare_api(app, blueprint.name, url_prefix, render_error, accepts)


def current_api() -> ApiDeclaration | None:
    """The API the current request is for, or None for a page (or no request)."""
    if not has_request_context():
        return None
    # The request itself, once: each attribute read through the proxy looks it up again
    # (asked several times a request: guards, errors, limits, sessions).
    req = current_request()
    environ = req.environ
    if _CURRENT in environ:
        return cast(ApiDeclaration | None, environ[_CURRENT])
    found = _find_api(req)
    if req.url_rule is not None or req.routing_exception is not None:
        environ[_CURRENT] = found  # routing is done: the answer cannot change now
    return found


def _find_api(req: Request) -> ApiDeclaration | None:
    extensions = current_app.extensions
    declarations: dict[str, ApiDeclaration] = extensions.get(_APIS, {})
    for name in req.blueprints:
        if name in declarations:
            return declarations[name]
    if req.url_rule is not None:
        return None  # a route of a page blueprint, or of the app itself
    # No route matched (a 404 or 405), or not yet (the session opens before routing):
    # the API whose prefix the path lies under, the longest first.
    by_length: tuple[ApiDeclaration, ...] | None = extensions.get(_BY_PREFIX)
    if by_length is None:
        by_length = extensions[_BY_PREFIX] = tuple(
            sorted(declarations.values(), key=lambda d: len(d.url_prefix), reverse=True))
    path = req.path.rstrip("/")
    for declaration in by_length:
        prefix = declaration.url_prefix
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return declaration
    return None


def is_api_request() -> bool:
    return current_api() is not None


class _Arguments(MultiDictProxy):
    """webargs' view of a query string (or form) for one schema, which asks which of the
    schema's fields take a repeated key (``level=SI&level=OE``) once per schema, not on
    every request: webargs visits every field each time (a lookup's sixteen filters,
    ~50 function calls of an answer's ~950 beyond a refused request's)."""

    # Per schema: the field classes asked about (the parser's) and the keys found (read,
    # never changed, by every request's proxy).
    _MULTIPLE: WeakKeyDictionary[Schema, tuple[tuple[type, ...], set[str]]] = (
        WeakKeyDictionary())

    def _collect_multiple_keys(self, schema: Schema) -> set[str]:
        kept = self._MULTIPLE.get(schema)
        if kept is None or kept[0] != self.known_multi_fields:
            kept = (self.known_multi_fields, super()._collect_multiple_keys(schema))
            self._MULTIPLE[schema] = kept
        return kept[1]


# The fields a query string's :class:`_FlatQuery` reads itself: one value, deserialised by
# the field (its validators included); fields.List of them takes the key repeated.
_FLAT_FIELDS = (fields.String, fields.Integer, fields.Float, fields.Boolean, fields.Date,
                fields.DateTime)


@dataclass(frozen=True, slots=True)
class _FlatField:
    key: str  # in the query string (the field's data_key)
    name: str  # in the arguments
    field: fields.Field[Any]
    repeated: bool  # a fields.List: every value of the key
    visit_absent: bool  # required, or a default to apply


class _FlatQuery:
    """A query string loaded into a flat schema (plain fields, no hooks) as marshmallow
    loads it through webargs - the fields given deserialised and validated by the schema's
    own fields, the defaults of those not given applied, unknown keys left out - without
    webargs' proxy and marshmallow's visit of every field with its error store: ~180 of
    the function calls a lookup makes beyond a refused request's (a fifth of Privat's),
    for a query of a few keys against a list's sixteen filters. Anything else - a value a
    field refuses, a required field missing, a plain field's key repeated - is left to
    webargs, whose answer (the 422 and its messages) is the one the API gives."""

    _PLANS: WeakKeyDictionary[Schema, _FlatQuery | None] = WeakKeyDictionary()

    def __init__(self, flat: tuple[_FlatField, ...], dict_class: type[dict[str, Any]]) -> None:
        self.flat = flat
        self.dict_class = dict_class

    @classmethod
    def of(cls, schema: Schema) -> _FlatQuery | None:
        """The schema's plan, made once (None: not a flat schema)."""
        try:
            return cls._PLANS[schema]
        except KeyError:
            plan = cls._PLANS[schema] = cls._plan(schema)
            return plan

    @classmethod
    def _plan(cls, schema: Schema) -> _FlatQuery | None:
        if schema.many or schema.partial or any(schema._hooks.values()):
            return None
        flat = []
        for name, field in schema.load_fields.items():
            plain: fields.Field[Any] = field
            repeated = isinstance(field, fields.List)
            if isinstance(field, fields.List):
                if type(field) is not fields.List:  # a list of its own (delimited)
                    return None
                plain = field.inner
            if type(plain) not in _FLAT_FIELDS or field.attribute is not None:
                return None
            flat.append(_FlatField(field.data_key or name, name, field, repeated,
                                   field.required or field.load_default is not missing))
        return cls(tuple(flat), schema.dict_class)

    def load(self, args: Any) -> dict[str, Any] | None:
        """*args* (the request's query string, a MultiDict) loaded, or None for webargs."""
        loaded = self.dict_class()
        try:
            for one in self.flat:
                if one.key not in args:
                    if one.visit_absent:
                        loaded[one.name] = one.field.deserialize(missing, one.key, args)
                    continue
                values = args.getlist(one.key)
                if one.repeated:
                    loaded[one.name] = one.field.deserialize(values, one.key, args)
                elif len(values) == 1:
                    loaded[one.name] = one.field.deserialize(values[0], one.key, args)
                else:
                    return None
        except ValidationError:
            return None
        return loaded


class ArgumentsParser(FlaskParser):
    """webargs' Flask parser, with :class:`_Arguments` for query strings and forms, and
    :class:`_FlatQuery` first for a query string loaded into a flat schema."""

    def parse(self, argmap: Any, req: Request | None = None, *, location: str | None = None,
              unknown: str | None = _UNKNOWN_DEFAULT_PARAM, **kwargs: Any) -> Any:
        if (location in ("query", "querystring") and isinstance(argmap, Schema)
                and unknown is _UNKNOWN_DEFAULT_PARAM and self.unknown is _UNKNOWN_DEFAULT_PARAM
                and not kwargs.get("validate")):
            plan = _FlatQuery.of(argmap)
            if plan is not None:
                loaded = plan.load((req or self.get_default_request()).args)
                if loaded is not None:
                    return loaded
        return super().parse(argmap, req, location=location, unknown=unknown, **kwargs)

    def _makeproxy(self, multidict: Any, schema: Schema, *,
                   cls: type[MultiDictProxy] = _Arguments) -> MultiDictProxy:
        return super()._makeproxy(multidict, schema, cls=cls)


class ApiBlueprint(SmorestBlueprint):  # type: ignore[misc]  # flask-smorest is untyped
    """A flask-smorest blueprint whose arguments :class:`ArgumentsParser` reads: every
    API's blueprint (``flask_smorest.Blueprint`` parses with its own shared parser).
    Its decorators that only document (``doc``, ``alt_response``) add no call to a
    request (:func:`_documented`)."""

    ARGUMENTS_PARSER = ArgumentsParser()

    def doc(self, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        document = super().doc(**kwargs)
        return lambda func: _documented(func, document(func))

    def alt_response(self, *args: Any,
                     **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        document = super().alt_response(*args, **kwargs)
        return lambda func: _documented(func, document(func))


def _documented(func: Callable[..., Any], wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """*func* as flask-smorest's *wrapper* of it is documented, without the wrapper's call.

    flask-smorest's ``doc`` and ``alt_response`` keep the documentation on a wrapper
    whose call is ``current_app.ensure_sync(func)(...)``: nothing but a call more for a
    function that is no coroutine (~4 us a request each, behind every API view; resolve
    has four). Returned instead: a copy of the function - its code, globals, defaults and
    closure - carrying the wrapper's attributes (its ``_apidoc``, ``__wrapped__``, what
    the decorators below it set). Anything else (a coroutine, a callable object) keeps
    the wrapper."""
    if type(func) is not types.FunctionType or inspect.iscoroutinefunction(func):
        return wrapper
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                              func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    functools.update_wrapper(copy, func)
    copy.__dict__.update(wrapper.__dict__)
    return copy


# The OpenAPI document and its interactive documentation (flask-smorest's "api-docs"
# blueprint, under OPENAPI_URL_PREFIX), with the Swagger UI files served from the
# swagger-ui-bundle package: no CDN, so the documentation works on a closed network.
docs_assets = Blueprint("api_docs_assets", __name__)


@docs_assets.get("/assets/<path:filename>")
def swagger_assets(filename: str) -> Response:
    """The Swagger UI files for the interactive API documentation."""
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    """Bind the OpenAPI extension and declare its documentation an API."""
    openapi.init_app(app)
    openapi.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer",
         "description": "The service's own token (sorregistry create-client), or an "
                        "identity provider's JWT access token (RFC 9068) for this API's "
                        "audience, whose scopes sor:lookup, sor:apply, sor:staff give the "
                        "roles reporter, municipality, sds"},
    )
    prefix = str(app.config.get("OPENAPI_URL_PREFIX") or "/api").rstrip("/")
    declare_api(app, "api-docs", prefix)
    docs_path = str(app.config.get("OPENAPI_SWAGGER_UI_PATH") or "docs").strip("/")
    app.register_blueprint(docs_assets, url_prefix=f"{prefix}/{docs_path}")
    declare_api(app, docs_assets.name, f"{prefix}/{docs_path}")

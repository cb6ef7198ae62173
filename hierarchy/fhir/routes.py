"""The directory's HTTP interface under ``/fhir``: a plain Flask blueprint (FHIR documents
itself in its CapabilityStatement; it is no part of the OpenAPI document).

Declared as an API by ``hierarchy.init_app`` (``sorregistry.api.register_api``) with
OperationOutcome errors and form-encoded bodies (``POST [type]/_search``). Every call but
``metadata`` needs the bearer token of a client with the role ``reporter`` or ``sds``.
Answers are ``application/fhir+json`` (``_format=json`` and ``Accept`` honoured; an
``Accept`` of no JSON type is 406, a ``_format`` of another 400), a search's every match as
NDJSON with ``_format=ndjson``.
"""

from __future__ import annotations

from datetime import date, datetime
from email.utils import format_datetime

from flask import Blueprint, Response, request, stream_with_context

from hierarchy.fhir import capability, history, parameters, searching
from hierarchy.fhir.outcome import FhirError, NotAcceptable, fhir_response
from hierarchy.fhir.parameters import ResourceType
from hierarchy.fhir.values import BadValue, instant
from hierarchy.search import MAX_LIMIT as MAX_COUNT
from hierarchy.search.versions import REGISTER
from sorregistry import reads
from sorregistry.extensions import db
from sorregistry.security import require

bp = Blueprint("fhir", __name__)
READERS = ("reporter", "sds")
RESOURCE = "<any(Organization, Location):kind>"
_ACCEPTED = ("application/fhir+json", "application/json", "application/json+fhir",
             "application/fhir+ndjson", "application/ndjson")
_NDJSON = "application/fhir+ndjson"


def _base() -> str:
    return request.url_root.rstrip("/") + "/fhir"


def _kind(kind: str) -> ResourceType:
    return "Location" if kind == "Location" else "Organization"


@bp.before_request
def _negotiate() -> None:
    """406 for an Accept of no JSON type; 400 for a _format of no JSON (or, to a search,
    NDJSON) - mCSD: a format the directory cannot write is refused."""
    accept = request.headers.get("Accept", "").strip()
    if accept and request.accept_mimetypes.best_match(_ACCEPTED) is None:
        raise NotAcceptable(f"this server writes application/fhir+json, not {accept}")
    wanted = request.values.get("_format", "").strip()
    searching_ndjson = wanted in parameters.NDJSON_FORMATS and request.endpoint in (
        "fhir.search", "fhir.search_post")
    if wanted and wanted not in parameters.JSON_FORMATS and not searching_ndjson:
        raise BadValue("_format", "this server writes JSON (json, application/fhir+json)")


def _read_directly() -> None:
    """Let this request's reads take the fast path the lookups take (``sorregistry.reads``):
    the register's version read once, the statements on the thread's own connection."""
    session = db.session()
    version = REGISTER.current(session)
    if version is not None and not REGISTER.changed_in(session):
        REGISTER.remember(session, version)
    reads.allow(session)


def _strict() -> bool:
    """FHIR's ``Prefer: handling=strict`` (default lenient)."""
    preferences = [part.strip().lower() for part in request.headers.get("Prefer", "").split(",")
                   for part in part.split(";")]
    return "handling=strict" in preferences


@bp.get("/metadata")
def metadata() -> Response:
    """The CapabilityStatement (no token needed)."""
    return fhir_response(capability.capability_statement(_base()), conditional=True)


def _search(kind: ResourceType, pairs: list[tuple[str, str]]) -> Response:
    query = parameters.parse(kind, pairs, strict=_strict())
    _read_directly()
    session = db.session()
    if query.ndjson:
        lines = searching.search_ndjson(session, query, date.today())
        return Response(stream_with_context(lines), content_type=_NDJSON)
    return fhir_response(searching.search_bundle(session, query, _base(), date.today()))


@bp.get(f"/{RESOURCE}")
@require(*READERS)
def search(kind: str) -> Response:
    """ITI-90 Find Matching Care Services, by GET."""
    return _search(_kind(kind), list(request.args.items(multi=True)))


@bp.post(f"/{RESOURCE}/_search")
@require(*READERS)
def search_post(kind: str) -> Response:
    """ITI-90 by POST: the parameters in the form body (and the query string)."""
    if request.content_length and request.mimetype != "application/x-www-form-urlencoded":
        raise FhirError("a search's body is a form (application/x-www-form-urlencoded)")
    pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(_kind(kind), pairs)


@bp.get(f"/{RESOURCE}/_history")
@require(*READERS)
def type_history(kind: str) -> Response:
    """ITI-91 Request Care Services Updates: every version since ``_since``, oldest first."""
    since, count, page, used = _history_parameters()
    _read_directly()
    return fhir_response(history.type_history(db.session(), _kind(kind), since, count, page,
                                              used, _base(), date.today()))


@bp.get(f"/{RESOURCE}/<code>")
@require(*READERS)
def read(kind: str, code: str) -> Response:
    _read_directly()
    found = history.current(db.session(), _kind(kind), code, date.today())
    return _versioned(found)


@bp.get(f"/{RESOURCE}/<code>/_history")
@require(*READERS)
def instance_history(kind: str, code: str) -> Response:
    since, _, _, _ = _history_parameters()
    return fhir_response(history.instance_history(db.session(), _kind(kind), code, since,
                                                  _base(), date.today()))


@bp.get(f"/{RESOURCE}/<code>/_history/<version>")
@require(*READERS)
def vread(kind: str, code: str, version: str) -> Response:
    found = history.version_of(db.session(), _kind(kind), code, version, date.today())
    return _versioned(found)


def _versioned(resource: dict[str, object]) -> Response:
    response = fhir_response(resource, conditional=True)
    meta = resource.get("meta")
    if isinstance(meta, dict):
        response.headers["Last-Modified"] = _http_date(str(meta["lastUpdated"]))
        response.headers["Content-Location"] = (
            f"{_base()}/{resource['resourceType']}/{resource['id']}/_history/"
            f"{meta['versionId']}")
    return response


def _http_date(moment: str) -> str:
    return format_datetime(datetime.fromisoformat(moment.replace("Z", "+00:00")), usegmt=True)


def _history_parameters() -> tuple[datetime | None, int, str | None, list[tuple[str, str]]]:
    """A history's ``_since``, ``_count``, page token, and the parameters as given."""
    since: datetime | None = None
    count = parameters.DEFAULT_COUNT
    page: str | None = None
    used: list[tuple[str, str]] = []
    for key, value in request.args.items(multi=True):
        if not value.strip() or key in parameters.NO_EFFECT:
            continue
        if key in (k for k, _ in used):
            raise BadValue(key, "given more than once")
        if key == "_since":
            since = instant(key, value)
        elif key == "_count":
            text = value.strip()
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_COUNT:
                raise BadValue(key, f"a whole number from 1 to {MAX_COUNT}")
            count = int(text)
        elif key == "_cursor":
            page = value.strip()
        elif key != "_format" and _strict():
            raise FhirError(f"unknown parameter {key} of a history (Prefer: handling=strict)",
                            field_errors={key: ["not a parameter of a history here"]})
        elif key != "_format":
            continue
        used.append((key, value))
    return since, count, page, used

"""The lookups the reporting forms use: search, Mit CVR – SI / Alle, ownership lists,
resolve, the SHAK type-ahead and the reporting unit's validation.

The lists' rules are in :mod:`hierarchy.search.lists`; the refusals are domain errors
(``sorregistry.errors``) raised where they arise, answered by the one handler.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, request
from flask.views import MethodView

from hierarchy import reporting, search
from hierarchy.items import ITEMS
from hierarchy.models import ShakCode
from hierarchy.schemas import (
    LookupArgsSchema,
    OrganisationListSchema,
    ResolveArgsSchema,
    ResolveSchema,
    SearchArgsSchema,
    ShakArgsSchema,
    ShakDepartmentArgsSchema,
    ShakListSchema,
    ValidateRequestSchema,
    ValidationSchema,
)
from hierarchy.search import lists
from hierarchy.search.versions import REGISTER
from hierarchy.successors import successor_entry
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.extensions import db
from sorregistry.responses import AnswerCache, cached_answer, json_response
from sorregistry.security import current_client, require

blp = Blueprint(
    "lookups",
    __name__,
    description="Lookups for reporting forms / Opslag til indberetningsskemaer",
)
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

# The caching headers of a lookup's answer, for the OpenAPI document.
_STRING = {"type": "string"}
ANSWER_HEADERS = {
    "ETag": {
        "description": "Digest of the answer's bytes; send it back in If-None-Match to get "
                       "304 Not Modified when the answer is unchanged / Fingeraftryk af svaret; "
                       "send det i If-None-Match og få 304, når svaret er uændret",
        "schema": _STRING,
    },
    "Cache-Control": {
        "description": "private, max-age=300, must-revalidate: reuse for five minutes, then "
                       "revalidate with the ETag (the register changes nightly) / genbrug i fem "
                       "minutter, derefter genvalidering med ETag",
        "schema": _STRING,
    },
}
CACHED_ANSWER_HEADERS = {
    **ANSWER_HEADERS,
    "X-Cache": {
        "description": "hit: taken from the worker's answer cache for the current register "
                       "version; miss: computed (always with Cache-Control: no-cache in the "
                       "request) / hit: fra svar-cachen for registrets aktuelle version; "
                       "miss: beregnet",
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    },
}
NOT_MODIFIED = "Not Modified: the ETag sent in If-None-Match is current / uændret"

# Answers of the lookups, per worker, under the register version they were computed
# in (hierarchy.search.versions). A type-ahead asks the same few fragments all day,
# and a form resolves the same codes.
ANSWERS = AnswerCache()


def _page(filters: search.Filters, options: lists.PageOptions) -> Response:
    """One page of a list, as the API shows it."""
    session = db.session  # made only if something reads through it (not a direct read)
    page = search.search_keys(session, filters, kept=ITEMS.kept_page, **options)
    if page.kept is not None:  # the kept page, its rows' digest unchanged
        items = page.kept.array
    else:
        items = ITEMS.page_array(page.items, lambda codes: search.items_by_code(session, codes),
                                 page.query, page.digest or b"", page.next)
    answer: dict[str, Any] = {"items": items, "total": page.total, "next": page.next}
    if page.suggestions is not None:
        answer["suggestions"] = page.suggestions
    return json_response(answer)


def _refuse_cvr_parameter() -> None:
    if "cvr" in request.args:
        raise lists.CvrGiven()


@blp.route("/organisations")
class OrganisationSearch(MethodView):
    @cached_answer(ANSWERS, REGISTER)
    @blp.doc(security=BEARER)
    @blp.arguments(SearchArgsSchema(), location="query", as_kwargs=False)
    @blp.response(200, OrganisationListSchema, headers=CACHED_ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @require()
    def get(self, args: dict[str, Any]) -> Response:
        """Search the register with column filters / Søg i registret."""
        columns, options = lists.split_options(args)
        return _page(search.Filters(**columns), options)


@blp.route("/lookups/my-cvr/si")
class MyCvrInstitutions(MethodView):
    @cached_answer(ANSWERS, REGISTER, per_client=True)
    @blp.doc(security=BEARER)
    @blp.arguments(LookupArgsSchema(), location="query")
    @blp.response(200, OrganisationListSchema, headers=CACHED_ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @require()
    def get(self, args: dict[str, Any]) -> Response:
        """Mit CVR – SI: the health institutions owned by the caller's CVR."""
        _refuse_cvr_parameter()
        columns, options = lists.split_options(args)
        return _page(lists.my_cvr_filters(current_client().cvr, columns, institutions_only=True),
                     options)


@blp.route("/lookups/my-cvr/all")
class MyCvrAll(MethodView):
    @cached_answer(ANSWERS, REGISTER, per_client=True)
    @blp.doc(security=BEARER)
    @blp.arguments(LookupArgsSchema(), location="query")
    @blp.response(200, OrganisationListSchema, headers=CACHED_ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @require()
    def get(self, args: dict[str, Any]) -> Response:
        """Mit CVR – Alle: institutions and units under the caller's CVR; level tells which."""
        _refuse_cvr_parameter()
        columns, options = lists.split_options(args)
        return _page(lists.my_cvr_filters(current_client().cvr, columns, institutions_only=False),
                     options)


@blp.route("/lookups/ownership/<any(statslig, regional, kommunal, privat):ownership>")
class OwnershipList(MethodView):
    @cached_answer(ANSWERS, REGISTER)
    @blp.doc(security=BEARER)
    @blp.arguments(LookupArgsSchema(), location="query")
    @blp.response(200, OrganisationListSchema, headers=CACHED_ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @require()
    def get(self, args: dict[str, Any], ownership: str) -> Response:
        """Statslig / Regional / Kommunal / Privat: institutions and units of that ownership."""
        columns, options = lists.split_options(args)
        return _page(lists.ownership_filters(ownership, columns), options)


@blp.after_request
def _cache_headers(response: Response) -> Response:
    """The register changes nightly: clients may reuse an answer for five minutes,
    then revalidate with the ETag (a 304 costs no body)."""
    if request.method == "GET" and response.status_code in (200, 304):
        headers = response.headers
        headers["Cache-Control"] = "private, max-age=300, must-revalidate"
        if "Vary" in headers:
            response.vary.add("Authorization")
        else:  # as vary.add, without parsing and rendering a header set
            headers.add("Vary", "Authorization")
    return response


@blp.route("/resolve")
class Resolve(MethodView):
    @cached_answer(ANSWERS, REGISTER)
    @blp.doc(security=BEARER)
    @blp.arguments(ResolveArgsSchema(), location="query")
    @blp.response(200, ResolveSchema, headers=CACHED_ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @blp.alt_response(404, description="Well-formed, but names no organisation")
    @blp.alt_response(422, description="Not a SOR code, SHAK code or ydernummer")
    @require()
    def get(self, args: dict[str, Any]) -> Response:
        """Say whether a code is a SOR code, SHAK code or ydernummer, with every match."""
        day = args.get("active_on") or date.today()
        interpretations = reporting.resolve(db.session, args["code"], day)
        found, replaced = reporting.found_or_replaced(db.session, interpretations, day)
        carriers = {
            i.normalised: [o.sor_code for o in i.organisations]
            for i in interpretations if i.kind == "shak"
        }
        return json_response({
            "code": args["code"].strip(),
            "kind": found.kind,
            "interpretations": [
                {
                    "kind": i.kind,
                    "normalised": i.normalised,
                    "organisations": ITEMS.items(i.organisations),
                    "shak": _shak_item(i.shak, carriers.get(i.normalised, []))
                    if i.shak else None,
                }
                for i in interpretations
            ],
            # A replaced SOR code within the warning window (reporting.found_or_replaced).
            "warnings": [{"field": "code", "code": "replaced", "message": replaced.message()}]
            if replaced else [],
            "successors": [successor_entry(end) for end in replaced.successors.active]
            if replaced else [],
        })


def _shak_item(record: reporting.ShakRecord, sor_codes: list[str]) -> dict[str, Any]:
    return {
        "code": record.code,
        "name": record.text,
        "kind": record.kind,
        "hospital": record.hospital,
        "valid_from": record.valid_from,
        "valid_to": record.valid_to,
        "sor_codes": sor_codes,
    }


def _shak_list(rows: list[ShakCode], total: int, day: date) -> Response:
    carriers = reporting.organisations_by_shak(db.session, [r.code for r in rows], day)
    return json_response(
        {"items": [_shak_item(r, carriers[r.code]) for r in rows], "total": total}
    )


@blp.route("/shak/hospitals")
class ShakHospitals(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ShakArgsSchema(), location="query")
    @blp.response(200, ShakListSchema, headers=ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @require()
    def get(self, args: dict[str, Any]) -> Response:
        """SHAK type-ahead: hospitals by code or name / sygehuse efter kode eller navn."""
        day = args.get("active_on") or date.today()
        rows, total = reporting.shak_hospitals(db.session, args.get("q"), day, args["limit"])
        return _shak_list(rows, total, day)


@blp.route("/shak/departments")
class ShakDepartments(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ShakDepartmentArgsSchema(), location="query")
    @blp.response(200, ShakListSchema, headers=ANSWER_HEADERS)
    @blp.alt_response(304, description=NOT_MODIFIED)
    @require()
    def get(self, args: dict[str, Any]) -> Response:
        """SHAK type-ahead: departments and sections of one hospital only."""
        day = args.get("active_on") or date.today()
        rows, total = reporting.shak_departments(
            db.session, args["hospital"].strip(), args.get("q"), day, args["limit"]
        )
        return _shak_list(rows, total, day)


@blp.route("/reporting-unit/validate")
class ValidateReportingUnit(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ValidateRequestSchema)
    @blp.response(200, ValidationSchema)
    @require()
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a report's institution code: errors block, warnings are allowed."""
        result = reporting.validate_reporting_unit(
            db.session,
            body.get("sor_code"),
            body.get("shak_code"),
            body.get("period_start"),
            body.get("period_end"),
        )
        return {
            "errors": [vars(f) for f in result.errors],
            "warnings": [vars(f) for f in result.warnings],
            "organisation": result.organisation,
            "successors": [successor_entry(end) for end in result.successors],
        }

"""The lookups the reporting forms use: search, Mit CVR – SI / Alle, ownership lists."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from hierarchy import lookups
from hierarchy.schemas import LookupArgsSchema, OrganisationListSchema, SearchArgsSchema
from sorregistry.auth import current_client, require
from sorregistry.extensions import db

blp = Blueprint(
    "lookups",
    __name__,
    description="Lookups for reporting forms / Opslag til indberetningsskemaer",
)
BEARER = [{"bearerAuth": []}]
PAGE_KEYS = ("sort", "limit", "cursor")


def _page(args: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    options = {key: args.pop(key) for key in PAGE_KEYS if key in args}
    filters = lookups.Filters(**{**args, **fixed})
    try:
        page = lookups.search(db.session, filters, **options)
    except lookups.LookupError_ as exc:
        abort(422, message=str(exc), errors=exc.errors)
    return {"items": page.items, "total": page.total, "next": page.next}


def _refuse_cvr_parameter() -> None:
    if "cvr" in request.args:
        abort(
            422,
            message="Mit CVR uses the CVR of your client, never a parameter",
            errors={"cvr": ["not allowed here: the CVR comes from your login"]},
        )


@blp.route("/organisations")
class OrganisationSearch(MethodView):
    @blp.doc(security=BEARER)
    @blp.etag
    @blp.arguments(SearchArgsSchema, location="query", as_kwargs=False)
    @blp.response(200, OrganisationListSchema)
    @require()
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Search the register with column filters / Søg i registret."""
        return _page(args)


@blp.route("/lookups/my-cvr/si")
class MyCvrInstitutions(MethodView):
    @blp.doc(security=BEARER)
    @blp.etag
    @blp.arguments(LookupArgsSchema, location="query")
    @blp.response(200, OrganisationListSchema)
    @require()
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Mit CVR – SI: the health institutions owned by the caller's CVR."""
        _refuse_cvr_parameter()
        args.pop("level", None)
        return _page(args, level=["SI"], cvr=current_client().cvr)


@blp.route("/lookups/my-cvr/all")
class MyCvrAll(MethodView):
    @blp.doc(security=BEARER)
    @blp.etag
    @blp.arguments(LookupArgsSchema, location="query")
    @blp.response(200, OrganisationListSchema)
    @require()
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Mit CVR – Alle: institutions and units under the caller's CVR; level tells which."""
        _refuse_cvr_parameter()
        levels = [level for level in args.pop("level", None) or ["SI", "OE"] if level != "IE"]
        return _page(args, level=levels or ["SI", "OE"], cvr=current_client().cvr)


@blp.route("/lookups/ownership/<any(statslig, regional, kommunal, privat):ownership>")
class OwnershipList(MethodView):
    @blp.doc(security=BEARER)
    @blp.etag
    @blp.arguments(LookupArgsSchema, location="query")
    @blp.response(200, OrganisationListSchema)
    @require()
    def get(self, args: dict[str, Any], ownership: str) -> dict[str, Any]:
        """Statslig / Regional / Kommunal / Privat: institutions and units of that ownership."""
        levels = [level for level in args.pop("level", None) or ["SI", "OE"] if level != "IE"]
        return _page(args, level=levels or ["SI", "OE"], ownership=ownership)


@blp.after_request
def _cache_headers(response: Any) -> Any:
    """The register changes nightly: clients may reuse an answer for five minutes,
    then revalidate with the ETag (a 304 costs no body)."""
    if request.method == "GET" and response.status_code in (200, 304):
        response.headers["Cache-Control"] = "private, max-age=300, must-revalidate"
        response.vary.add("Authorization")
    return response

"""Pages for the register: the staff register browser and the reporting-form picker.

The picker's table and type-ahead call small JSON endpoints under
``/picker/api/`` that the login session authenticates. They call the same
services as the bearer-token API (``hierarchy.search`` with the lists' rules of
``hierarchy.search.lists``, and ``hierarchy.reporting``), so a list looks the same
in both; the API itself is left to bearer tokens, so a cookie never authenticates it
and it needs no CSRF protection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select
from werkzeug.wrappers import Response

from hierarchy import browse, embed, reporting, search
from hierarchy import identifiers as ids
from hierarchy import service as register
from hierarchy.codes import entity_type_choices, entity_type_name
from hierarchy.models import Organisation
from hierarchy.schemas import LookupArgsSchema, organisation_item
from hierarchy.search import lists
from sorregistry.extensions import db
from sorregistry.headers import allow_framing
from sorregistry.i18n import _, current_language, lazy_gettext
from sorregistry.responses import json_response
from sorregistry.security import json_login_required, role_required

register_bp = Blueprint(
    "register_pages", __name__, url_prefix="/staff/register", template_folder="templates"
)
picker_bp = Blueprint("picker", __name__, url_prefix="/picker", template_folder="templates")
TREE_PAGE = 100
SEARCH_PAGE = 50
PICKER_PAGE = 100
LEVEL_NAMES = {
    "IE": lazy_gettext("Institutionsejer"),
    "SI": lazy_gettext("Sundhedsinstitution"),
    "OE": lazy_gettext("Organisatorisk enhed"),
}
OWNERSHIP_NAMES = {
    "statslig": lazy_gettext("Statslig"),
    "regional": lazy_gettext("Regional"),
    "kommunal": lazy_gettext("Kommunal"),
    "privat": lazy_gettext("Privat"),
}
# Labels of the organisation's values (own and effective), in page order.
VALUE_LABELS = {
    "postal_address": lazy_gettext("Postadresse"),
    "visiting_address": lazy_gettext("Besøgsadresse"),
    "phone": lazy_gettext("Telefon"),
    "fax": lazy_gettext("Fax"),
    "email": lazy_gettext("E-mail"),
    "website": lazy_gettext("Hjemmeside"),
    "gln": lazy_gettext("GLN"),
}
# The reporting-unit validation's findings (by code) in the page's language; a finding
# not named here keeps the service's own (English) message.
REPORTING_TEXTS = {
    "both_codes": lazy_gettext("Angiv enten en SOR-kode eller en SHAK-kode, ikke begge."),
    "no_code": lazy_gettext("Angiv en SOR-kode eller en SHAK-kode."),
    "period": lazy_gettext("Perioden slutter før den begynder."),
    "malformed": lazy_gettext("Koden har ikke den rigtige form."),
    "unknown": lazy_gettext("Koden findes ikke i registret."),
    "closed": lazy_gettext("Koden blev lukket før indberetningsperioden."),
    "closes_in_period": lazy_gettext("Koden lukker inden for indberetningsperioden."),
    "not_yet_valid": lazy_gettext("Koden gælder først efter indberetningsperioden."),
    "starts_in_period": lazy_gettext("Koden gælder først fra en dato inden for perioden."),
    "owner_level": lazy_gettext("Dette er en institutionsejer (IE); angiv den institution "
                                "eller enhed, hvor behandlingen fandt sted."),
    "not_in_shak_register": lazy_gettext("SHAK-koden står på en SOR-enhed, men ikke i "
                                         "SHAK-registret."),
}
# The picker's lists: what each button shows.
PICKER_LISTS = ("my-cvr-si", "my-cvr-all", "statslig", "regional", "kommunal", "privat")


def _names() -> dict[str, Any]:
    language = current_language()
    return {
        "level_name": lambda level: str(LEVEL_NAMES.get(level, level or "")),
        "ownership_name": lambda value: str(OWNERSHIP_NAMES.get(value, value or "")),
        "type_name": lambda code: entity_type_name(code, language) or code or "",
        "value_label": lambda name: str(VALUE_LABELS.get(name, name)),
    }


@register_bp.context_processor
@picker_bp.context_processor
def _template_names() -> dict[str, Any]:
    return _names()


def _address(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    town = " ".join(p for p in (value.get("postal_code"), value.get("city")) if p)
    return ", ".join(p for p in (value.get("street"), town) if p)


# --- the register browser (SDS staff) ---------------------------------------------------


@register_bp.get("/", endpoint="browse")
@role_required("sds")
def browse_page() -> str:
    """The tree's first level, and search by name or SOR code."""

    q = (request.args.get("q") or "").strip()[:100]
    results = None
    error = None
    if q:
        digits = q.isdigit()
        filters = search.Filters(sor_code=q) if digits else search.Filters(name=q)
        try:
            results = search.search(db.session, filters, limit=SEARCH_PAGE,
                                    cursor=request.args.get("cursor") or None,
                                    sort="code" if digits else "name")
        except search.InvalidSearch as exc:
            error = "; ".join(exc.errors.values())
    return render_template(
        "hierarchy/browse.html", q=q, results=results, error=error,
        owners=browse.owners_by_ownership(db.session),
    )


@register_bp.get("/tree")
@role_required("sds")
def tree() -> str:
    """One level of the tree as an HTML fragment, loaded when a node is opened."""

    parent = request.args.get("parent") or None
    ownership = request.args.get("ownership") or None
    try:
        page = browse.children(db.session, parent_sor_code=parent, ownership=ownership,
                               limit=TREE_PAGE, cursor=request.args.get("cursor") or None)
    except search.InvalidSearch:
        abort(400)
    counts = browse.child_counts(db.session, [row.sor_code for row in page.items])
    return render_template("hierarchy/_tree_level.html", page=page, counts=counts,
                           parent=parent, ownership=ownership)


@register_bp.get("/<sor_code>", endpoint="organisation")
@role_required("sds")
def organisation_page(sor_code: str) -> str:
    """An organisation: identifiers, own and effective values (inherited marked), history."""

    try:
        found = register.get_organisation(db.session, sor_code)
        history = register.organisation_history(db.session, found.sor_code)
    except (register.NotFound, ids.IdentifierError):
        abort(404)
    effective = found.effective or {}
    values = [
        {
            "name": name,
            "own": getattr(found, name, None),
            "effective": effective.get(name),
            "inherited": name in (found.inherited or []),
        }
        for name in VALUE_LABELS
    ]
    kids = browse.children(db.session, parent_sor_code=found.sor_code, limit=TREE_PAGE)
    linked = [*(found.replaces or []), *(found.replaced_by or [])]
    names = {code: name for code, name in db.session.execute(
        select(Organisation.sor_code, Organisation.name)
        .where(Organisation.sor_code.in_(linked)))} if linked else {}
    return render_template(
        "hierarchy/organisation.html", organisation=found, values=values,
        history=list(reversed(history)), ancestors=browse.ancestors(db.session, found),
        children=kids, address=_address, today=date.today(), names=names,
    )


# --- the picker (any logged-in person) --------------------------------------------------


@picker_bp.get("")
def picker() -> Any:
    """The reporting form's picker: lists, column filters, SHAK type-ahead, Valider;
    with ``embed=1``, the lists alone for a frame in another site's page."""
    if request.args.get("embed") == "1":
        return _embedded_picker()
    return _picker_page()


@role_required()
def _picker_page() -> str:
    return render_template("hierarchy/picker.html",
                           entity_types=entity_type_choices(current_language()),
                           has_cvr=bool(current_user.cvr), lists=PICKER_LISTS,
                           texts=_script_texts())


def _embedded_picker() -> str:
    """Framable only by the origins of SOR_PICKER_ORIGINS - by the one named in ``origin=``
    when given (the choice is then posted to it), else by any of them (the script posts
    to its parent's origin if it is one of them). An origin not listed, or no origins
    configured, gets 400 and the site's ``frame-ancestors 'none'``. Needs no login: the
    lists ask for the picker token or the login session (hierarchy/embed.py)."""
    named = request.args.get("origin")
    origins = [embed.allowed_origin(named)] if named is not None else list(
        current_app.config.get("PICKER_ORIGINS") or ())
    if not origins or None in origins:
        abort(400, description=_("Denne side må ikke indlejre opslaget (SOR_PICKER_ORIGINS)."))
    allow_framing(["'self'", *(origin for origin in origins if origin)])
    return render_template("hierarchy/picker_embed.html", origins=origins,
                           origin=origins[0] if named is not None else None,
                           entity_types=entity_type_choices(current_language()),
                           has_cvr=True, lists=PICKER_LISTS, texts=_script_texts())


def _script_texts() -> dict[str, str]:
    """The words the picker's script shows, in the page's language (``picker.js`` looks
    them up by their Danish and fills the ``{name}`` placeholders itself)."""
    return {
        "Vælg": _("Vælg"),
        "Henter…": _("Henter…"),
        "Ugyldigt filter": _("Ugyldigt filter"),
        "Vis flere": _("Vis flere"),
        "Ingen fundet.": _("Ingen fundet."),
        "Mente du": _("Mente du"),
        "{shown} af {total} vist": _("{shown} af {total} vist"),
        "Koden er gyldig.": _("Koden er gyldig."),
        "Valgt: {name}": _("Valgt: {name}"),
        "SOR-kode eller SHAK-kode, ikke begge.": _("SOR-kode eller SHAK-kode, ikke begge."),
        "Fejl": _("Fejl"),
        "Advarsler": _("Advarsler"),
        "Sundhedsinstitution": _("Sundhedsinstitution"),
        "Organisatorisk enhed": _("Organisatorisk enhed"),
    }


_LIST_ARGS = LookupArgsSchema()
_CALLER_CVR = "sor.picker_cvr"


def _picker_caller(view: Callable[..., Response]) -> Callable[..., Response]:
    """The picker's lists: a logged-in person, or an embedding site's picker token
    (``Authorization: Bearer``); 401 without either."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if current_user.is_authenticated:
            request.environ[_CALLER_CVR] = current_user.cvr
        else:
            caller = embed.request_caller()
            if caller is None:
                return _error(401, _("Log ind først, eller brug et gyldigt opslagstoken."))
            request.environ[_CALLER_CVR] = caller.cvr
        return view(*args, **kwargs)

    return wrapper


def _list_args() -> dict[str, Any]:
    """The column filters from the query string, checked by the API's own schema."""
    raw: dict[str, Any] = {}
    for name, schema_field in _LIST_ARGS.fields.items():
        if name in request.args:
            values = [v for v in request.args.getlist(name) if v != ""]
            if not values:
                continue
            raw[name] = values if schema_field.__class__.__name__ == "List" else values[0]
    loaded: dict[str, Any] = _LIST_ARGS.load(raw)
    return loaded


def _flat(messages: Any) -> dict[str, list[str]]:
    """Marshmallow's messages ({"level": {0: [...]}}) as {field: [message, ...]}."""

    def texts(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [text for inner in value.values() for text in texts(inner)]
        if isinstance(value, list):
            return [text for inner in value for text in texts(inner)]
        return [str(value)]

    if not isinstance(messages, dict):
        return {"query": texts(messages)}
    return {str(name): texts(value) for name, value in messages.items()}


def _error(status: int, message: str, errors: dict[str, Any] | None = None) -> Response:
    return json_response({"code": status, "message": message, "errors": errors or {}}, status)


@picker_bp.get("/api/lists/<any(" + ", ".join(f"'{n}'" for n in PICKER_LISTS) + "):which>")
@_picker_caller
def picker_list(which: str) -> Response:
    """One page of a picker list; "Mit CVR" takes the CVR from the person's account."""

    try:
        args = _list_args()
    except ValidationError as exc:
        return _error(422, _("Ugyldigt filter"), _flat(exc.messages))
    columns, options = lists.split_options(args)
    options["limit"] = min(options.get("limit", PICKER_PAGE), PICKER_PAGE)
    try:
        if which.startswith("my-cvr"):
            filters = lists.my_cvr_filters(request.environ.get(_CALLER_CVR), columns,
                                           institutions_only=which == "my-cvr-si")
        else:
            filters = lists.ownership_filters(which, columns)
        page = search.search(db.session, filters, **options)
    except lists.NoCvr:
        return _error(403, _("Din konto har intet CVR-nummer; Mit CVR kan ikke bruges."))
    except search.InvalidSearch as exc:
        return _error(422, _("Ugyldigt filter"), exc.errors)
    return json_response({
        "items": [_picker_item(row) for row in page.items],
        "total": page.total,
        "next": page.next,
        "suggestions": page.suggestions or [],
    })


def _picker_item(row: Any) -> dict[str, Any]:
    item = organisation_item(row)
    return {
        "sor_code": item["sor_code"],
        "name": item["name"],
        "level": item["level"],
        "entity_type": item["entity_type"]["code"],
        "entity_type_name": entity_type_name(item["entity_type"]["code"], current_language()),
        "ydernummer": item["ydernummer"],
        "shak": item["shak"],
        "postal_code": (item["address"] or {}).get("postal_code"),
        "city": (item["address"] or {}).get("city"),
    }


def _shak_items(rows: list[Any], total: int) -> Response:
    return json_response({
        "items": [{"code": r.code, "name": r.text, "kind": r.kind, "hospital": r.hospital}
                  for r in rows],
        "total": total,
    })


@picker_bp.get("/api/shak/hospitals")
@json_login_required
def picker_hospitals() -> Response:
    q = (request.args.get("q") or "").strip()[:60] or None
    rows, total = reporting.shak_hospitals(db.session, q, limit=20)
    return _shak_items(rows, total)


@picker_bp.get("/api/shak/departments")
@json_login_required
def picker_departments() -> Response:
    q = (request.args.get("q") or "").strip()[:60] or None
    try:
        rows, total = reporting.shak_departments(
            db.session, (request.args.get("hospital") or "").strip(), q, limit=20)
    except reporting.Malformed as exc:
        return _error(422, exc.message, dict(exc.field_errors or {}))
    return _shak_items(rows, total)


def _date(value: Any, name: str, errors: dict[str, list[str]]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        errors[name] = ["a date, YYYY-MM-DD"]
        return None


@picker_bp.post("/api/validate")
@json_login_required
def picker_validate() -> Response:
    """Reporting-unit validation ("Valider"): errors block, warnings are allowed.

    A POST from the page's script: the CSRF token comes in the X-CSRFToken header.
    """

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "send a JSON object")
    errors: dict[str, list[str]] = {}
    start = _date(body.get("period_start"), "period_start", errors)
    end = _date(body.get("period_end"), "period_end", errors)
    if errors:
        return _error(422, _("Ugyldigt filter"), errors)
    result = reporting.validate_reporting_unit(
        db.session, _text(body.get("sor_code")), _text(body.get("shak_code")), start, end)

    def shown(finding: Any) -> dict[str, str]:
        text = str(REPORTING_TEXTS.get(finding.code, finding.message))
        return {"field": finding.field, "code": finding.code, "message": text}

    organisation = result.organisation
    return json_response({
        "errors": [shown(f) for f in result.errors],
        "warnings": [shown(f) for f in result.warnings],
        "organisation": {"sor_code": organisation.sor_code, "name": organisation.name}
        if organisation is not None else None,
    })


def _text(value: Any) -> str | None:
    return value[:40] if isinstance(value, str) else None


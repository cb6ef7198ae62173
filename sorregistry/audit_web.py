"""Reading the audit log: ``GET /api/v1/audit`` (JSON, paged), its CSV export
``GET /api/v1/audit.csv``, and the staff page ``/staff/audit`` (sds only, all three).

The CSV is UTF-8 with a BOM (Excel reads it as such), one row per event, streamed in
pages of 1,000 so an export of years of events holds one page in memory at a time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, render_template, request, stream_with_context
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from sorregistry import audit
from sorregistry.api import ApiBlueprint, register_api
from sorregistry.extensions import db
from sorregistry.i18n import lazy_gettext
from sorregistry.pages import MenuEntry, register_pages
from sorregistry.security import require, role_required

api = ApiBlueprint("audit", __name__, description="The audit log / Revisionsloggen")
page = Blueprint("audit_pages", __name__, url_prefix="/staff/audit")
PAGE_SIZE = 100
COLUMNS = ("id", "at", "action", "actor_kind", "actor_id", "actor_name", "target",
           "municipality_code", "request_id", "address", "details")
# The events' names on the page, in its language (the API and the CSV keep the codes).
ACTION_NAMES = {
    "login": lazy_gettext("Logget ind"),
    "login_failed": lazy_gettext("Mislykket login"),
    "logout": lazy_gettext("Logget ud"),
    "session_ended": lazy_gettext("Session afsluttet"),
    "user_created": lazy_gettext("Bruger oprettet"),
    "user_deactivated": lazy_gettext("Bruger deaktiveret"),
    "user_activated": lazy_gettext("Bruger aktiveret"),
    "password_set": lazy_gettext("Adgangskode sat"),
    "client_created": lazy_gettext("API-klient oprettet"),
    "client_revoked": lazy_gettext("API-klient tilbagekaldt"),
    "role_granted": lazy_gettext("Rolle tildelt"),
    "role_revoked": lazy_gettext("Rolle tilbagekaldt"),
    "application_approved": lazy_gettext("Ansøgning godkendt"),
    "application_rejected": lazy_gettext("Ansøgning afvist"),
    "information_requested": lazy_gettext("Oplysninger anmodet"),
    "application_withdrawn": lazy_gettext("Ansøgning trukket tilbage"),
    "application_submitted": lazy_gettext("Ansøgning indsendt"),
    "register_changed": lazy_gettext("Registret ændret"),
    "register_imported": lazy_gettext("Registret indlæst"),
    "other_municipality_read": lazy_gettext("En anden kommunes data læst"),
    "mail_triage_resolved": lazy_gettext("Mail til manuel behandling løst"),
    "outbox_retried": lazy_gettext("Mail sat i kø igen"),
    "webhook_subscribed": lazy_gettext("Webhook-abonnement oprettet"),
    "webhook_unsubscribed": lazy_gettext("Webhook-abonnement slettet"),
    "webhook_retried": lazy_gettext("Webhook-levering sat i kø igen"),
}


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class AuditArgsSchema(Schema):
    action = fields.List(fields.String(validate=validate.OneOf(audit.ACTIONS)),
                         **_d("Only these actions (repeatable)", "Kun disse handlinger"))
    actor = fields.String(validate=validate.Length(max=254),
                          **_d("Only this actor (email, client name or id)", "Kun denne aktør"))
    since = fields.AwareDateTime(**_d("From this instant", "Fra dette tidspunkt"))
    until = fields.AwareDateTime(**_d("Before this instant", "Før dette tidspunkt"))
    limit = fields.Integer(load_default=PAGE_SIZE, validate=validate.Range(min=1, max=1000),
                           **_d("Page size, at most 1,000", "Sidestørrelse"))
    cursor = fields.String(validate=validate.Regexp(r"^[1-9][0-9]{0,17}$"),
                           **_d("From the previous page's next", "Fra forrige sides next"))


class AuditEventSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    action = fields.String()
    actor_kind = fields.String(**_d("user, client or system", "Aktørens slags"))
    actor_id = fields.String(allow_none=True)
    actor_name = fields.String(allow_none=True)
    target = fields.String(allow_none=True)
    municipality_code = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True, **_d("The request's X-Request-Id", "Id"))
    address = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema))
    next = fields.String(allow_none=True)


def _events(args: dict[str, Any], limit: int) -> list[audit.AuditEvent]:
    cursor = args.get("cursor")
    return audit.list_events(db.session, actions=args.get("action") or (),
                             actor=args.get("actor"), since=args.get("since"),
                             until=args.get("until"),
                             before_id=int(cursor) if cursor else None, limit=limit)


@api.route("/audit")
class AuditLog(MethodView):
    @api.doc(security=[{"bearerAuth": []}])
    @api.arguments(AuditArgsSchema, location="query")
    @api.response(200, AuditPageSchema)
    @require("sds")
    def get(self, args: dict[str, Any]) -> Any:
        """The audit log, newest first (staff only)."""
        items = _events(args, args["limit"])
        last = items[-1].id if len(items) == args["limit"] else None
        return {"items": items, "next": str(last) if last else None}


def _csv_rows(args: dict[str, Any]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    yield "\ufeff" + buffer.getvalue()
    args = dict(args)
    while True:
        batch = _events(args, 1000)
        for event in batch:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow([_cell(getattr(event, column)) for column in COLUMNS])
            yield buffer.getvalue()
        if len(batch) < 1000:
            return
        args["cursor"] = str(batch[-1].id)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


@api.route("/audit.csv")
class AuditExport(MethodView):
    @api.doc(security=[{"bearerAuth": []}])
    @api.arguments(AuditArgsSchema, location="query")
    @api.response(200, description="CSV, UTF-8 with BOM / CSV med BOM",
                  content_type="text/csv")
    @require("sds")
    def get(self, args: dict[str, Any]) -> Response:
        """The audit log as CSV, every event the filters match (staff only)."""
        return Response(stream_with_context(_csv_rows(args)), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


def _page_args() -> dict[str, Any]:
    """The page's filters, read as the API reads them (a wrong one is a 422 page)."""
    chosen = {key: value for key, value in request.args.items(multi=True) if value}
    if not chosen:
        return {}
    args: dict[str, Any] = ApiBlueprint.ARGUMENTS_PARSER.parse(_ARGS, request,
                                                                location="query")
    return args


_ARGS = AuditArgsSchema()


@page.get("/")
@role_required("sds")
def audit_page() -> str:
    """The newest events, filtered by action; the same filters download as CSV."""
    args = _page_args()
    items = _events(args, PAGE_SIZE)
    older = items[-1].id if len(items) == PAGE_SIZE else None
    return render_template("pages/audit.html", items=items, older=older,
                           actions=audit.ACTIONS, action_names=ACTION_NAMES,
                           chosen=args.get("action") or [])


@page.get("/export.csv")
@role_required("sds")
def audit_export() -> Response:
    args = _page_args()
    return Response(stream_with_context(_csv_rows(args)), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


def init_app(app: Flask) -> None:
    app.after_request(audit.record_noted_reads)
    register_api(app, api, url_prefix="/api/v1")
    register_pages(app, page,
                   menu=[MenuEntry("audit_pages.audit_page", "Revisionslog", ("sds",), order=45)])

"""The outbox for SDS staff: what was mailed, what waits, what failed; retry a failed mail."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from notifications import service
from notifications.models import OutboxMessage
from notifications.schemas import OutboxArgsSchema, OutboxListSchema, OutboxMessageDetailSchema
from sorregistry import audit
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.security import current_client, require

blp = Blueprint(
    "notifications",
    __name__,
    description="The outbox of notification mails (staff) / Udbakken med notifikationsmails",
)
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# Ids are 64-bit: a larger number names no mail (and must not reach the database).
MAX_ID = 2**63 - 1
OUTBOX_ID = {
    "in": "path",
    "name": "outbox_id",
    "required": True,
    "description": "Outbox id / Id i udbakken",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}


def _check_id(outbox_id: int) -> None:
    if not 1 <= outbox_id <= MAX_ID:
        raise service.NotFound(f"no outbox message {outbox_id}")


def _get(outbox_id: int) -> OutboxMessage:
    _check_id(outbox_id)
    return service.get_message(db.session, outbox_id)


@blp.route("/outbox")
class Outbox(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(OutboxArgsSchema, location="query")
    @blp.response(200, OutboxListSchema)
    @require("sds")
    def get(self, args: dict[str, Any]) -> Any:
        """The outbox, newest first; ?status=failed shows the mails given up / Udbakken."""
        page = service.list_messages(
            db.session, status=args.get("status"), limit=args["limit"], cursor=args.get("cursor")
        )
        return {"items": page.items, "total": page.total, "next": page.next}


@blp.route("/outbox/<int:outbox_id>", parameters=[OUTBOX_ID])
class OutboxItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, OutboxMessageDetailSchema)
    @blp.alt_response(404, description="No such mail in the outbox")
    @require("sds")
    def get(self, outbox_id: int) -> Any:
        """One mail with its bodies and every attempt to send it / Én mail med forsøg."""
        return _get(outbox_id)


@blp.route("/outbox/<int:outbox_id>/retry", parameters=[OUTBOX_ID])
class OutboxRetry(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, OutboxMessageDetailSchema)
    @blp.alt_response(404, description="No such mail in the outbox")
    @blp.alt_response(409, description="The mail has not failed")
    @require("sds")
    def post(self, outbox_id: int) -> Any:
        """Put a failed mail back in the queue with a fresh count of attempts / Send igen."""
        _check_id(outbox_id)
        client = current_client()
        with write_step(db.session) as session:
            message = service.retry(
                session, outbox_id, actor=f"staff: {client.name} (client {client.id})")
            audit.record(session, "outbox_retried", audit.Actor("client", str(client.id),
                                                               client.name),
                         target=f"outbox {outbox_id}")
        return message

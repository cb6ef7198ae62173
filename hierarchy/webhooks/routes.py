"""The webhooks API (sds): subscriptions, and the deliveries staff watch and retry."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from hierarchy.webhooks import deliveries, subscriptions
from hierarchy.webhooks.models import DELIVERY_STATUSES, WebhookDelivery, WebhookSubscription
from sorregistry import audit
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.security import current_client, require

blp = Blueprint("webhooks", __name__,
                description="Webhooks: the change feed pushed, signed / Webhooks")
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
MAX_ID = 2**63 - 1


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


def _id_parameter(name: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}


class FilterSchema(Schema):
    ownership = fields.String(**_d("statslig, regional, kommunal or privat", "Ejerforhold"))
    cvr = fields.String(**_d("The owner's CVR", "Ejerens CVR"))
    municipality = fields.String(**_d("Kommunekode of the address", "Kommunekode"))
    under = fields.String(**_d("A SOR code: it and its subtree", "SOR-kode og undertræ"))
    level = fields.String(validate=validate.OneOf(["IE", "SI", "OE"]), **_d("IE, SI, OE",
                                                                             "Niveau"))


class SubscriptionInputSchema(Schema):
    client_id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID),
                               **_d("The API client it is for", "API-klienten"))
    url = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                        **_d("https:// URL the entries are POSTed to", "Modtagerens URL"))
    filter = fields.Nested(FilterSchema, load_default=dict, **_d(
        "Every key given must match; none: every entry", "Filter"))


class SubscriptionSchema(Schema):
    id = fields.Integer()
    client_id = fields.Integer()
    url = fields.String()
    filter = fields.Dict()
    status = fields.String(**_d("active or paused (deliveries kept failing)", "Status"))
    paused_reason = fields.String(allow_none=True)
    last_position = fields.Integer(**_d("The feed position dispatched up to",
                                        "Position afsendt til"))
    created_at = fields.DateTime()


class CreatedSubscriptionSchema(SubscriptionSchema):
    secret = fields.String(**_d("The signing secret: shown this once",
                                "Signaturnøglen: vises kun denne ene gang"))


class SubscriptionListSchema(Schema):
    items = fields.List(fields.Nested(SubscriptionSchema))


class DeliverySchema(Schema):
    id = fields.Integer()
    subscription_id = fields.Integer()
    position = fields.Integer()
    sor_code = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_error = fields.String(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DeliveryArgsSchema(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class DeliveryListSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))


def _actor() -> tuple[str, audit.Actor]:
    client = current_client()
    return (f"client {client.id} {client.name}",
            audit.Actor("client", str(client.id), client.name))


def _check(value: int, error: type[Exception], what: str) -> int:
    if not 1 <= value <= MAX_ID:
        raise error(f"no {what} {value}")
    return value


@blp.route("/subscriptions")
class Subscriptions(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, SubscriptionListSchema)
    @require("sds")
    def get(self) -> Any:
        """Every webhook subscription (without secrets) / Alle abonnementer."""
        return {"items": subscriptions.list_subscriptions(db.session)}

    @blp.doc(security=BEARER)
    @blp.arguments(SubscriptionInputSchema)
    @blp.response(201, CreatedSubscriptionSchema)
    @blp.alt_response(400, description="An unsafe URL, an unknown client, a bad filter")
    @require("sds")
    def post(self, data: dict[str, Any]) -> Any:
        """Subscribe a client's URL to the feed entries a filter matches; the answer
        holds the signing secret, shown this once / Opret abonnement."""
        name, who = _actor()
        with write_step(db.session) as session:
            created, secret = subscriptions.create(
                session, current_app, client_id=data["client_id"], url=data["url"],
                wanted=data["filter"], actor=name)
            audit.record(session, "webhook_subscribed", who,
                         target=f"subscription {created.id}",
                         details={"client_id": created.client_id, "url": created.url})
        return {**_shown(created), "secret": secret}


def _shown(subscription: WebhookSubscription) -> dict[str, Any]:
    return {name: getattr(subscription, name) for name in SubscriptionSchema().fields}


@blp.route("/subscriptions/<int:subscription_id>",
           parameters=[_id_parameter("subscription_id")])
class SubscriptionItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, SubscriptionSchema)
    @blp.alt_response(404, description="No such subscription")
    @require("sds")
    def get(self, subscription_id: int) -> Any:
        """One subscription / Ét abonnement."""
        _check(subscription_id, subscriptions.SubscriptionNotFound, "subscription")
        return subscriptions.get_subscription(db.session, subscription_id)

    @blp.doc(security=BEARER)
    @blp.response(204)
    @blp.alt_response(404, description="No such subscription")
    @require("sds")
    def delete(self, subscription_id: int) -> None:
        """Delete a subscription and its deliveries / Slet abonnement."""
        _check(subscription_id, subscriptions.SubscriptionNotFound, "subscription")
        _, who = _actor()
        with write_step(db.session) as session:
            subscriptions.delete_subscription(session, subscription_id)
            audit.record(session, "webhook_unsubscribed", who,
                         target=f"subscription {subscription_id}")


@blp.route("/webhook-deliveries")
class Deliveries(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(DeliveryArgsSchema, location="query")
    @blp.response(200, DeliveryListSchema)
    @require("sds")
    def get(self, args: dict[str, Any]) -> Any:
        """Deliveries newest first; ?status=failed: those given up / Leverancer."""
        return {"items": deliveries.list_deliveries(
            db.session, status=args.get("status"), limit=args["limit"])}


@blp.route("/webhook-deliveries/<int:delivery_id>/retry",
           parameters=[_id_parameter("delivery_id")])
class DeliveryRetry(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, DeliverySchema)
    @blp.alt_response(404, description="No such delivery")
    @blp.alt_response(409, description="The delivery has not failed")
    @require("sds")
    def post(self, delivery_id: int) -> WebhookDelivery:
        """Queue a failed delivery again and resume its subscription / Prøv igen."""
        _check(delivery_id, deliveries.DeliveryNotFound, "delivery")
        _, who = _actor()
        with write_step(db.session) as session:
            delivery = deliveries.retry(session, delivery_id)
            audit.record(session, "webhook_retried", who, target=f"delivery {delivery_id}")
        return delivery

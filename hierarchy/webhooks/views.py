"""The staff's webhooks page: subscriptions, the deliveries given up, and a retry."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as WerkzeugResponse

from hierarchy.webhooks import deliveries, subscriptions
from sorregistry import audit
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.i18n import _, lazy_gettext
from sorregistry.security import role_required

bp = Blueprint("webhook_pages", __name__, url_prefix="/staff/webhooks",
               template_folder="../templates")
SUBSCRIPTION_NAMES = {"active": lazy_gettext("Aktiv"), "paused": lazy_gettext("Sat på pause")}


@bp.get("/")
@role_required("sds")
def subscriptions_page() -> str:
    return render_template(
        "hierarchy/webhooks/subscriptions.html",
        subscriptions=subscriptions.list_subscriptions(db.session),
        failed=deliveries.list_deliveries(db.session, status="failed"),
        subscription_names=SUBSCRIPTION_NAMES)


@bp.post("/deliveries/<int:delivery_id>/retry")
@role_required("sds")
def retry(delivery_id: int) -> WerkzeugResponse:
    """Queue a failed delivery again; its subscription resumes."""
    who = audit.Actor("user", str(current_user.id), current_user.email)
    try:
        with write_step(db.session) as session:
            deliveries.retry(session, delivery_id)
            audit.record(session, "webhook_retried", who, target=f"delivery {delivery_id}")
    except deliveries.NotRetryable as exc:
        flash(str(exc), "error")
    else:
        flash(_("Leverancen er sat i kø igen, og abonnementet er genoptaget."), "success")
    return redirect(url_for("webhook_pages.subscriptions_page"), code=303)

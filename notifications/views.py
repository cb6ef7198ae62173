"""The outbox for SDS staff: what is queued, sent and failed, and putting a failed mail back."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as WerkzeugResponse

from notifications import service
from notifications.models import STATUSES
from sorregistry import audit
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.i18n import _, lazy_gettext
from sorregistry.security import role_required

bp = Blueprint("notifications_pages", __name__, url_prefix="/staff/outbox",
               template_folder="templates")
PAGE_SIZE = 50
STATUS_NAMES = {
    "queued": lazy_gettext("I kø"),
    "sending": lazy_gettext("Sendes"),
    "sent": lazy_gettext("Sendt"),
    "failed": lazy_gettext("Fejlet"),
}


@bp.get("/")
@role_required("sds")
def outbox() -> str:
    """The outbox, newest first, filtered by status."""

    status = request.args.get("status") or None
    if status not in STATUSES:
        status = None
    page = service.list_messages(db.session, status=status, limit=PAGE_SIZE,
                                 cursor=request.args.get("cursor") or None)
    return render_template("notifications/pages/outbox.html", page=page, status=status,
                           statuses=STATUSES, status_names=STATUS_NAMES)


@bp.get("/<int:message_id>")
@role_required("sds")
def message(message_id: int) -> str:
    """One mail: recipients, text, and every attempt to send it."""
    found = service.get_message(db.session, message_id)  # NotFound: the 404 page
    return render_template("notifications/pages/message.html", message=found,
                           status_names=STATUS_NAMES)


@bp.post("/<int:message_id>/retry")
@role_required("sds")
def retry(message_id: int) -> WerkzeugResponse:
    """Put a failed mail back in the queue."""

    actor = f"user:{current_user.id} {current_user.email}"
    who = audit.Actor("user", str(current_user.id), current_user.email)
    try:
        with write_step(db.session) as session:
            service.retry(session, message_id, actor=actor)
            audit.record(session, "outbox_retried", who, target=f"outbox {message_id}")
    except service.NotRetryable as exc:
        flash(str(exc), "error")
    else:
        flash(_("Mailen er sat i kø igen."), "success")
    return redirect(url_for("notifications_pages.message", message_id=message_id), code=303)

"""Pages for the mail intake's triage queue: staff open, read and resolve the mails that
need a person (applications.mail_service says why each one is there)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from applications import downloads, mail_service, service
from applications.mail_message import parse_mail
from applications.mail_models import IncomingMail
from applications.page_texts import TRIAGE_REASONS
from applications.views import PAGE_SIZE, actor_for, staff_bp
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.i18n import _
from sorregistry.pages import MenuEntry
from sorregistry.security import role_required

# The staff menu's entry for the queue (its routes are on views.staff_bp).
MENU_ENTRY = MenuEntry("staff.mail_queue", "Indbakke", ("sds",), order=30)


def _mail_or_404(mail_id: int) -> IncomingMail:
    mail = db.session.get(IncomingMail, mail_id)
    if mail is None or mail.outcome != "triage":
        abort(404)
    return mail


@staff_bp.get("/mail/", endpoint="mail_queue")
@role_required("sds")
def mail_queue() -> str:
    """Emailed applications that need a person, oldest first."""

    status = "resolved" if request.args.get("status") == "resolved" else "open"
    reason = request.args.get("reason") if request.args.get("reason") in TRIAGE_REASONS else None
    after = request.args.get("after", type=int)
    items, total = mail_service.list_triage(db.session, status=status, reason=reason,
                                            limit=PAGE_SIZE, after_id=after)
    next_args = None
    if len(items) == PAGE_SIZE:
        next_args = {**request.args.to_dict(), "after": str(items[-1].id)}
    return render_template("applications/staff_mail_queue.html", items=items, total=total,
                           status=status, reason=reason, reasons=TRIAGE_REASONS,
                           next_args=next_args)


@staff_bp.get("/mail/<int:mail_id>", endpoint="mail")
@role_required("sds")
def mail_item(mail_id: int) -> str:
    """One mail: who sent it, why it needs a person, its text, and resolving it."""

    mail = _mail_or_404(mail_id)
    text = None
    if mail.triage_reason != "oversized":
        text = parse_mail(mail.raw).text
    return render_template("applications/staff_mail.html", mail=mail, text=text,
                           reasons=TRIAGE_REASONS)


@staff_bp.get("/mail/<int:mail_id>/raw", endpoint="mail_raw")
@role_required("sds")
def mail_raw(mail_id: int) -> Response:
    """The original message, to open in a mail program."""
    return downloads.raw_mail(_mail_or_404(mail_id))


@staff_bp.post("/mail/<int:mail_id>/resolve", endpoint="mail_resolve")
@role_required("sds")
def mail_resolve(mail_id: int) -> Response:
    """Close a triage item with a note saying what was done."""

    mail = _mail_or_404(mail_id)
    back = url_for("staff.mail", mail_id=mail.id)
    application_id = request.form.get("application_id", type=int)
    actor = actor_for(current_user)
    try:
        with write_step(db.session) as session:
            if application_id is not None:
                service.get_application(session, actor, application_id)
            mail_service.resolve_triage(session, mail_id, resolved_by=actor.name,
                                        note=request.form.get("note", ""),
                                        application_id=application_id)
    except (mail_service.TriageError, service.ApplicationNotFound) as exc:
        flash(str(exc), "error")
        return redirect(back, code=303)
    flash(_("Markeret som løst."), "success")
    return redirect(back, code=303)

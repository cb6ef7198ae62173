"""Pages for applications: SDS staff review them, municipalities make and follow theirs.

Thin views: each one reads the form, calls one step of ``applications.service``
with an :class:`Actor` made from the logged-in person, commits, and redirects
(POST/redirect/GET) with a message. Validation is the service's, shown as SEI's
"Valider" shows it: errors in red (they block sending), warnings in yellow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from applications import page_texts, service
from applications.models import DECIDED_STATUSES, STATUSES, Application
from applications.read_audit import note_read
from hierarchy.codes import entity_type_choices, municipalities
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.i18n import LazyString, _, current_language, lazy_gettext
from sorregistry.models import utcnow
from sorregistry.security import role_required

staff_bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates")
municipality_bp = Blueprint(
    "municipality", __name__, url_prefix="/municipality", template_folder="templates"
)

PAGE_SIZE = 50
QUEUE_STATUSES = ("submitted", "info_requested")
AGES = (7, 14, 30, 60)

# --- who acts ---------------------------------------------------------------------------


def actor_for(user: Any) -> service.Actor:
    """The workflow's actor for a logged-in person.

    ``client_id`` is the person's negative id: it identifies them among the
    senders of applications (so "whoever sent it may not approve it" holds for
    people too) and can never equal an API client's id.
    """
    return service.Actor(
        name=f"user:{user.id} {user.name} <{user.email}>"[:200],
        roles=tuple(user.roles),
        municipality_code=user.municipality_code,
        cvr=user.cvr,
        client_id=user.actor_id,
    )


@contextmanager
def _refused(back: str) -> Iterator[None]:
    """A refused step, rolled back already (write_step): say why on the page and go back
    where the person was; an application they may not see is not found."""

    try:
        yield
    except service.ApplicationNotFound:
        abort(404)
    except (service.Forbidden, service.InvalidTransition) as exc:
        flash(_("Kan ikke: %(why)s", why=str(exc)), "error")
        raise _Redirect(back) from None
    except service.InvalidInput as exc:
        for name, why in exc.errors.items():
            flash(f"{page_texts.FIELD_LABELS.get(name, name)}: {why}", "error")
        raise _Redirect(back) from None


class _Redirect(Exception):
    """Answer with a redirect to *target* (See Other), from wherever in the view."""

    def __init__(self, target: str) -> None:
        self.target = target


T = TypeVar("T")


def _step(do: Callable[[Session, service.Actor], T], back: str) -> T:
    """Run one workflow step in its own write transaction (write_step) and commit it.

    The actor is made before write_step's first commit, which expires the
    logged-in user; refusals come back to *back* with a message (:func:`_refused`).
    """

    actor = actor_for(current_user)
    with _refused(back), write_step(db.session) as session:
        return do(session, actor)


@staff_bp.errorhandler(_Redirect)
@municipality_bp.errorhandler(_Redirect)
def _go_back(redirect_to: _Redirect) -> Response:
    return redirect(redirect_to.target, code=303)



@staff_bp.context_processor
@municipality_bp.context_processor
def _template_names() -> dict[str, Any]:
    return page_texts.template_names()



# --- SDS staff --------------------------------------------------------------------------


@staff_bp.get("/")
@role_required("sds")
def queue() -> str:
    """The review queue: filter by status, municipality and age."""

    statuses = [s for s in request.args.getlist("status") if s in STATUSES]
    if "status" not in request.args:
        statuses = list(QUEUE_STATUSES)
    municipality = request.args.get("municipality") or None
    if municipality not in municipalities():
        municipality = None
    age = request.args.get("age", type=int)
    age = age if age in AGES else None
    after = request.args.get("after", type=int)
    actor = actor_for(current_user)
    items, total = service.list_applications(
        db.session, actor, status=statuses, municipality_code=municipality,
        limit=PAGE_SIZE, after_id=after,
        submitted_before=utcnow() - timedelta(days=age) if age else None,
    )
    note_read(actor, items)
    next_args = None
    if len(items) == PAGE_SIZE:
        next_args = {**request.args.to_dict(flat=False), "after": str(items[-1].id)}
    return render_template(
        "applications/staff_queue.html", items=items, total=total, statuses=statuses,
        all_statuses=STATUSES, municipality=municipality, municipalities=municipalities(),
        age=age, ages=AGES, next_args=next_args,
    )


def _application(application_id: int) -> Application:
    """The application as the person logged in may see it (service rules: staff any, a
    municipality its own); 404 otherwise, so another's existence is not revealed."""

    actor = actor_for(current_user)
    try:
        application = service.get_application(db.session, actor, application_id)
    except service.ApplicationNotFound:
        abort(404)
    note_read(actor, [application])
    return application


@staff_bp.get("/applications/<int:application_id>", endpoint="application")
@role_required("sds")
def review_application(application_id: int) -> str:
    """One application: its values, validation with duplicates side by side, steps, history."""

    found = _application(application_id)
    validation = None
    if found.status not in DECIDED_STATUSES:
        validation = service.validate_application(db.session, found, actor_for(current_user))
    return render_template(
        "applications/staff_application.html", application=found, validation=validation,
        duplicates=[w for w in (validation.warnings if validation else []) if w.candidates],
        field_labels=page_texts.FIELD_LABELS,
    )


_STAFF_STEPS: dict[str, tuple[Callable[..., Any], LazyString]] = {
    "approve": (
        lambda s, a, i, reason: service.approve_application(s, a, i, note=reason),
        lazy_gettext("Godkendt: SOR-kode %(code)s."),
    ),
    "reject": (lambda s, a, i, reason: service.reject_application(s, a, i, reason),
               lazy_gettext("Afvist.")),
    "request-info": (
        lambda s, a, i, reason: service.request_information(s, a, i, reason),
        lazy_gettext("Sendt tilbage til kommunen med en anmodning om oplysninger."),
    ),
}


@staff_bp.post("/applications/<int:application_id>/<any(approve, reject, 'request-info'):step>")
@role_required("sds")
def decide(application_id: int, step: str) -> Response:
    """Approve, reject or request information, with the reason from the form."""

    back = url_for("staff.application", application_id=application_id)
    do, done = _STAFF_STEPS[step]
    reason = request.form.get("reason", "")
    try:
        result = _step(lambda session, actor: do(session, actor, application_id, reason), back)
    except service.NotValid as exc:
        for finding in exc.validation.errors:
            flash(page_texts.finding_text(finding), "error")
        return redirect(back, code=303)
    flash(done % {"code": result.sor_code}, "success")
    return redirect(back, code=303)


# --- municipalities ---------------------------------------------------------------------


@municipality_bp.get("/")
@role_required("municipality")
def applications() -> str:
    """The municipality's own applications and their status, newest first."""

    after = request.args.get("after", type=int)
    items, total = service.list_applications(
        db.session, actor_for(current_user), limit=PAGE_SIZE, after_id=after)
    next_after = items[-1].id if len(items) == PAGE_SIZE else None
    return render_template("applications/municipality_list.html", items=items, total=total,
                           next_after=next_after)


def _form_values() -> dict[str, Any]:
    """The application's fields as the form sent them (the service cleans them)."""
    values = {name: request.form.get(name, "") for name in service.EDITABLE_FIELDS}
    if values["kind"] not in ("new", "change"):
        values["kind"] = "new"
    return values


def _render_form(
    application: Application | None,
    values: dict[str, Any],
    *,
    validation: service.Validation | None = None,
    input_errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    shown = page_texts.findings_by_field(validation)
    for name, why in (input_errors or {}).items():
        shown.setdefault(name, {"errors": [], "warnings": []})["errors"].append(why)
    question = None
    if application is not None and application.status == "info_requested":
        question = next((e.reason for e in reversed(application.events)
                         if e.action == "info_requested"), None)
    html = render_template(
        "applications/municipality_form.html", application=application, values=values,
        validation=validation, shown=shown, input_errors=input_errors,
        duplicates=[w for w in (validation.warnings if validation else []) if w.candidates],
        type_choices=entity_type_choices(current_language()), question=question,
        field_labels=page_texts.FIELD_LABELS,
    )
    return html, status


def _values_of(application: Application) -> dict[str, Any]:
    values = {name: getattr(application, name) for name in service.EDITABLE_FIELDS}
    return {name: ("" if value is None else ", ".join(value) if isinstance(value, list)
                   else str(value)) for name, value in values.items()}


@municipality_bp.get("/applications/new")
@role_required("municipality")
def new_application() -> tuple[str, int]:
    values = {name: "" for name in service.EDITABLE_FIELDS}
    values["kind"] = "change" if request.args.get("kind") == "change" else "new"
    values["target_sor_code"] = request.args.get("target", "")[:18]
    values["contact_email"] = current_user.email
    return _render_form(None, values)


@municipality_bp.post("/applications/new")
@role_required("municipality")
def create() -> Response | tuple[str, int]:
    """Save a new draft; then validate or send it, as the button pressed asked."""

    values = _form_values()
    actor = actor_for(current_user)
    try:
        with write_step(db.session) as session:
            made = service.create_application(session, actor, values, source="web")
    except service.InvalidInput as exc:
        # Values that can never be right: nothing is stored; show them again, marked.
        return _render_form(None, values, input_errors=exc.errors, status=422)
    return _after_save(made.id)


def _after_save(application_id: int) -> Response | tuple[str, int]:
    """What the pressed button asks for once the draft is saved."""

    action = request.form.get("action", "save")
    page = url_for("municipality.application", application_id=application_id)
    if action == "validate":
        return redirect(page + "?valider=1#validering", code=303)
    if action == "submit":
        try:
            _step(lambda session, actor: service.submit_application(session, actor,
                                                                    application_id), page)
        except service.NotValid:
            flash(_("Ansøgningen kan ikke sendes: ret fejlene nedenfor."), "error")
            return redirect(page + "?valider=1#validering", code=303)
        flash(_("Ansøgningen er sendt til SDS."), "success")
        return redirect(page, code=303)
    flash(_("Kladden er gemt."), "success")
    return redirect(page, code=303)


@municipality_bp.get("/applications/<int:application_id>", endpoint="application")
@role_required("municipality")
def own_application(application_id: int) -> tuple[str, int]:
    """An own application: the form while it is editable (with "Valider"), else its state."""

    found = _application(application_id)
    validation = None
    if found.status in ("draft", "info_requested") and request.args.get("valider"):
        validation = service.validate_application(db.session, found)
    if found.status in ("draft", "info_requested"):
        return _render_form(found, _values_of(found), validation=validation)
    return render_template("applications/municipality_view.html", application=found), 200


@municipality_bp.post("/applications/<int:application_id>")
@role_required("municipality")
def save(application_id: int) -> Response | tuple[str, int]:
    """Save the edited draft (or the answer to SDS's question); then validate or send it."""

    found = _application(application_id)
    values = _form_values()
    values.pop("kind")  # fixed once the application is made
    page = url_for("municipality.application", application_id=found.id)
    actor = actor_for(current_user)
    with _refused(page):
        try:
            with write_step(db.session) as session:
                service.update_application(session, actor, application_id, values)
        except service.InvalidInput as exc:
            # Shown on the form again, marked, rather than as a message (_refused).
            found = _application(application_id)
            return _render_form(found, {**_form_values(), "kind": found.kind},
                                input_errors=exc.errors, status=422)
    return _after_save(application_id)


@municipality_bp.post("/applications/<int:application_id>/withdraw")
@role_required("municipality")
def withdraw(application_id: int) -> Response:
    page = url_for("municipality.application", application_id=application_id)
    _step(lambda session, actor: service.withdraw_application(
        session, actor, application_id, request.form.get("reason")), page)
    flash(_("Ansøgningen er trukket tilbage."), "success")
    return redirect(page, code=303)

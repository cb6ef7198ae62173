"""The applications API: parse, call one service function, commit, serialise.

A step that writes runs in one :func:`~sorregistry.database.write_step`; the
service's refusals are domain errors that the one registered handler answers
(:mod:`sorregistry.errors`), so no route maps an error to a status by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import Schema
from sqlalchemy.orm import Session

from applications import downloads, mail_service, service
from applications.mail_models import IncomingMail
from applications.models import Application
from applications.read_audit import note_read
from applications.schemas import (
    ApplicationInputSchema,
    ApplicationListArgsSchema,
    ApplicationListSchema,
    ApplicationSchema,
    ApplicationValidationSchema,
    IncomingMailListSchema,
    IncomingMailSchema,
    OptionalReasonSchema,
    ReasonSchema,
    ResolveTriageSchema,
    TriageArgsSchema,
)
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.database import write_step
from sorregistry.extensions import db
from sorregistry.security import current_client, require

blp = Blueprint(
    "applications",
    __name__,
    description="Applications for SOR codes / Ansøgninger om SOR-koder",
)
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
ID_PARAMETER = {
    "in": "path",
    "name": "application_id",
    "required": True,
    "description": "Application id / Ansøgnings-id",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**53},
}


# What a client may do next with an application it was given (OpenAPI links): the
# document says so, and schemathesis' stateful phase follows them.
_NEXT = {
    "GetApplication": "getApplication", "EditApplication": "editApplication",
    "ValidateApplication": "validateApplication", "SubmitApplication": "submitApplication",
    "WithdrawApplication": "withdrawApplication", "ApproveApplication": "approveApplication",
    "RejectApplication": "rejectApplication", "RequestInformation": "requestInformation",
}


def _links(status: int, pointer: str = "/id") -> dict[str, Any]:
    """The links of a response whose body holds an application's id at *pointer*."""
    return {"responses": {status: {"links": {  # int, as flask-smorest keys its own
        name: {"operationId": operation,
               "parameters": {"application_id": f"$response.body#{pointer}"}}
        for name, operation in _NEXT.items()}}}}


def _actor() -> service.Actor:
    return service.Actor.from_client(current_client())


def _check_id(application_id: int) -> int:
    if not 1 <= application_id <= 2**53:
        raise service.ApplicationNotFound(f"no application {application_id}")
    return application_id


def _read(application_id: int) -> Application:
    """The application the caller may see (404 otherwise); another municipality's read by
    staff is noted for the audit log."""
    actor = _actor()
    application = service.get_application(db.session, actor, _check_id(application_id))
    note_read(actor, [application])
    return application


@blp.route("/applications")
class Applications(MethodView):
    @blp.doc(security=BEARER, **_links(200, "/items/0/id"))
    @blp.arguments(ApplicationListArgsSchema, location="query")
    @blp.response(200, ApplicationListSchema)
    @require("municipality", "sds")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Applications: a municipality sees its own, SDS staff all, newest first."""
        cursor = args.get("cursor")
        actor = _actor()
        items, total = service.list_applications(
            db.session, actor, status=args.get("status") or (),
            municipality_code=args.get("municipality_code"), limit=args["limit"],
            after_id=int(cursor) if cursor else None,
        )
        note_read(actor, items)
        last = items[-1].id if len(items) == args["limit"] else None
        return {"items": items, "total": total, "next": str(last) if last else None}

    @blp.doc(security=BEARER, **_links(201))
    @blp.arguments(ApplicationInputSchema)
    @blp.response(201, ApplicationSchema)
    @blp.alt_response(422, description="A field can never be right (bad CVR, postcode ...)")
    @require("municipality", "sds")
    def post(self, data: dict[str, Any]) -> Application:
        """Create a draft application for the caller's municipality."""
        with write_step(db.session) as session:
            return service.create_application(session, _actor(), data)


@blp.route("/applications/<int:application_id>", parameters=[ID_PARAMETER])
class ApplicationItem(MethodView):
    @blp.doc(security=BEARER, operationId="getApplication", **_links(200))
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(404, description="Unknown, or another municipality's")
    @require("municipality", "sds")
    def get(self, application_id: int) -> Application:
        """One application with its events."""
        return _read(application_id)

    @blp.doc(security=BEARER, operationId="editApplication", **_links(200))
    @blp.arguments(ApplicationInputSchema)
    @blp.response(200, ApplicationSchema)
    @blp.alt_response(409, description="Not a draft (or sent back for information)")
    @require("municipality")
    def patch(self, data: dict[str, Any], application_id: int) -> Application:
        """Edit a draft, or an application sent back for more information."""
        with write_step(db.session) as session:
            return service.update_application(session, _actor(), _check_id(application_id),
                                              data)


# One step: (session, actor, application id, the request body) -> the application.
Step = Callable[[Session, service.Actor, int, dict[str, Any]], Application]


def _workflow_route(path: str, operation_id: str, summary: str, roles: tuple[str, ...],
                    do: Step, body: type[Schema] | None = None) -> None:
    """One POST step of the workflow: authenticate, run it, commit, return the application."""

    def post(self: MethodView, *args: dict[str, Any], **kwargs: int) -> Application:
        data = args[0] if args else {}
        application_id = _check_id(kwargs["application_id"])
        with write_step(db.session) as session:
            return do(session, _actor(), application_id, data or {})

    post.__doc__ = summary
    view = require(*roles)(post)
    view = blp.alt_response(409, description="The status does not allow this step")(view)
    view = blp.alt_response(404, description="Unknown, or not the caller's")(view)
    view = blp.response(200, ApplicationSchema)(view)
    if body is not None:
        view = blp.arguments(body)(view)
    view = blp.doc(security=BEARER, operationId=operation_id, **_links(200))(view)
    name = "".join(part.title() for part in path.split("-")) + "Step"
    blp.route(f"/applications/<int:application_id>/{path}",
              parameters=[ID_PARAMETER])(type(name, (MethodView,), {"post": view}))


_workflow_route(
    "submit", "submitApplication",
    "Submit: draft → submitted; 422 with the errors if it does not validate.",
    ("municipality",), lambda s, a, i, d: service.submit_application(s, a, i))
_workflow_route(
    "approve", "approveApplication",
    "Approve (SDS): allocate the SOR code and create or change the organisation.",
    ("sds",), lambda s, a, i, d: service.approve_application(s, a, i, note=d.get("reason")),
    OptionalReasonSchema)
_workflow_route(
    "reject", "rejectApplication", "Reject (SDS), with the reason sent to the municipality.",
    ("sds",), lambda s, a, i, d: service.reject_application(s, a, i, d["reason"]),
    ReasonSchema)
_workflow_route(
    "request-info", "requestInformation",
    "Request information (SDS): back to the municipality with a question.",
    ("sds",), lambda s, a, i, d: service.request_information(s, a, i, d["reason"]),
    ReasonSchema)
_workflow_route(
    "withdraw", "withdrawApplication", "Withdraw (the municipality), before a decision.",
    ("municipality",),
    lambda s, a, i, d: service.withdraw_application(s, a, i, d.get("reason")),
    OptionalReasonSchema)


@blp.route("/applications/<int:application_id>/validate", parameters=[ID_PARAMETER])
class ApplicationValidate(MethodView):
    @blp.doc(security=BEARER, operationId="validateApplication")
    @blp.response(200, ApplicationValidationSchema)
    @blp.alt_response(404, description="Unknown, or not the caller's")
    @require("municipality", "sds")
    def post(self, application_id: int) -> dict[str, Any]:
        """Errors (block submission) and warnings, with possible duplicates and candidates."""
        application = _read(application_id)
        return service.validate_application(db.session, application, _actor()).as_dict()


@blp.route("/applications/<int:application_id>/attachments/<int:attachment_id>",
           parameters=[ID_PARAMETER, {
               "in": "path", "name": "attachment_id", "required": True,
               "description": "Attachment id / Vedhæftningens id",
               "schema": {"type": "integer", "minimum": 1, "maximum": 2**53}}])
class ApplicationAttachmentFile(MethodView):
    @blp.doc(security=BEARER, responses={"200": {
        "description": "The file as it came / Filen som den kom",
        "content": {"application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}}}}})
    @blp.alt_response(404, description="Unknown, or not the caller's")
    @require("municipality", "sds")
    def get(self, application_id: int, attachment_id: int) -> Response:
        """An attachment of an emailed application, as a download."""
        application = _read(application_id)
        attachment = next((a for a in application.attachments if a.id == attachment_id), None)
        if attachment is None:
            raise service.AttachmentNotFound(f"application {application.reference} has no "
                                             f"attachment {attachment_id}")
        return downloads.attachment(attachment)


MAIL_PARAMETER = {
    "in": "path", "name": "mail_id", "required": True,
    "description": "Ledger id of the mail / Mailens løbenummer",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**53},
}


@blp.route("/mail/triage")
class TriageItems(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(TriageArgsSchema, location="query")
    @blp.response(200, IncomingMailListSchema)
    @require("sds")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Emailed applications that need a person: unreadable, unknown sender, ..."""
        cursor = args.get("cursor")
        items, total = mail_service.list_triage(
            db.session, status=args["status"], reason=args.get("reason"), limit=args["limit"],
            after_id=int(cursor) if cursor else None,
        )
        last = items[-1].id if len(items) == args["limit"] else None
        return {"items": items, "total": total, "next": str(last) if last else None}


@blp.route("/mail/<int:mail_id>", parameters=[MAIL_PARAMETER])
class MailItem(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, IncomingMailSchema)
    @blp.alt_response(404, description="Not in the ledger")
    @require("sds")
    def get(self, mail_id: int) -> IncomingMail:
        """One mail from the ledger: what was read from it and what became of it."""
        return mail_service.get_mail(db.session, mail_id)


@blp.route("/mail/<int:mail_id>/raw", parameters=[MAIL_PARAMETER])
class MailRaw(MethodView):
    @blp.doc(security=BEARER, responses={"200": {
        "description": "The message as received / Mailen som modtaget",
        "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}})
    @blp.alt_response(404, description="Not in the ledger")
    @require("sds")
    def get(self, mail_id: int) -> Response:
        """The original message, attachments included, to open in a mail program."""
        return downloads.raw_mail(mail_service.get_mail(db.session, mail_id))


@blp.route("/mail/<int:mail_id>/resolve", parameters=[MAIL_PARAMETER])
class MailResolve(MethodView):
    @blp.doc(security=BEARER)
    @blp.arguments(ResolveTriageSchema)
    @blp.response(200, IncomingMailSchema)
    @blp.alt_response(404, description="Not in the ledger")
    @blp.alt_response(409, description="Not an open triage item")
    @require("sds")
    def post(self, data: dict[str, Any], mail_id: int) -> IncomingMail:
        """Close a triage item with a note (and the application made by hand, if any)."""
        mail_service.get_mail(db.session, mail_id)
        application_id = data.get("application_id")
        with write_step(db.session) as session:
            if application_id is not None:
                service.get_application(session, _actor(), application_id)
            return mail_service.resolve_triage(session, mail_id, resolved_by=_actor().name,
                                               note=data["note"], application_id=application_id)

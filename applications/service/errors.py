"""The workflow's refusals, each carrying the HTTP status and field errors that say how.

They are :class:`sorregistry.errors.DomainError`\\ s: a route raises them and the one
registered handler rolls back and answers - the API with its JSON envelope, a page with
an error page (or the page catches the ones it answers more kindly, with a message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sorregistry.errors import DomainError

if TYPE_CHECKING:
    from applications.service.findings import Validation


class ApplicationError(DomainError):
    """Base of the workflow's errors."""


class ApplicationNotFound(ApplicationError, LookupError):
    """No such application — or not one the actor may see (no hint which)."""

    status = 404


class AttachmentNotFound(ApplicationError, LookupError):
    """The application (which the actor may see) has no such attachment."""

    status = 404


class Forbidden(ApplicationError, PermissionError):
    """The actor may see the application but not do this to it."""

    status = 403


class InvalidTransition(ApplicationError):
    """The application's status does not allow the step (e.g. approving a draft)."""

    status = 409


class InvalidInput(ApplicationError, ValueError):
    """Values that can never be right (a bad CVR, a malformed postcode); nothing was stored.

    ``errors`` is ``{field: reason}``; the API shows them as webargs shows a request
    body's errors, ``{"json": {field: [reason]}}``, so a client reads both the same way.
    """

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{name}: {why}" for name, why in errors.items()),
            field_errors={"json": {name: [why] for name, why in errors.items()}},
        )


class NotValid(ApplicationError, ValueError):
    """The application has validation errors, so it cannot be submitted or approved.

    The field errors are the validation's errors, ``{field: [message, ...]}``.
    """

    status = 422

    def __init__(self, validation: Validation) -> None:
        self.validation = validation
        by_field: dict[str, list[str]] = {}
        for finding in validation.errors:
            by_field.setdefault(finding.field, []).append(finding.message)
        summary = "; ".join(f"{f.field}: {f.message}" for f in validation.errors)
        super().__init__(f"the application does not validate: {summary}",
                         field_errors=by_field)

"""The register's HTTP API: one organisation and its history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.schemas import HistorySchema, OrganisationSchema, organisation_item
from sorregistry.errors import DomainError
from sorregistry.extensions import db
from sorregistry.responses import json_response
from sorregistry.security import require

blp = Blueprint(
    "organisations",
    __name__,
    description="The register of health-care organisations / "
    "Sundhedsvæsenets Organisationsregister",
)


class MalformedSorCode(DomainError):
    """The path's SOR code does not have a SOR code's shape (422, on ``sor_code``)."""

    status = 422


class UnknownSorCode(DomainError):
    """No organisation has the path's SOR code (404)."""

    status = 404


@contextmanager
def _sor_code_refusals() -> Iterator[None]:
    """The register's refusals of a SOR code in the path, as the API answers them."""
    try:
        yield
    except ids.IdentifierError as exc:
        raise MalformedSorCode(str(exc), field_errors={"sor_code": [str(exc)]}) from exc
    except service.NotFound as exc:
        raise UnknownSorCode(str(exc)) from exc


SOR_CODE_PARAMETER = {
    "in": "path",
    "name": "sor_code",
    "required": True,
    "description": "SOR code / SOR-kode",
    "schema": {"type": "string", "pattern": r"^[1-9][0-9]{0,7}100001600[0-9]$"},
}


@blp.route("/organisations/<sor_code>", parameters=[SOR_CODE_PARAMETER])
class OrganisationItem(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, OrganisationSchema)
    @blp.alt_response(404, description="Unknown SOR code")
    @blp.alt_response(422, description="Malformed SOR code")
    @require()
    def get(self, sor_code: str) -> Response:
        """One organisation with its effective (inherited) values."""
        with _sor_code_refusals():
            organisation = service.get_organisation(db.session, sor_code)
        return json_response(organisation_item(organisation))


@blp.route("/organisations/<sor_code>/history", parameters=[SOR_CODE_PARAMETER])
class OrganisationHistory(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, HistorySchema)
    @blp.alt_response(404, description="Unknown SOR code")
    @require()
    def get(self, sor_code: str) -> dict[str, Any]:
        """Every version of the organisation, oldest first, with what each changed."""
        with _sor_code_refusals():
            entries = service.organisation_history(db.session, sor_code)
        versions = [
            {
                "version": e.version,
                "recorded_at": e.recorded_at,
                "superseded_at": e.superseded_at,
                "source": e.source,
                "actor": e.actor,
                "reference": e.reference,
                "changes": {k: list(v) for k, v in e.changes.items()},
                "snapshot": e.snapshot,
            }
            for e in entries
        ]
        return {"sor_code": sor_code.strip(), "versions": versions}

"""The register's HTTP API: one organisation and its history."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.schemas import HistorySchema, OrganisationSchema, organisation_item
from sorregistry.extensions import db
from sorregistry.responses import json_response
from sorregistry.security import require

blp = Blueprint(
    "organisations",
    __name__,
    description="The register of health-care organisations / "
    "Sundhedsvæsenets Organisationsregister",
)


def _get(sor_code: str) -> Any:
    try:
        return service.get_organisation(db.session, sor_code)
    except ids.IdentifierError as exc:
        abort(422, message=str(exc), errors={"sor_code": [str(exc)]})
    except service.NotFound as exc:
        abort(404, message=str(exc))


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
    def get(self, sor_code: str) -> Any:
        """One organisation with its effective (inherited) values."""
        return json_response(organisation_item(_get(sor_code)))


@blp.route("/organisations/<sor_code>/history", parameters=[SOR_CODE_PARAMETER])
class OrganisationHistory(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, HistorySchema)
    @blp.alt_response(404, description="Unknown SOR code")
    @require()
    def get(self, sor_code: str) -> Any:
        """Every version of the organisation, oldest first, with what each changed."""
        try:
            entries = service.organisation_history(db.session, sor_code)
        except ids.IdentifierError as exc:
            abort(422, message=str(exc), errors={"sor_code": [str(exc)]})
        except service.NotFound as exc:
            abort(404, message=str(exc))
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

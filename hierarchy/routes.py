"""The register's HTTP API: one organisation (now, on a date, as recorded at an instant),
several at once, and an organisation's history.

Every organisation that names a successor is answered with the ends of its chains
(``hierarchy.successors``); reads as of a moment are ``hierarchy.asof``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

from flask import Response
from flask.views import MethodView
from sqlalchemy import select

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.asof import Moment, organisations_as_of
from hierarchy.models import Organisation
from hierarchy.schemas import (
    BatchRequestSchema,
    BatchSchema,
    HistorySchema,
    OrganisationArgsSchema,
    OrganisationSchema,
    organisation_item,
    with_successors,
)
from hierarchy.search.statements import ItemRow
from hierarchy.successors import find_successors
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.database import is_postgresql, one_of
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


class NotThen(DomainError):
    """The organisation was not in force on the date, or not yet recorded at the instant."""

    status = 404


def _items(rows: Sequence[ItemRow], day: date) -> list[dict[str, Any]]:
    """*rows* as the API shows them, each naming a successor with its chains' ends."""
    found = find_successors(db.session, {row.sor_code: row.replaced_by for row in rows}, day)
    items = []
    for row in rows:
        item = with_successors(organisation_item(row), found.get(row.sor_code))
        recorded_at = getattr(row, "recorded_at", None)
        if recorded_at is not None:
            item["recorded_at"] = recorded_at
        items.append(item)
    return items


def _read(codes: Sequence[str], moment: Moment) -> list[ItemRow]:
    """The organisations of *codes* that *moment* reads, in the order asked."""
    if moment.on is None and moment.as_recorded is None:
        postgresql = is_postgresql(db.session)
        rows = {
            organisation.sor_code: organisation
            for start in range(0, len(codes), 500)
            for organisation in db.session.execute(select(Organisation).where(one_of(
                Organisation.sor_code, codes[start:start + 500], postgresql=postgresql))
            ).scalars()
        }
        return [rows[code] for code in codes if code in rows]
    as_of = organisations_as_of(db.session, codes, moment)
    return [as_of[code] for code in codes if code in as_of]


def _moment(args: dict[str, Any]) -> Moment:
    return Moment(on=args.get("on"), as_recorded=args.get("as_recorded"))


def _not_then(sor_code: str, moment: Moment) -> NotThen:
    if moment.as_recorded is not None and moment.on is not None:
        return NotThen(f"the register said at {moment.as_recorded.isoformat()} that no "
                       f"organisation {sor_code} was in force on {moment.on.isoformat()}")
    if moment.as_recorded is not None:
        return NotThen(f"the register held no organisation {sor_code} at "
                       f"{moment.as_recorded.isoformat()}")
    assert moment.on is not None
    return NotThen(f"no organisation {sor_code} was in force on {moment.on.isoformat()}")


@blp.route("/organisations/<sor_code>", parameters=[SOR_CODE_PARAMETER])
class OrganisationItem(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(OrganisationArgsSchema, location="query")
    @blp.response(200, OrganisationSchema)
    @blp.alt_response(404, description="Unknown SOR code, or not in force / recorded then")
    @blp.alt_response(422, description="Malformed SOR code, date or instant")
    @require()
    def get(self, args: dict[str, Any], sor_code: str) -> Response:
        """One organisation with its effective (inherited) values: now, in force on a date
        (on), as the register said at an instant (as_recorded), or both."""
        moment = _moment(args)
        with _sor_code_refusals():
            organisation = service.get_organisation(db.session, sor_code)
        if moment.on is None and moment.as_recorded is None:
            return json_response(_items([organisation], date.today())[0])
        rows = _read([organisation.sor_code], moment)
        if not rows:
            raise _not_then(organisation.sor_code, moment)
        return json_response(_items(rows, moment.on or date.today())[0])


@blp.route("/organisations/batch")
class OrganisationBatch(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BatchRequestSchema)
    @blp.response(200, BatchSchema)
    @blp.alt_response(422, description="No codes, more than 500, or a malformed one")
    @require()
    def post(self, body: dict[str, Any]) -> Response:
        """Several organisations at once (at most 500), as GetSorEntity(SorIds, Date):
        in force on a date (on) or as they stand now; the codes not found are named."""
        codes: list[str] = body["sor_codes"]
        moment = _moment(body)
        rows = _read(codes, moment)
        found = {row.sor_code for row in rows}
        return json_response({
            "items": _items(rows, moment.on or date.today()),
            "not_found": [code for code in codes if code not in found],
        })


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

"""The staff's figures as an API: ``GET /api/v1/stats/<figure>``, for SDS only.

Each answer is the figure's schema dump (``applications.stats_figures``), the same
numbers the staff's start page draws, tables and writes as CSV. One class per figure,
so that a grep for a path finds its handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask.views import MethodView

from applications.stats_figures import FIGURES
from applications.stats_schemas import (
    DecisionsPerWeekSchema,
    DecisionTimesByMonthSchema,
    DecisionTimesByMunicipalitySchema,
    MailIntakeSchema,
    OutboxSchema,
    RegisterSizeSchema,
    WaitingByAgeSchema,
    WaitingByMunicipalitySchema,
)
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.extensions import db
from sorregistry.models import utcnow
from sorregistry.security import require

blp = Blueprint(
    "stats", __name__,
    description="The staff's work in figures / SDS' arbejde i tal",
)
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _compute(name: str) -> Mapping[str, Any]:
    return FIGURES[name].compute(db.session, utcnow())


@blp.route("/stats/waiting-by-age")
class WaitingByAge(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, WaitingByAgeSchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """Submitted applications by age in working days, against the promised answer time."""
        return _compute("waiting-by-age")


@blp.route("/stats/waiting-by-municipality")
class WaitingByMunicipality(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, WaitingByMunicipalitySchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """Submitted applications per municipality, and how many are past the promise."""
        return _compute("waiting-by-municipality")


@blp.route("/stats/decisions-per-week")
class DecisionsPerWeek(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, DecisionsPerWeekSchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """Approvals and rejections per week, the last 12 weeks."""
        return _compute("decisions-per-week")


@blp.route("/stats/decision-times-by-month")
class DecisionTimesByMonth(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, DecisionTimesByMonthSchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """Working days from submission to decision, median and 90th percentile per month."""
        return _compute("decision-times-by-month")


@blp.route("/stats/decision-times-by-municipality")
class DecisionTimesByMunicipality(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, DecisionTimesByMunicipalitySchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """Working days from submission to decision per municipality, the last 12 months."""
        return _compute("decision-times-by-municipality")


@blp.route("/stats/mail-intake")
class MailIntake(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, MailIntakeSchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """The mail intake's ledger by state, what waits for triage and what was unreadable."""
        return _compute("mail-intake")


@blp.route("/stats/outbox")
class Outbox(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, OutboxSchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """The outbox by status and the age of the oldest mail that waits."""
        return _compute("outbox")


@blp.route("/stats/register-size")
class RegisterSize(MethodView):
    @blp.doc(security=BEARER)
    @blp.response(200, RegisterSizeSchema)
    @require("sds")
    def get(self) -> Mapping[str, Any]:
        """SIs and OEs by ownership at each of the last 12 month ends (and today)."""
        return _compute("register-size")

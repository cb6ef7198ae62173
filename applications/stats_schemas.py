"""Marshmallow schemas of the staff's figures (``GET /api/v1/stats/...``).

What a schema dumps is the figure: the API answers with it, and the staff's page draws
its chart, its table and its CSV from the same dump (``applications.stats_figures``).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class AgeBucketSchema(Schema):
    label = fields.String(required=True, **_d("Working days, as a range", "Arbejdsdage"))
    min_days = fields.Integer(required=True, **_d("Lowest age", "Laveste alder"))
    max_days = fields.Integer(allow_none=True, **_d("Highest age (none: and older)",
                                                    "Højeste alder (ingen: og ældre)"))
    count = fields.Integer(required=True, **_d("Waiting applications", "Ventende ansøgninger"))
    over_promise = fields.Boolean(required=True, **_d("Past the promised answer time",
                                                      "Over den lovede svartid"))


class WaitingByAgeSchema(Schema):
    as_of = fields.Date(required=True, **_d("The day (Danish time)", "Dagen (dansk tid)"))
    promise_working_days = fields.Integer(required=True, **_d(
        "The answer time SDS promises, in working days", "SDS' lovede svartid i arbejdsdage"))
    total = fields.Integer(required=True, **_d("Waiting applications", "Ventende ansøgninger"))
    buckets = fields.List(fields.Nested(AgeBucketSchema), required=True)


class WeekSchema(Schema):
    week = fields.String(required=True, **_d("ISO week", "Uge (ISO)"))
    week_start = fields.Date(required=True, **_d("Its Monday", "Ugens mandag"))
    approved = fields.Integer(required=True, **_d("Approved", "Godkendt"))
    rejected = fields.Integer(required=True, **_d("Rejected", "Afvist"))


class DecisionsPerWeekSchema(Schema):
    weeks = fields.List(fields.Nested(WeekSchema), required=True)


class _TimesFields(Schema):
    decisions = fields.Integer(required=True, **_d("Decisions", "Afgørelser"))
    median_days = fields.Float(allow_none=True, **_d("Median, working days",
                                                     "Median, arbejdsdage"))
    p90_days = fields.Integer(allow_none=True, **_d("90th percentile, working days",
                                                    "90-percentil, arbejdsdage"))


class MonthTimesSchema(_TimesFields):
    month = fields.String(required=True, **_d("Month of the decision", "Afgørelsens måned"))


class DecisionTimesByMonthSchema(Schema):
    months = fields.List(fields.Nested(MonthTimesSchema), required=True)


class MunicipalityTimesSchema(_TimesFields):
    municipality_code = fields.String(required=True, **_d("Kommunekode", "Kommunekode"))
    municipality_name = fields.String(allow_none=True, **_d("Municipality", "Kommune"))


class DecisionTimesByMunicipalitySchema(Schema):
    since = fields.Date(required=True, **_d("Decisions from", "Afgørelser fra"))
    municipalities = fields.List(fields.Nested(MunicipalityTimesSchema), required=True)


class MunicipalityWaitingSchema(Schema):
    municipality_code = fields.String(required=True, **_d("Kommunekode", "Kommunekode"))
    municipality_name = fields.String(allow_none=True, **_d("Municipality", "Kommune"))
    waiting = fields.Integer(required=True, **_d("Waiting", "Ventende"))
    over_promise = fields.Integer(required=True, **_d("Of these past the promise",
                                                      "Heraf over svartiden"))


class WaitingByMunicipalitySchema(Schema):
    municipalities = fields.List(fields.Nested(MunicipalityWaitingSchema), required=True)


class MailIntakeSchema(Schema):
    applications = fields.Integer(required=True, **_d("Mails made into applications",
                                                      "Mails der blev til ansøgninger"))
    triage_open = fields.Integer(required=True, **_d("Waiting triage", "Venter på visitering"))
    triage_resolved = fields.Integer(required=True, **_d("Triage resolved",
                                                         "Visitering afsluttet"))
    unparseable = fields.Integer(required=True, **_d("Could not be read (open or not)",
                                                     "Kunne ikke læses (åbne eller ej)"))
    open_by_reason = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                                 **_d("Waiting triage by reason",
                                      "Venter på visitering, pr. årsag"))


class OutboxSchema(Schema):
    queued = fields.Integer(required=True, **_d("Queued", "I kø"))
    sending = fields.Integer(required=True, **_d("Being sent", "Sendes"))
    sent = fields.Integer(required=True, **_d("Sent", "Sendt"))
    failed = fields.Integer(required=True, **_d("Failed", "Fejlet"))
    waiting = fields.Integer(required=True, **_d("Waiting (queued or being sent)",
                                                 "Venter (i kø eller sendes)"))
    oldest_waiting_at = fields.DateTime(allow_none=True, **_d("Oldest waiting, made at",
                                                              "Ældste ventende, oprettet"))
    oldest_waiting_seconds = fields.Integer(allow_none=True, **_d(
        "Age of the oldest waiting, seconds", "Ældste ventendes alder, sekunder"))


class SizePointSchema(Schema):
    day = fields.Date(required=True, **_d("Day (a month's end, or today)",
                                          "Dag (en måneds sidste, eller i dag)"))
    statslig = fields.Integer(required=True)
    regional = fields.Integer(required=True)
    kommunal = fields.Integer(required=True)
    privat = fields.Integer(required=True)
    total = fields.Integer(required=True, **_d("All four", "Alle fire"))


class RegisterSizeSchema(Schema):
    points = fields.List(fields.Nested(SizePointSchema), required=True)

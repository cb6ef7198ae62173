"""The staff's figures, each once: its numbers (the API's answer), its table and its chart.

A :class:`Figure` computes its numbers from the services (``applications.stats``,
``notifications.stats``, ``hierarchy.stats``) and dumps them through its schema
(``applications.stats_schemas``); that dump is what ``GET /api/v1/stats/<name>``
answers, and what the staff's start page draws as an SVG chart
(``sorregistry.charts``), lists in its "Vis tal" table and writes as CSV - so the three
cannot disagree. A table's columns are the dump's keys (the CSV's header) with a
label in the page's language; its cells are the dump's values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from markupsafe import Markup
from marshmallow import Schema

from applications import stats
from applications.page_texts import TRIAGE_REASONS
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
from hierarchy import stats as register_stats
from hierarchy.codes import municipalities
from notifications import stats as outbox_stats
from sorregistry.charts import Series, bar_chart, hbar_chart, line_chart
from sorregistry.database import DbSession
from sorregistry.i18n import LazyString, gettext, lazy_gettext

__all__ = ["FIGURES", "Figure", "Table", "cell", "csv_text", "figure_data"]

OWNERSHIP_NAMES = {
    "statslig": lazy_gettext("Statslig"), "regional": lazy_gettext("Regional"),
    "kommunal": lazy_gettext("Kommunal"), "privat": lazy_gettext("Privat"),
}
REASON_PREFIX = "open_by_reason."
MEASURE_NAMES: dict[str, LazyString] = {
    "applications": lazy_gettext("Blev til ansøgninger"),
    "triage_open": lazy_gettext("Venter på visitering"),
    "triage_resolved": lazy_gettext("Visitering afsluttet"),
    "unparseable": lazy_gettext("Kunne ikke læses"),
    "queued": lazy_gettext("I kø"), "sending": lazy_gettext("Sendes"),
    "failed": lazy_gettext("Fejlet"), "sent": lazy_gettext("Sendt"),
    "waiting": lazy_gettext("Venter i alt"),
    "oldest_waiting_at": lazy_gettext("Ældste ventende oprettet"),
    "oldest_waiting_seconds": lazy_gettext("Ældste ventendes alder (sekunder)"),
}
# Rows a chart of municipalities draws (the table and the CSV hold them all).
CHART_ROWS = 15
_ON_TIME, _LATE = "#0072B2", "#D55E00"


@dataclass(frozen=True, slots=True)
class Table:
    keys: list[str]
    labels: list[str]
    rows: list[list[Any]]
    # What each row is, in the page's language, where the first cell is a code.
    row_labels: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    title: LazyString
    schema: type[Schema]
    compute: Callable[[DbSession, datetime], Mapping[str, Any]]
    table: Callable[[dict[str, Any]], Table]
    chart: Callable[[dict[str, Any], str], Markup]


def figure_data(figure: Figure, session: DbSession, now: datetime) -> dict[str, Any]:
    """The figure's numbers as the API gives them (its schema's dump)."""
    data: dict[str, Any] = figure.schema().dump(figure.compute(session, now))
    return data


def cell(value: Any) -> str:
    """A value as a CSV cell: JSON's words for booleans, empty for none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_text(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.keys)
    writer.writerows([cell(value) for value in row] for row in table.rows)
    return out.getvalue()


def _list_table(key: str, columns: Sequence[tuple[str, LazyString]]
                ) -> Callable[[dict[str, Any]], Table]:
    def table(data: dict[str, Any]) -> Table:
        return Table([name for name, _ in columns], [str(label) for _, label in columns],
                     [[item[name] for name, _ in columns] for item in data[key]])
    return table


def _measures_table(rows: Callable[[dict[str, Any]], list[tuple[str, Any]]]
                    ) -> Callable[[dict[str, Any]], Table]:
    """A table of one object's numbers: a row per key (nested keys joined with a dot)."""
    def table(data: dict[str, Any]) -> Table:
        pairs = rows(data)
        return Table(["measure", "value"], [gettext("Mål"), gettext("Værdi")],
                     [[name, value] for name, value in pairs],
                     [_measure_label(name) for name, _ in pairs])
    return table


def _measure_label(name: str) -> str:
    if name.startswith(REASON_PREFIX):
        reason = name.removeprefix(REASON_PREFIX)
        return gettext("Venter: %(reason)s", reason=str(TRIAGE_REASONS.get(reason, reason)))
    return str(MEASURE_NAMES.get(name, name))


def _name(code: str) -> str | None:
    return municipalities().get(code)


def _short_day(value: str) -> str:
    day = date.fromisoformat(value)
    return f"{day:%m/%y}"


# --- waiting ----------------------------------------------------------------------------


def _waiting_by_age(session: DbSession, now: datetime) -> dict[str, Any]:
    buckets = stats.waiting_by_age(session, now)
    return {
        "as_of": stats.local_day(now), "promise_working_days": stats.PROMISE_WORKING_DAYS,
        "total": sum(b.count for b in buckets),
        "buckets": [{"label": f"{b.low}–{b.high}" if b.high is not None else f"{b.low}+",
                     "min_days": b.low, "max_days": b.high, "count": b.count,
                     "over_promise": b.over_promise} for b in buckets],
    }


def _waiting_by_age_chart(data: dict[str, Any], chart_id: str) -> Markup:
    buckets = data["buckets"]
    return bar_chart(
        gettext("Ventende ansøgninger efter alder (%(total)s)", total=data["total"]),
        [b["label"] for b in buckets],
        [Series(gettext("Inden for svartiden"),
                [None if b["over_promise"] else b["count"] for b in buckets], _ON_TIME),
         Series(gettext("Over svartiden (%(days)s arbejdsdage)",
                        days=data["promise_working_days"]),
                [b["count"] if b["over_promise"] else None for b in buckets], _LATE)],
        y_label=gettext("Ansøgninger"), x_label=gettext("Arbejdsdage siden indsendelse"),
        stacked=True, chart_id=chart_id)


def _waiting_by_municipality(session: DbSession, now: datetime) -> dict[str, Any]:
    return {"municipalities": [
        {"municipality_code": w.municipality_code, "municipality_name": _name(w.municipality_code),
         "waiting": w.waiting, "over_promise": w.over_promise}
        for w in stats.waiting_by_municipality(session, now)]}


def _waiting_by_municipality_chart(data: dict[str, Any], chart_id: str) -> Markup:
    rows = data["municipalities"][:CHART_ROWS]
    return hbar_chart(
        gettext("Ventende ansøgninger pr. kommune"),
        [r["municipality_name"] or r["municipality_code"] for r in rows],
        [Series(gettext("Inden for svartiden"), [r["waiting"] - r["over_promise"] for r in rows],
                _ON_TIME),
         Series(gettext("Over svartiden"), [r["over_promise"] for r in rows], _LATE)],
        x_label=gettext("Ansøgninger"), chart_id=chart_id)


# --- decisions --------------------------------------------------------------------------


def _decisions_per_week(session: DbSession, now: datetime) -> dict[str, Any]:
    return {"weeks": [{"week": w.week, "week_start": w.week_start, "approved": w.approved,
                       "rejected": w.rejected} for w in stats.decisions_per_week(session, now)]}


def _decisions_chart(data: dict[str, Any], chart_id: str) -> Markup:
    weeks = data["weeks"]
    return bar_chart(
        gettext("Afgørelser pr. uge"), [w["week"][-3:] for w in weeks],
        [Series(gettext("Godkendt"), [w["approved"] for w in weeks], "#009E73"),
         Series(gettext("Afvist"), [w["rejected"] for w in weeks], _LATE)],
        y_label=gettext("Afgørelser"), x_label=gettext("Uge"), stacked=True, chart_id=chart_id)


def _times(item: stats.DecisionTimes) -> dict[str, Any]:
    return {"decisions": item.decisions, "median_days": item.median_days,
            "p90_days": item.p90_days}


def _times_by_month(session: DbSession, now: datetime) -> dict[str, Any]:
    return {"months": [{"month": t.group, **_times(t)}
                       for t in stats.decision_times_by_month(session, now)]}


def _times_by_month_chart(data: dict[str, Any], chart_id: str) -> Markup:
    months = data["months"]
    labels = [f"{m['month'][5:]}/{m['month'][2:4]}" for m in months]
    return line_chart(
        gettext("Tid fra indsendelse til afgørelse"), labels,
        [Series(gettext("Median"), [m["median_days"] for m in months], _ON_TIME),
         Series(gettext("90-percentil"), [m["p90_days"] for m in months], _LATE)],
        y_label=gettext("Arbejdsdage"), x_label=gettext("Afgørelsens måned"), chart_id=chart_id)


def _times_by_municipality(session: DbSession, now: datetime) -> dict[str, Any]:
    times = stats.decision_times_by_municipality(session, now)
    return {"since": stats.month_starts(stats.local_day(now), 12)[0],
            "municipalities": [{"municipality_code": t.group, "municipality_name": _name(t.group),
                                **_times(t)} for t in times]}


def _times_by_municipality_chart(data: dict[str, Any], chart_id: str) -> Markup:
    rows = data["municipalities"][:CHART_ROWS]
    return hbar_chart(
        gettext("Median tid til afgørelse pr. kommune"),
        [r["municipality_name"] or r["municipality_code"] for r in rows],
        [Series(gettext("Median"), [r["median_days"] for r in rows], _ON_TIME)],
        x_label=gettext("Arbejdsdage"), chart_id=chart_id)


# --- mail in and out --------------------------------------------------------------------


def _mail_intake(session: DbSession, now: datetime) -> dict[str, Any]:
    health = stats.mail_intake_health(session)
    return {"applications": health.applications, "triage_open": health.triage_open,
            "triage_resolved": health.triage_resolved, "unparseable": health.unparseable,
            "open_by_reason": health.open_by_reason}


def _mail_rows(data: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = [(key, data[key]) for key in
            ("applications", "triage_open", "triage_resolved", "unparseable")]
    return rows + [(f"{REASON_PREFIX}{reason}", count)
                   for reason, count in data["open_by_reason"].items()]


def _mail_chart(data: dict[str, Any], chart_id: str) -> Markup:
    labels = [gettext("Blev ansøgninger"), gettext("Venter på visitering"),
              gettext("Visitering afsluttet"), gettext("Kunne ikke læses")]
    values = [data["applications"], data["triage_open"], data["triage_resolved"],
              data["unparseable"]]
    return bar_chart(gettext("Mailindbakken"), labels,
                     [Series(gettext("Mails"), values)], y_label=gettext("Mails"),
                     chart_id=chart_id)


def _outbox(session: DbSession, now: datetime) -> dict[str, Any]:
    health = outbox_stats.outbox_health(session, now)
    return {**health.by_status, "waiting": health.waiting,
            "oldest_waiting_at": health.oldest_waiting_at,
            "oldest_waiting_seconds": health.oldest_waiting_seconds}


_OUTBOX_KEYS = ("queued", "sending", "failed", "sent", "waiting", "oldest_waiting_at",
                "oldest_waiting_seconds")


def _age(seconds: int | None) -> str:
    if seconds is None:
        return gettext("ingen venter")
    if seconds < 3600:
        return gettext("%(minutes)s min.", minutes=seconds // 60)
    if seconds < 2 * 86400:
        return gettext("%(hours)s t.", hours=seconds // 3600)
    return gettext("%(days)s dage", days=seconds // 86400)


def _outbox_chart(data: dict[str, Any], chart_id: str) -> Markup:
    return bar_chart(
        gettext("Udbakken - ældste ventende: %(age)s", age=_age(data["oldest_waiting_seconds"])),
        [gettext("I kø"), gettext("Sendes"), gettext("Fejlet")],
        [Series(gettext("Venter"), [data["queued"], data["sending"], None], _ON_TIME),
         Series(gettext("Fejlet"), [None, None, data["failed"]], _LATE)],
        y_label=gettext("Mails"), stacked=True, chart_id=chart_id)


# --- the register -----------------------------------------------------------------------


def _register_size(session: DbSession, now: datetime) -> dict[str, Any]:
    days = register_stats.month_ends(stats.local_day(now))
    return {"points": [{"day": p.day, **p.counts, "total": p.total}
                       for p in register_stats.register_size(session, days)]}


def _register_size_chart(data: dict[str, Any], chart_id: str) -> Markup:
    points = data["points"]
    return line_chart(
        gettext("Registrets størrelse efter ejerforhold"),
        [_short_day(p["day"]) for p in points],
        [Series(str(OWNERSHIP_NAMES[name]), [p[name] for p in points])
         for name in register_stats.OWNERSHIPS],
        y_label=gettext("Enheder (SI og OE)"), x_label=gettext("Månedens udgang"),
        chart_id=chart_id)


_TIMES_COLUMNS = (("decisions", lazy_gettext("Afgørelser")),
                  ("median_days", lazy_gettext("Median (arbejdsdage)")),
                  ("p90_days", lazy_gettext("90-percentil (arbejdsdage)")))
_MUNICIPALITY = (("municipality_code", lazy_gettext("Kommunekode")),
                 ("municipality_name", lazy_gettext("Kommune")))

FIGURES: dict[str, Figure] = {f.name: f for f in (
    Figure("waiting-by-age", lazy_gettext("Ventende efter alder"), WaitingByAgeSchema,
           _waiting_by_age, _list_table("buckets", (
               ("label", lazy_gettext("Arbejdsdage")), ("min_days", lazy_gettext("Fra")),
               ("max_days", lazy_gettext("Til")), ("count", lazy_gettext("Ansøgninger")),
               ("over_promise", lazy_gettext("Over svartiden")))), _waiting_by_age_chart),
    Figure("decisions-per-week", lazy_gettext("Afgørelser pr. uge"), DecisionsPerWeekSchema,
           _decisions_per_week, _list_table("weeks", (
               ("week", lazy_gettext("Uge")), ("week_start", lazy_gettext("Mandag")),
               ("approved", lazy_gettext("Godkendt")), ("rejected", lazy_gettext("Afvist")))),
           _decisions_chart),
    Figure("decision-times-by-month", lazy_gettext("Tid til afgørelse pr. måned"),
           DecisionTimesByMonthSchema, _times_by_month,
           _list_table("months", (("month", lazy_gettext("Måned")), *_TIMES_COLUMNS)),
           _times_by_month_chart),
    Figure("decision-times-by-municipality", lazy_gettext("Tid til afgørelse pr. kommune"),
           DecisionTimesByMunicipalitySchema, _times_by_municipality,
           _list_table("municipalities", (*_MUNICIPALITY, *_TIMES_COLUMNS)),
           _times_by_municipality_chart),
    Figure("waiting-by-municipality", lazy_gettext("Ventende pr. kommune"),
           WaitingByMunicipalitySchema, _waiting_by_municipality,
           _list_table("municipalities", (*_MUNICIPALITY,
                                          ("waiting", lazy_gettext("Ventende")),
                                          ("over_promise", lazy_gettext("Over svartiden")))),
           _waiting_by_municipality_chart),
    Figure("mail-intake", lazy_gettext("Mailindbakken"), MailIntakeSchema, _mail_intake,
           _measures_table(_mail_rows), _mail_chart),
    Figure("outbox", lazy_gettext("Udbakken"), OutboxSchema, _outbox,
           _measures_table(lambda data: [(key, data[key]) for key in _OUTBOX_KEYS]),
           _outbox_chart),
    Figure("register-size", lazy_gettext("Registrets størrelse"), RegisterSizeSchema,
           _register_size, _list_table("points", (
               ("day", lazy_gettext("Dag")),
               *OWNERSHIP_NAMES.items(),
               ("total", lazy_gettext("I alt")))), _register_size_chart),
)}


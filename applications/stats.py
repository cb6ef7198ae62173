"""The staff's work in figures: what waits, what was decided, how long it took, the intake.

Every figure is computed from the applications' own timestamps, in Danish days
(Europe/Copenhagen): an application submitted at 23:30 UTC on a Sunday was sent on
Monday. Ages and durations count **working days**, Monday to Friday (public holidays
are not known to the register and count as working days), because the promise SDS
gives - an answer within about ten working days (:data:`PROMISE_WORKING_DAYS`) - is in
working days. A duration runs from the *last* submission (``submitted_at``: the one the
decision answered; a round of "more information, please" is the municipality's time,
not SDS's) to the decision; an application waits while it is ``submitted``
(``info_requested`` waits on the municipality). Decisions are approvals and rejections;
a withdrawal is the municipality's.

A median is the middle value (the mean of the two middle ones for an even count); a
90th percentile is the nearest rank (the smallest value with at least 90 % of the values
at or below it), so a small table can be checked by hand. The figures need a few
thousand rows at most (the applications of a year), so they are read once and counted
here, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from applications.mail_models import IncomingMail
from applications.models import Application
from hierarchy.stats import DANISH_TIME
from sorregistry.database import DbSession

__all__ = [
    "AGE_BUCKETS",
    "PROMISE_WORKING_DAYS",
    "AgeBucket",
    "DecisionTimes",
    "MailIntakeHealth",
    "MunicipalityWaiting",
    "WeekDecisions",
    "decision_times_by_month",
    "decision_times_by_municipality",
    "decisions_per_week",
    "local_day",
    "mail_intake_health",
    "month_starts",
    "percentile",
    "waiting_by_age",
    "waiting_by_municipality",
    "working_days_between",
]

PROMISE_WORKING_DAYS = 10
# Ages in working days: (lowest, highest or None); two within the promise, three past it.
AGE_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 5), (6, 10), (11, 15), (16, 20), (21, None),
)
DECISIONS = ("approved", "rejected")
UNPARSEABLE_REASONS = ("unparseable", "unreadable")


@dataclass(frozen=True, slots=True)
class AgeBucket:
    low: int
    high: int | None
    count: int

    @property
    def over_promise(self) -> bool:
        return self.low > PROMISE_WORKING_DAYS


@dataclass(frozen=True, slots=True)
class MunicipalityWaiting:
    municipality_code: str
    waiting: int
    over_promise: int


@dataclass(frozen=True, slots=True)
class WeekDecisions:
    week_start: date
    approved: int
    rejected: int

    @property
    def week(self) -> str:
        year, number, _ = self.week_start.isocalendar()
        return f"{year}-W{number:02d}"


@dataclass(frozen=True, slots=True)
class DecisionTimes:
    """Working days from submission to decision for one group (a month, a municipality)."""

    group: str
    decisions: int
    median_days: float | None
    p90_days: int | None


@dataclass(frozen=True, slots=True)
class MailIntakeHealth:
    applications: int
    triage_open: int
    triage_resolved: int
    unparseable: int
    open_by_reason: dict[str, int]

    @property
    def total(self) -> int:
        return self.applications + self.triage_open + self.triage_resolved


# --- days -------------------------------------------------------------------------------


def local_day(moment: datetime) -> date:
    """The Danish calendar day of *moment*."""
    return moment.astimezone(DANISH_TIME).date()


def _start_of(day: date) -> datetime:
    """The moment *day* begins in Denmark, in UTC (for comparing with stored times)."""
    return datetime.combine(day, time(), tzinfo=DANISH_TIME).astimezone(UTC)


def working_days_between(start: date, end: date) -> int:
    """The Mondays to Fridays after *start* up to and including *end* (0 if end <= start).

    Sent on a Friday, answered the next Monday: 1 working day.
    """
    if end <= start:
        return 0
    weeks, extra = divmod((end - start).days, 7)
    days = weeks * 5
    weekday = start.weekday()
    for step in range(1, extra + 1):
        if (weekday + step) % 7 < 5:
            days += 1
    return days


def percentile(values: Sequence[int], share: float) -> int | None:
    """The nearest-rank percentile of *values* (sorted or not); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _times(group: str, days: Sequence[int]) -> DecisionTimes:
    median = float(statistics.median(days)) if days else None
    return DecisionTimes(group, len(days), median, percentile(days, 0.9))


# --- waiting ----------------------------------------------------------------------------


def _waiting(session: DbSession) -> list[tuple[str, datetime]]:
    query = select(Application.municipality_code, Application.submitted_at).where(
        Application.status == "submitted", Application.submitted_at.is_not(None))
    return [(code, at) for code, at in session.execute(query) if at is not None]


def _bucket_of(age: int) -> int:
    return next(i for i, (low, high) in enumerate(AGE_BUCKETS)
                if age >= low and (high is None or age <= high))


def waiting_by_age(session: DbSession, now: datetime) -> list[AgeBucket]:
    """Submitted applications by their age in working days, in :data:`AGE_BUCKETS`."""
    today = local_day(now)
    counts = Counter(_bucket_of(working_days_between(local_day(at), today))
                     for _, at in _waiting(session))
    return [AgeBucket(low, high, counts[i]) for i, (low, high) in enumerate(AGE_BUCKETS)]


def waiting_by_municipality(session: DbSession, now: datetime) -> list[MunicipalityWaiting]:
    """Per municipality with submitted applications: how many wait, how many past the
    promise; most waiting first (then by code)."""
    today = local_day(now)
    waiting: Counter[str] = Counter()
    late: Counter[str] = Counter()
    for code, at in _waiting(session):
        waiting[code] += 1
        if working_days_between(local_day(at), today) > PROMISE_WORKING_DAYS:
            late[code] += 1
    order = sorted(waiting, key=lambda code: (-waiting[code], code))
    return [MunicipalityWaiting(code, waiting[code], late[code]) for code in order]


# --- decisions --------------------------------------------------------------------------


def _decided_since(session: DbSession, since: date) -> list[tuple[str, str, datetime, datetime]]:
    """(status, municipality, submitted_at, decided_at) of the decisions from *since* on."""
    query = select(
        Application.status, Application.municipality_code,
        Application.submitted_at, Application.decided_at,
    ).where(Application.status.in_(DECISIONS), Application.decided_at >= _start_of(since))
    return [(status, code, submitted, decided)
            for status, code, submitted, decided in session.execute(query)
            if submitted is not None and decided is not None]


def decisions_per_week(session: DbSession, now: datetime, weeks: int = 12) -> list[WeekDecisions]:
    """Approvals and rejections per week (Monday to Sunday), the last *weeks* weeks with
    this one last."""
    today = local_day(now)
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    counts: Counter[tuple[int, str]] = Counter()
    for status, _, _, decided in _decided_since(session, first):
        index = (local_day(decided) - first).days // 7
        if 0 <= index < weeks:
            counts[index, status] += 1
    return [WeekDecisions(first + timedelta(weeks=i), counts[i, "approved"],
                          counts[i, "rejected"]) for i in range(weeks)]


def month_starts(today: date, months: int) -> list[date]:
    """The first days of the last *months* months, this one last."""
    firsts = [today.replace(day=1)]
    while len(firsts) < months:
        firsts.append((firsts[-1] - timedelta(days=1)).replace(day=1))
    return firsts[::-1]


def decision_times_by_month(
    session: DbSession, now: datetime, months: int = 12
) -> list[DecisionTimes]:
    """Working days from submission to decision, per month of the decision (``YYYY-MM``),
    the last *months* months with this one last."""
    firsts = month_starts(local_day(now), months)
    days: dict[str, list[int]] = {f"{m:%Y-%m}": [] for m in firsts}
    for _, _, submitted, decided in _decided_since(session, firsts[0]):
        month = f"{local_day(decided):%Y-%m}"
        if month in days:
            days[month].append(working_days_between(local_day(submitted), local_day(decided)))
    return [_times(month, values) for month, values in days.items()]


def decision_times_by_municipality(
    session: DbSession, now: datetime, months: int = 12
) -> list[DecisionTimes]:
    """Working days from submission to decision per municipality (its code), over the
    decisions of the last *months* months; most decisions first (then by code)."""
    since = month_starts(local_day(now), months)[0]
    days: dict[str, list[int]] = {}
    for _, code, submitted, decided in _decided_since(session, since):
        days.setdefault(code, []).append(
            working_days_between(local_day(submitted), local_day(decided)))
    order = sorted(days, key=lambda code: (-len(days[code]), code))
    return [_times(code, days[code]) for code in order]


# --- the mail intake --------------------------------------------------------------------


def mail_intake_health(session: DbSession) -> MailIntakeHealth:
    """The intake ledger by state: made into applications, open and resolved triage; the
    open items by reason; the mails that could not be read (``unparseable``,
    ``unreadable``), open or not."""
    states: Counter[tuple[str, str | None]] = Counter()
    query = select(IncomingMail.outcome, IncomingMail.triage_status, func.count()).group_by(
        IncomingMail.outcome, IncomingMail.triage_status)
    for outcome, status, count in session.execute(query):
        states[outcome, status if outcome == "triage" else None] += count
    reasons = select(IncomingMail.triage_reason, IncomingMail.triage_status, func.count()).where(
        IncomingMail.outcome == "triage").group_by(
        IncomingMail.triage_reason, IncomingMail.triage_status)
    open_by_reason: Counter[str] = Counter()
    unparseable = 0
    for reason, status, count in session.execute(reasons):
        if status == "open":
            open_by_reason[reason or "unknown"] += count
        if reason in UNPARSEABLE_REASONS:
            unparseable += count
    return MailIntakeHealth(
        applications=states["application", None], triage_open=states["triage", "open"],
        triage_resolved=states["triage", "resolved"], unparseable=unparseable,
        open_by_reason=dict(sorted(open_by_reason.items())),
    )

"""The staff's figures (applications.stats, notifications.stats, hierarchy.stats) on a small
register whose every number is counted by hand below, on both back ends.

The moment is Wednesday 17 June 2026, 12:00 in Denmark (10:00 UTC); Danish days, working
days Monday to Friday, the promise 10 working days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from applications import stats
from applications.mail_models import IncomingMail
from applications.models import Application
from hierarchy import identifiers as ids
from hierarchy import service as register
from hierarchy import stats as register_stats
from hierarchy.models import OrganisationVersion
from notifications import stats as outbox_stats
from notifications.models import OutboxMessage
from tests.applications.helpers import (
    AARHUS,
    AARHUS_IE,
    EXISTING_SI,
    ODENSE,
    PLEJEHJEM,
    PRIVATE_IE,
    PRIVATE_SI,
    build_register,
)

NOW = datetime(2026, 6, 17, 10, 0, tzinfo=UTC)


def _at(text: str) -> datetime:
    """A UTC moment written ``2026-06-16 09:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _application(session, status: str, municipality: str, submitted: str | None,
                 decided: str | None = None) -> Application:
    application = Application(
        kind="new", status=status, version=1, source="api", municipality_code=municipality,
        institution_name=f"{status} {submitted}", created_by="test",
        submitted_at=_at(submitted) if submitted else None,
        decided_at=_at(decided) if decided else None)
    session.add(application)
    return application


@pytest.fixture
def applications(session) -> None:
    """Five waiting, five decided in the windows, one long ago, and three that neither wait
    nor count as decisions. The working days are counted in the comments."""
    waiting = [
        ("2026-06-16 09:00", AARHUS),   # Tue → Wed: 1
        ("2026-06-05 09:00", AARHUS),   # Fri → Wed 12 days later: 8
        ("2026-06-02 09:00", ODENSE),   # Tue: 3 + 5 + 3 = 11, past the promise
        ("2026-05-01 09:00", ODENSE),   # Fri: 6 weeks (30) + Mon-Wed (3) = 33
        ("2026-06-14 22:30", AARHUS),   # Sunday in UTC, Monday 00:30 in Denmark: 2
    ]
    for submitted, municipality in waiting:
        _application(session, "submitted", municipality, submitted)
    _application(session, "info_requested", AARHUS, "2026-04-01 09:00")  # waits on Aarhus
    _application(session, "draft", AARHUS, None)
    decided = [
        ("approved", AARHUS, "2026-06-01 08:00", "2026-06-12 12:00"),  # 4 + 5 = 9, W24
        ("rejected", ODENSE, "2026-06-03 08:00", "2026-06-17 07:00"),  # 2 + 5 + 3 = 10, W25
        ("approved", AARHUS, "2026-05-05 08:00", "2026-05-12 12:00"),  # 5, W20
        ("approved", AARHUS, "2026-05-04 08:00", "2026-05-25 12:00"),  # 15, W22
        # Decided on Sunday 29 March in UTC, Monday 30 March 00:30 in Denmark: the first
        # of the twelve weeks; from Friday: 1.
        ("approved", AARHUS, "2026-03-27 10:00", "2026-03-29 22:30"),
        ("approved", AARHUS, "2024-12-02 10:00", "2025-01-10 10:00"),  # before both windows
        ("withdrawn", AARHUS, "2026-06-01 10:00", "2026-06-10 10:00"),  # not a decision
    ]
    for status, municipality, submitted, decided_at in decided:
        _application(session, status, municipality, submitted, decided_at)
    session.flush()


@pytest.mark.parametrize(("start", "end", "days"), [
    (date(2026, 6, 12), date(2026, 6, 15), 1),  # Friday → Monday
    (date(2026, 6, 13), date(2026, 6, 14), 0),  # Saturday → Sunday
    (date(2026, 6, 15), date(2026, 6, 15), 0),
    (date(2026, 6, 17), date(2026, 6, 15), 0),  # backwards
    (date(2026, 6, 1), date(2026, 6, 29), 20),  # four weeks
    (date(2026, 6, 6), date(2026, 6, 12), 5),   # Saturday → Friday
])
def test_working_days(start, end, days):
    assert stats.working_days_between(start, end) == days


def test_percentiles_by_nearest_rank():
    assert stats.percentile([], 0.9) is None
    assert stats.percentile([7], 0.9) == 7
    assert stats.percentile([15, 1, 9, 5], 0.9) == 15
    assert stats.percentile(list(range(1, 11)), 0.9) == 9
    assert stats.percentile(list(range(1, 12)), 0.9) == 10


def test_waiting_by_age_against_the_promise(session, applications):
    buckets = stats.waiting_by_age(session, NOW)
    assert [(b.low, b.high, b.count, b.over_promise) for b in buckets] == [
        (0, 5, 2, False), (6, 10, 1, False), (11, 15, 1, True), (16, 20, 0, True),
        (21, None, 1, True),
    ]


def test_waiting_by_municipality(session, applications):
    assert [(w.municipality_code, w.waiting, w.over_promise)
            for w in stats.waiting_by_municipality(session, NOW)] == [
        (AARHUS, 3, 0), (ODENSE, 2, 2)]


def test_decisions_per_week_in_danish_days(session, applications):
    weeks = stats.decisions_per_week(session, NOW)
    assert len(weeks) == 12
    assert weeks[0].week_start == date(2026, 3, 30) and weeks[-1].week_start == date(2026, 6, 15)
    assert weeks[-1].week == "2026-W25"
    counted = {w.week: (w.approved, w.rejected) for w in weeks if w.approved or w.rejected}
    assert counted == {"2026-W14": (1, 0), "2026-W20": (1, 0), "2026-W22": (1, 0),
                       "2026-W24": (1, 0), "2026-W25": (0, 1)}


def test_decision_times_by_month(session, applications):
    months = stats.decision_times_by_month(session, NOW)
    assert [m.group for m in months][0] == "2025-07" and months[-1].group == "2026-06"
    found = {m.group: (m.decisions, m.median_days, m.p90_days) for m in months if m.decisions}
    assert found == {"2026-03": (1, 1.0, 1), "2026-05": (2, 10.0, 15),
                     "2026-06": (2, 9.5, 10)}
    assert all(m.median_days is None and m.p90_days is None for m in months if not m.decisions)


def test_decision_times_by_municipality(session, applications):
    # Aarhus: 1, 5, 9, 15 → median 7, p90 the 4th of 4; Odense: 10.
    assert [(t.group, t.decisions, t.median_days, t.p90_days)
            for t in stats.decision_times_by_municipality(session, NOW)] == [
        (AARHUS, 4, 7.0, 15), (ODENSE, 1, 10.0, 10)]


def test_no_applications_no_figures(session):
    assert sum(b.count for b in stats.waiting_by_age(session, NOW)) == 0
    assert stats.waiting_by_municipality(session, NOW) == []
    assert all(m.decisions == 0 for m in stats.decision_times_by_month(session, NOW))


def _mail(session, number: int, outcome: str, reason: str | None = None,
          status: str | None = None) -> None:
    session.add(IncomingMail(
        message_id=f"<{number}@stats.test>", mailbox="INBOX", uidvalidity=1, uid=number,
        sender="sor@aarhus.dk", subject="Ansøgning", received_at=NOW, size=10, raw=b"x",
        outcome=outcome, triage_reason=reason, triage_status=status))


def test_mail_intake_health(session):
    _mail(session, 1, "application")
    _mail(session, 2, "application")
    _mail(session, 3, "triage", "unknown_sender", "open")
    _mail(session, 4, "triage", "unknown_sender", "open")
    _mail(session, 5, "triage", "unparseable", "open")
    _mail(session, 6, "triage", "unreadable", "resolved")
    _mail(session, 7, "triage", "oversized", "resolved")
    session.flush()
    health = stats.mail_intake_health(session)
    assert (health.applications, health.triage_open, health.triage_resolved,
            health.unparseable) == (2, 3, 2, 2)
    assert health.open_by_reason == {"unknown_sender": 2, "unparseable": 1}


def _outgoing(session, number: int, status: str, age: timedelta) -> None:
    session.add(OutboxMessage(
        kind="test", recipients=["a@example.org"], subject="s", body_text="t", body_html="h",
        message_id=f"<{number}@outbox.test>", status=status, created_at=NOW - age,
        next_attempt_at=NOW - age))


def test_outbox_health(session):
    assert outbox_stats.outbox_health(session, NOW).oldest_waiting_seconds is None
    _outgoing(session, 1, "queued", timedelta(hours=2))
    _outgoing(session, 2, "sending", timedelta(minutes=30))
    _outgoing(session, 3, "failed", timedelta(days=3))  # failed waits for no one
    _outgoing(session, 4, "sent", timedelta(days=5))
    _outgoing(session, 5, "sent", timedelta(days=1))
    session.flush()
    health = outbox_stats.outbox_health(session, NOW)
    assert health.by_status == {"queued": 1, "sending": 1, "sent": 2, "failed": 1}
    assert (health.waiting, health.failed, health.oldest_waiting_seconds) == (2, 1, 7200)
    assert health.oldest_waiting_at == NOW - timedelta(hours=2)


def _recorded(session, sor_code: str, moment: str) -> None:
    """Say the organisation's first version was recorded at *moment* (UTC)."""
    session.execute(update(OrganisationVersion).where(
        OrganisationVersion.sor_code == sor_code, OrganisationVersion.version == 1,
    ).values(recorded_at=_at(moment)))


def test_register_size_by_ownership_at_month_ends(session):
    build_register(session)
    later, closed = ids.make_sor_code(115), ids.make_sor_code(116)
    register.create_organisation(session, later, {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Senere",
        "entity_type": PLEJEHJEM, "valid_from": date(2026, 6, 5)},
        source="staff", actor="test")
    register.create_organisation(session, closed, {
        "level": "SI", "parent_sor_code": PRIVATE_IE, "name": "Fysioterapi Lukket",
        "valid_from": date(2010, 1, 1), "valid_to": date(2026, 5, 1)},
        source="staff", actor="test")
    session.flush()
    for sor_code in (AARHUS_IE, PRIVATE_IE, EXISTING_SI, later, closed):
        _recorded(session, sor_code, "2026-03-10 12:00")
    # 22:30 UTC on 31 May is 00:30 on 1 June in Denmark: not yet there at May's end.
    _recorded(session, PRIVATE_SI, "2026-05-31 22:30")
    session.flush()

    days = register_stats.month_ends(date(2026, 6, 17))
    assert days[0] == date(2025, 7, 31) and days[-2:] == [date(2026, 5, 31), date(2026, 6, 17)]
    points = {p.day: (p.counts["kommunal"], p.counts["privat"], p.counts["regional"],
                      p.counts["statslig"]) for p in
              register_stats.size_by_ownership(session, days)}
    assert all(points[day] == (0, 0, 0, 0) for day in days[:8])  # before 10 March
    assert points[date(2026, 3, 31)] == (1, 1, 0, 0)  # Søndergården; Lukket
    assert points[date(2026, 4, 30)] == (1, 1, 0, 0)
    assert points[date(2026, 5, 31)] == (1, 0, 0, 0)  # Lukket closed 1 May; Åbyhøj not yet
    assert points[date(2026, 6, 17)] == (2, 1, 0, 0)  # Senere valid from 5 June; Åbyhøj


def test_month_ends_cross_the_year():
    assert register_stats.month_ends(date(2026, 1, 5), months=3) == [
        date(2025, 11, 30), date(2025, 12, 31), date(2026, 1, 5)]


def test_register_size_is_filed_under_the_register_version(app, session):
    """Asked again at the same register version, the answer is the one filed; a committed
    change of the register (a new version) is counted at once."""
    build_register(session)
    session.commit()
    # The Danish day, as the overview asks (stats_figures): the machine's date.today() is
    # the day before from 23:00 or 22:00 UTC on, when the units just recorded count only
    # from the Danish day they were recorded on (the test failed in that hour).
    today = stats.local_day(datetime.now(UTC))
    days = register_stats.month_ends(today, months=2)
    first = register_stats.register_size(session, days)
    assert first[-1].counts["kommunal"] == 1 and first[-1].counts["privat"] == 1
    session.commit()  # a new transaction reads the version again: unchanged, the same answer
    assert register_stats.register_size(session, days) is register_stats.register_size(
        session, days)
    register.create_organisation(session, ids.make_sor_code(117), {
        "level": "SI", "parent_sor_code": AARHUS_IE, "name": "Plejecenter Nyt",
        "entity_type": PLEJEHJEM, "valid_from": date(2010, 1, 1)},
        source="staff", actor="test")
    session.commit()
    assert register_stats.register_size(session, days)[-1].counts["kommunal"] == 2


def test_working_days_agree_with_counting_them_one_by_one():
    start = date(2026, 1, 1)
    for offset in range(14):
        first = start + timedelta(days=offset)
        for length in range(40):
            last = first + timedelta(days=length)
            by_hand = sum(1 for n in range(1, length + 1)
                          if (first + timedelta(days=n)).weekday() < 5)
            assert stats.working_days_between(first, last) == by_hand, (first, last)

"""The tick: an organisation whose date takes effect appears in the feed again, once, that
day. The tests move the clock (the day ticked), not the wall."""

from __future__ import annotations

import threading
from datetime import date, timedelta

from sqlalchemy import func, select

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.feed.tick import tick
from hierarchy.models import FeedEntry, FeedState, RegisterVersion
from sorregistry import create_app
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.support.feed import feed

TODAY = date.today()
TOMORROW = TODAY + timedelta(days=1)


def _last(session) -> int:
    return session.execute(select(RegisterVersion.last_position)).scalar_one()


def _owner_with_unit(session, **unit_dates) -> tuple[str, str]:
    owner, unit = ids.make_sor_code(92_000_001), ids.make_sor_code(92_000_002)
    service.create_organisation(session, owner, {"level": "IE", "name": "Ejer"},
                                source="staff", actor="test")
    service.create_organisation(session, unit, {"level": "SI", "parent_sor_code": owner,
                                                "name": "Enhed", **unit_dates},
                                source="staff", actor="test")
    session.commit()
    return owner, unit


def test_a_unit_closing_tomorrow_is_in_the_feed_again_once_tomorrow(session):
    _, unit = _owner_with_unit(session, valid_from=TODAY - timedelta(days=30),
                               valid_to=TOMORROW)
    mark = _last(session)
    assert tick(session, TODAY).entries == 0  # nothing takes effect today
    session.commit()
    assert feed(session, mark) == []

    result = tick(session, TOMORROW)
    session.commit()
    assert (result.since, result.on, result.entries) == (TODAY, TOMORROW, 1)
    entries = feed(session, mark)
    assert [(e["sor_code"], e["change"], e["changed_fields"], e["took_effect_on"], e["source"],
             e["reference"]) for e in entries] == [
        (unit, "took_effect", ["valid_to"], TOMORROW.isoformat(), "tick",
         f"tick:{TOMORROW.isoformat()}")]
    assert entries[0]["organisation"]["valid_to"] == TOMORROW.isoformat()

    # Ticking again - the same day, or later days - writes nothing more for it.
    for day in (TOMORROW, TOMORROW, TOMORROW + timedelta(days=1), TODAY):
        again = tick(session, day)
        session.commit()
        assert again.entries == 0
    assert len(feed(session, mark)) == 1
    state = session.execute(select(FeedState)).scalar_one()
    assert state.ticked_through == TOMORROW + timedelta(days=1)


def test_a_start_in_the_future_and_days_missed(session):
    starts, ends = TODAY + timedelta(days=3), TODAY + timedelta(days=5)
    _, unit = _owner_with_unit(session, valid_from=starts, valid_to=ends)
    mark = _last(session)
    tick(session, TODAY + timedelta(days=3))
    session.commit()
    tick(session, TODAY + timedelta(days=10))  # the days between were not ticked
    session.commit()
    assert [(e["sor_code"], e["changed_fields"], e["took_effect_on"])
            for e in feed(session, mark)] == [
        (unit, ["valid_from"], starts.isoformat()), (unit, ["valid_to"], ends.isoformat())]


def test_both_dates_in_one_tick_make_one_entry(session):
    starts, ends = TODAY + timedelta(days=2), TODAY + timedelta(days=4)
    _, unit = _owner_with_unit(session, valid_from=starts, valid_to=ends)
    mark = _last(session)
    tick(session, TODAY + timedelta(days=7))
    session.commit()
    assert [(e["changed_fields"], e["took_effect_on"]) for e in feed(session, mark)] == [
        (["valid_from", "valid_to"], ends.isoformat())]


def test_the_command_ticks_through_the_day_given(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    runner = app.test_cli_runner()
    with app.app_context():
        _owner_with_unit(db.session, valid_to=TOMORROW)
        db.session.remove()
    first = runner.invoke(args=["tick", "--on", TOMORROW.isoformat()])
    assert first.exit_code == 0, first.output
    assert "1 organisations took effect" in first.output
    again = runner.invoke(args=["tick", "--on", TOMORROW.isoformat()])
    assert again.exit_code == 0 and "already" in again.output
    today = runner.invoke(args=["tick"])
    assert today.exit_code == 0 and "already" in today.output
    bad = runner.invoke(args=["tick", "--on", "tomorrow"])
    assert bad.exit_code == 2 and "Invalid value for '--on'" in bad.output
    with app.app_context():
        count = db.session.execute(
            select(func.count()).select_from(FeedEntry).where(FeedEntry.change == "took_effect")
        ).scalar_one()
        db.session.remove()
        db.engine.dispose()
    assert count == 1


def test_ticks_run_at_once_from_two_hosts_emit_each_day_once(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        for n in range(5):
            code = ids.make_sor_code(92_000_100 + n)
            service.create_organisation(db.session, code, {
                "level": "IE", "name": f"Ejer {n}", "valid_to": TODAY + timedelta(days=n + 1)},
                source="staff", actor="test")
        db.session.commit()
        db.session.remove()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(day: date) -> None:
        try:
            with app.app_context():
                start.wait()
                with write_step(db.session()) as session:
                    tick(session, day)
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    days = [TODAY + timedelta(days=3), TODAY + timedelta(days=3), TODAY + timedelta(days=5),
            TODAY + timedelta(days=1)]
    threads = [threading.Thread(target=run, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with app.app_context():
        took = db.session.execute(
            select(FeedEntry.sor_code, FeedEntry.took_effect_on)
            .where(FeedEntry.change == "took_effect")
        ).all()
        db.session.remove()
        db.engine.dispose()
    # Every date through the latest day ticked, each once, whatever order the ticks ran in.
    assert sorted(day for _, day in took) == [TODAY + timedelta(days=n + 1) for n in range(5)]

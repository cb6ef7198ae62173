"""For the staff overview's tests: a year of seeded staff activity on a register, and the
rows a figure's CSV and table must hold according to the API's answer."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select, update

from applications.mail_models import IncomingMail
from applications.models import Application
from applications.stats_figures import cell
from hierarchy.models import OrganisationVersion
from notifications.models import OutboxMessage

# Where each list-shaped figure keeps its rows in the API's answer.
ROWS = {
    "waiting-by-age": "buckets", "decisions-per-week": "weeks",
    "decision-times-by-month": "months", "decision-times-by-municipality": "municipalities",
    "waiting-by-municipality": "municipalities", "register-size": "points",
}
MEASURES = {"mail-intake", "outbox"}
MUNICIPALITIES = ("0751", "0461", "0101", "0147", "0561", "0851", "0621")


def add_activity(session, now: datetime, *, seed: int = 15, applications: int = 120) -> None:
    """Applications over the last five months in every state, decided after 1 to 30 days;
    the intake ledger and the outbox; the register's first versions spread over 14 months
    (oldest codes first), so that it grows month by month."""
    rng = random.Random(seed)
    for number in range(applications):
        submitted = now - timedelta(days=rng.uniform(0, 150))
        took = timedelta(days=rng.uniform(1, 30))
        status = "submitted"
        if submitted + took < now:
            status = rng.choices(["approved", "rejected", "withdrawn", "info_requested"],
                                 weights=[70, 15, 5, 10])[0]
        session.add(Application(
            kind="new", status=status, version=1, source="web",
            municipality_code=rng.choice(MUNICIPALITIES),
            institution_name=f"Plejecenter nr. {number}", created_by="demo",
            submitted_at=submitted,
            decided_at=submitted + took if status in ("approved", "rejected", "withdrawn")
            else None))
    reasons = ["unknown_sender", "unreadable", "unparseable", "oversized", "unauthenticated"]
    for number in range(40):
        outcome = "application" if number % 3 else "triage"
        session.add(IncomingMail(
            message_id=f"<{number}@demo.test>", mailbox="INBOX", uidvalidity=1, uid=number + 1,
            sender="sor@aarhus.dk", received_at=now - timedelta(hours=number * 7), size=1,
            raw=b"x", outcome=outcome,
            triage_reason=rng.choice(reasons) if outcome == "triage" else None,
            triage_status=rng.choice(["open", "resolved"]) if outcome == "triage" else None))
    for number in range(30):
        status = "sent" if number > 6 else ("queued", "failed", "sending")[number % 3]
        session.add(OutboxMessage(
            kind="demo", recipients=["sor@aarhus.dk"], subject="s", body_text="t",
            body_html="h", message_id=f"<{number}@demo-out.test>", status=status,
            created_at=now - timedelta(hours=number * 5 + 1)))
    codes = session.scalars(select(OrganisationVersion.sor_code).where(
        OrganisationVersion.version == 1).order_by(OrganisationVersion.sor_code)).all()
    for rank, sor_code in enumerate(codes):
        session.execute(update(OrganisationVersion).where(
            OrganisationVersion.sor_code == sor_code, OrganisationVersion.version == 1,
        ).values(recorded_at=now - timedelta(days=420 - 420 * rank // len(codes))))
    session.flush()


def flat(data: dict, prefix: str = "") -> dict[str, str]:
    """An object's values as CSV cells, nested keys joined with a dot."""
    cells: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            cells.update(flat(value, f"{prefix}{key}."))
        else:
            cells[f"{prefix}{key}"] = cell(value)
    return cells


def comparable(name: str, rows: list[list[str]]) -> object:
    """Rows of a list in their order; an object's measures by name (JSON sorts its keys)."""
    if name in MEASURES:
        assert len({row[0] for row in rows}) == len(rows)
        return {row[0]: row[1] for row in rows}
    return rows


def expected(name: str, data: dict, header: list[str]) -> object:
    """The CSV's (and the table's) rows as the API's answer says they must be."""
    if name in MEASURES:
        assert header == ["measure", "value"]
        return flat(data)
    items = data[ROWS[name]]
    assert all(set(item) == set(header) for item in items), name  # every field, no other
    return [[cell(item[key]) for key in header] for item in items]

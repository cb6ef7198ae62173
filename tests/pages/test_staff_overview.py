"""The staff's overview on /staff/: every figure as an SVG chart, its "Vis tal" table and
its CSV carry exactly the numbers GET /api/v1/stats/<figure> gives; only SDS sees them."""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import timedelta

import pytest

from applications import stats_routes, stats_views
from applications.mail_models import IncomingMail
from applications.models import Application
from applications.stats_figures import FIGURES
from notifications.models import OutboxMessage
from sorregistry.models import utcnow
from tests.applications.helpers import AARHUS, ODENSE, bearer
from tests.pages.helpers import login
from tests.pages.overview_helpers import MEASURES, ROWS, comparable, expected


def test_every_figure_is_checked_here():
    assert set(FIGURES) == set(ROWS) | MEASURES


@pytest.fixture
def varied(session, people) -> None:
    """Applications in every state and of several ages, mail in and out (times from now)."""
    now = utcnow()
    for days, status, municipality, decided_after in [
        (1, "submitted", AARHUS, None), (9, "submitted", AARHUS, None),
        (25, "submitted", ODENSE, None), (40, "submitted", ODENSE, None),
        (30, "approved", AARHUS, 12), (60, "approved", ODENSE, 5),
        (20, "rejected", AARHUS, 3), (10, "info_requested", AARHUS, None),
        (15, "withdrawn", ODENSE, 2), (0, "draft", AARHUS, None),
    ]:
        session.add(Application(
            kind="new", status=status, version=1, source="web", municipality_code=municipality,
            institution_name=f"Plejecenter {days}", created_by="test",
            submitted_at=now - timedelta(days=days) if status != "draft" else None,
            decided_at=now - timedelta(days=days - decided_after) if decided_after else None))
    for number, outcome, reason, status in [
        (1, "application", None, None), (2, "triage", "unknown_sender", "open"),
        (3, "triage", "unparseable", "open"), (4, "triage", "oversized", "resolved"),
    ]:
        session.add(IncomingMail(
            message_id=f"<{number}@overview.test>", mailbox="INBOX", uidvalidity=1, uid=number,
            sender="sor@aarhus.dk", received_at=now, size=1, raw=b"x", outcome=outcome,
            triage_reason=reason, triage_status=status))
    for number, status, hours in [(1, "queued", 3), (2, "failed", 30), (3, "sent", 50)]:
        session.add(OutboxMessage(
            kind="test", recipients=["a@example.org"], subject="s", body_text="t",
            body_html="h", message_id=f"<{number}@overview.test>", status=status,
            created_at=now - timedelta(hours=hours)))
    session.flush()


@pytest.fixture
def one_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API and the page compute at the same moment (the outbox's age is in seconds)."""
    now = utcnow()
    monkeypatch.setattr(stats_routes, "utcnow", lambda: now)
    monkeypatch.setattr(stats_views, "utcnow", lambda: now)


@pytest.fixture
def staff(client, people):
    login(client, people["sds"].email)
    return client


def _api(client, session, name: str) -> dict:
    response = client.get(f"/api/v1/stats/{name}", headers=bearer(session, "sds", name=name))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _csv(client, name: str) -> list[list[str]]:
    response = client.get(f"/staff/stats/{name}.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert f"sor-{name}.csv" in response.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def _page_table(page: str, name: str) -> list[list[str]]:
    """The cells of the figure's "Vis tal" table (without the row labels)."""
    figure = re.search(rf'<figure[^>]*data-figure="{name}".*?</figure>', page, re.S)
    assert figure, name
    body = re.search(r"<tbody>(.*?)</tbody>", figure.group(0), re.S)
    assert body, name
    return [[html_lib.unescape(c.strip()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_start_page_draws_every_figure_with_its_numbers(staff, session, varied):
    page = staff.get("/staff/").get_data(as_text=True)
    assert page.count("<svg") == len(FIGURES)
    assert page.count("<summary>Vis tal</summary>") == len(FIGURES)
    for name in FIGURES:
        svg = re.search(rf'<svg[^>]*id="chart-{name}".*?</svg>', page, re.S)
        assert svg, name
        assert 'role="img"' in svg.group(0)
        assert f'aria-labelledby="chart-{name}-title"' in svg.group(0)
        assert f'href="/staff/stats/{name}.csv"' in page
    # Four submitted: 1 and 9 days old are within the promise whatever the weekday; 25
    # days are 17 to 19 working days, 40 are 28 or 29. The tooltips give the numbers.
    age = re.search(r'<svg[^>]*id="chart-waiting-by-age".*?</svg>', page, re.S).group(0)
    assert "Ventende ansøgninger efter alder (4)" in age
    assert age.count("<title") == 1 + 2 * 5  # the chart's, and both series' for 5 buckets
    for bucket, count in (("11–15", 0), ("16–20", 1), ("21+", 1)):
        tooltip = f"<title>{bucket}: Over svartiden (10 arbejdsdage) {count}</title>"
        assert tooltip in html_lib.unescape(age)
    assert "Udbakken - ældste ventende: 3 t." in page
    # Filtering the queue shows the queue alone.
    filtered = staff.get("/staff/?status=submitted").get_data(as_text=True)
    assert "<svg" not in filtered


def test_tables_and_csv_equal_the_api(staff, session, varied, one_moment):
    page = staff.get("/staff/").get_data(as_text=True)
    for name in FIGURES:
        data = _api(staff, session, name)
        rows = _csv(staff, name)
        header, body = rows[0], rows[1:]
        wanted = expected(name, data, header)
        assert comparable(name, body) == wanted, name
        assert comparable(name, _page_table(page, name)) == wanted, name
    assert _api(staff, session, "waiting-by-age")["total"] == 4
    waiting = {m["municipality_code"]: (m["waiting"], m["over_promise"])
               for m in _api(staff, session, "waiting-by-municipality")["municipalities"]}
    assert waiting == {AARHUS: (2, 0), ODENSE: (2, 2)}
    assert _api(staff, session, "mail-intake")["open_by_reason"] == {
        "unknown_sender": 1, "unparseable": 1}
    assert _api(staff, session, "outbox")["oldest_waiting_seconds"] >= 3 * 3600


def test_only_sds_sees_the_figures(client, session, people):
    login(client, people["aarhus"].email)
    assert client.get("/staff/").status_code == 403
    assert client.get("/staff/stats/outbox.csv").status_code == 403
    municipality = bearer(session, "municipality", name="aarhus")
    for name in FIGURES:
        assert client.get(f"/api/v1/stats/{name}", headers=municipality).status_code == 403
    assert client.get("/api/v1/stats/outbox").status_code == 401


def test_unknown_figures_are_not_found(staff, session):
    assert staff.get("/staff/stats/nothing.csv").status_code == 404
    assert staff.get("/staff/stats/..%2Foutbox.csv").status_code == 404
    response = staff.get("/api/v1/stats/nothing", headers=bearer(session, "sds"))
    assert response.status_code == 404 and response.get_json()["code"] == 404

"""The staff's overview in a real browser (Debian's Chromium, Playwright), on a demo-like
register: a generated SOR export of realistic shape (the benchmark's generator, seeded)
and a year of seeded staff activity. SDS logs in, sees every chart, opens every "Vis tal"
table; each table and each CSV equal what the API gives. The page is saved as a
screenshot under pytest's temporary directory (the path is printed)."""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from applications import stats_routes, stats_views
from applications.stats_figures import FIGURES
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from sorregistry.models import utcnow
from tests.pages.helpers import PASSWORD, make_users
from tests.pages.overview_helpers import add_activity, comparable, expected
from tests.support.exports import generator

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    # One back end is enough for the browser: the figures are checked on both elsewhere.
    pytest.mark.parametrize("migrated_template", ["sqlite"], indirect=True),
]
TIMEOUT = 15_000  # ms; the machine is small and shared


@pytest.fixture
def demo(fresh_database: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The app serving a generated register of 1,000 entities (a region, two
    municipalities, a state owner, private practices) with activity; and an SDS token."""
    export = tmp_path / "demo.xml"
    generator().generate(export, 1000, seed=15, municipalities=2, regions=1, state_owners=1)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "SECRET_KEY": "browser-tests"})
    with app.app_context():
        import_sor_file(db.session, export, actor="demo")
        make_users(db.session)
        add_activity(db.session, utcnow())
        _, token = create_client(db.session, "overview", cvr="29190909", roles=["sds"])
        db.session.commit()
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", token
    finally:
        http.shutdown()
        thread.join()
        with app.app_context():
            db.engine.dispose()


def test_sds_reads_the_overview_on_a_demo_register(demo, tmp_path_factory, monkeypatch):
    base, token = demo
    # The server runs in this process: the page and the API compute at one moment, so the
    # outbox's age in seconds is the same in both.
    now = utcnow()
    monkeypatch.setattr(stats_routes, "utcnow", lambda: now)
    monkeypatch.setattr(stats_views, "utcnow", lambda: now)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(base_url=base, locale="da-DK",
                                          viewport={"width": 1400, "height": 900})
            context.set_default_timeout(TIMEOUT)
            page = context.new_page()
            page.goto("/login")
            page.get_by_label("E-mail").fill("sagsbehandler@sundhedsdata.dk")
            page.get_by_label("Adgangskode").fill(PASSWORD)
            page.get_by_role("button", name="Log ind").click()
            page.goto("/staff/")
            expect(page.get_by_role("heading", name="Overblik")).to_be_visible()
            for name in FIGURES:
                chart = page.locator(f"svg#chart-{name}")
                expect(chart).to_be_visible()
                box = chart.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100, name
                assert chart.locator("rect, circle").count() > 0, name
            # Every register line has points (all four ownerships exist in the demo).
            size = page.locator("svg#chart-register-size")
            assert size.locator("polyline").count() == 4
            folder = tmp_path_factory.mktemp("screenshots-overview")
            page.screenshot(path=folder / "01-staff-overview.png", full_page=True)

            api = {"Authorization": f"Bearer {token}"}
            for name in FIGURES:
                figure = page.locator(f"#figure-{name}")
                figure.get_by_text("Vis tal").click()
                table = figure.locator("table")
                expect(table).to_be_visible()
                cells = [row.locator("td").all_inner_texts()
                         for row in table.locator("tbody tr").all()]
                data = context.request.get(f"/api/v1/stats/{name}", headers=api).json()
                csv_rows = list(csv.reader(io.StringIO(
                    context.request.get(f"/staff/stats/{name}.csv").text())))
                wanted = expected(name, data, csv_rows[0])
                assert comparable(name, csv_rows[1:]) == wanted, name
                assert comparable(name, [[c.strip() for c in row] for row in cells]) == wanted
            page.screenshot(path=folder / "02-staff-overview-tables.png", full_page=True)
            print(f"\nscreenshots: {folder}")
            context.close()
        finally:
            browser.close()

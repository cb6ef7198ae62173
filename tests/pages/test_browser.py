"""The pages in a real browser: Debian's Chromium driven by Playwright against the app
served by a real (threaded) server on a committed SQLite database.

Two journeys, one browser for both: a municipality applies (and sees the duplicate
warning first) and SDS approves; a reporter uses the picker and is refused the staff
pages. Each page is saved as a screenshot under pytest's temporary directory (the
path is printed). The browser tests run on SQLite only: the pages do nothing
back-end specific that the test-client tests do not already cover on both.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from hierarchy.shak_import import import_shak_file
from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.helpers import EXISTING_SI, PLEJEHJEM, build_register
from tests.conftest import fixture_path
from tests.pages.helpers import PASSWORD, make_users

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    # One back end is enough for the browser (see the module's docstring).
    pytest.mark.parametrize("migrated_template", ["sqlite"], indirect=True),
]
TIMEOUT = 15_000  # ms; the machine is small and shared


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server(fresh_database: str) -> Iterator[str]:
    """The app on a database of its own, with the small register, people and SHAK codes."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "SECRET_KEY": "browser-tests"})
    with app.app_context():
        build_register(db.session)
        make_users(db.session)
        import_shak_file(db.session, fixture_path("shak_sample.TXT"), actor="test")
        db.session.commit()
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def shot(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Save a screenshot of the page: ``shot(page, "login")``."""
    folder: Path = tmp_path_factory.mktemp("screenshots-" + request.node.name[:30])
    count = 0

    def take(page, name: str) -> None:
        nonlocal count
        count += 1
        page.screenshot(path=folder / f"{count:02d}-{name}.png", full_page=True)

    yield take
    print(f"\nscreenshots: {folder}")


def _new_page(browser, base: str):
    context = browser.new_context(base_url=base, locale="da-DK")
    context.set_default_timeout(TIMEOUT)
    return context, context.new_page()


def _log_in(page, email: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Adgangskode").fill(PASSWORD)
    page.get_by_role("button", name="Log ind").click()


def test_municipality_applies_and_sds_approves(browser, server, shot):

    context, page = _new_page(browser, server)
    page.goto("/municipality/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    shot(page, "login")
    _log_in(page, "sor@aarhus.dk")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Mine ansøgninger")
    shot(page, "municipality-list")

    page.get_by_role("link", name="Ansøg om ny SOR-kode").click()
    page.get_by_label("Institutionens navn").fill("Plejecenter Søndergaarden")
    page.get_by_label("Adresse (gade og nummer)").fill("Søndergade 14")
    page.get_by_label("Postnummer").fill("8000")
    page.get_by_role("textbox", name="By", exact=True).fill("Aarhus C")
    page.get_by_label("Telefon").fill("87 13 00 00")
    page.get_by_label("Institutionstype").select_option(PLEJEHJEM)
    page.get_by_label("Kommunalt ejet").check()
    expect(page.get_by_label("Ejerens CVR-nummer")).to_be_hidden()  # only for privat
    shot(page, "application-form")

    # Valider first: a similar institution exists in the same postcode.
    page.get_by_role("button", name="Valider").click()
    warning = page.locator(".warning-box")
    expect(warning).to_contain_text("lignende navn")
    expect(page.locator("table.compare")).to_contain_text("Plejecenter Søndergården")
    expect(page.locator(".field-warning").first).to_be_visible()
    shot(page, "validated-duplicate-warning")

    page.get_by_role("button", name="Send ansøgning").click()
    expect(page.locator(".flash-success")).to_contain_text("sendt til SDS")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Indsendt")
    reference = re.search(r"ANS-\d{6}", heading.inner_text()).group(0)
    shot(page, "submitted")
    page.get_by_role("button", name="Log ud").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    context.close()

    context, page = _new_page(browser, server)
    page.goto("/login")
    _log_in(page, "sagsbehandler@sundhedsdata.dk")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ansøgninger til behandling")
    shot(page, "staff-queue")
    page.get_by_role("link", name=reference).click()
    expect(page.locator("table.compare")).to_contain_text("Søndergade 12")
    shot(page, "staff-application-duplicates")
    page.get_by_label("Bemærkning (valgfri)").fill("Ikke en dublet: ny afdeling")
    page.get_by_role("button", name="Godkend").click()
    expect(page.locator(".flash-success")).to_contain_text("Godkendt: SOR-kode")
    code = page.locator("#sor-code strong").inner_text()
    assert re.fullmatch(r"[1-9][0-9]{0,7}100001600[0-9]", code)
    shot(page, "staff-approved")
    page.get_by_role("link", name="Se i registret").click()
    expect(page.locator("#org-sor-code")).to_have_text(code)
    shot(page, "register-organisation")
    context.close()


def test_picker_and_a_refused_page(browser, server, shot):

    context, page = _new_page(browser, server)
    page.goto("/login")
    _log_in(page, "indberetter@aarhus.dk")
    expect(page).to_have_url(re.compile(r"/picker$"))

    page.get_by_role("button", name="Mit CVR – Alle").click()
    rows = page.locator("#picker-table tbody tr")
    expect(rows.first).to_be_visible()
    page.get_by_label("Filtrér kolonnen Navn").fill("sønder")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Plejecenter Søndergården")
    expect(rows.first).to_contain_text("plejehjem")
    shot(page, "picker-my-cvr-all-filtered")
    # Typed without Danish letters, the same; mistyped, "Mente du …?" offers the name.
    name_filter = page.get_by_label("Filtrér kolonnen Navn")
    name_filter.fill("sondergaarden")
    expect(rows).to_have_count(1)
    name_filter.fill("sondergaden")
    expect(page.locator("#picker-status")).to_contain_text("Mente du")
    expect(rows).to_have_count(0)
    shot(page, "picker-did-you-mean")
    page.locator("#picker-status button.suggestion").first.click()
    expect(name_filter).to_have_value("sondergarden")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("button", name=re.compile("^Vælg")).click()
    expect(page.get_by_label("SOR-kode", exact=True)).to_have_value(EXISTING_SI)
    # SOR or SHAK, not both.
    expect(page.get_by_role("combobox", name="SHAK-sygehus")).to_be_disabled()
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("#validation .ok-box")).to_contain_text("Koden er gyldig")
    shot(page, "picker-chosen-and-validated")

    # The SHAK field instead, by keyboard: type, arrow down, Enter.
    page.locator("#sor-clear").click()
    hospital = page.get_by_role("combobox", name="SHAK-sygehus")
    hospital.press_sequentially("rigs", delay=50)
    expect(page.get_by_role("option").first).to_contain_text("Rigshospitalet")
    hospital.press("ArrowDown")
    hospital.press("Enter")
    expect(hospital).to_have_value("1301")
    expect(page.get_by_label("Sygehusets navn")).to_have_value(re.compile("Rigshospitalet"))
    expect(page.get_by_label("SOR-kode", exact=True)).to_be_disabled()
    expect(page.get_by_role("combobox", name="SHAK-afdeling")).to_be_enabled()
    shot(page, "picker-shak")

    response = page.goto("/staff/")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("403")
    shot(page, "refused")
    context.close()


@pytest.fixture
def other_site() -> Iterator[tuple[str, dict[str, str]]]:
    """A page on another origin (another port of 127.0.0.1): whatever it is given to serve."""

    pages: dict[str, str] = {}
    site = Flask("other_site")

    @site.get("/<name>")
    def serve(name: str) -> str:
        return pages[name]

    http = make_server("127.0.0.1", 0, site, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", pages
    finally:
        http.shutdown()
        thread.join()


def test_another_site_cannot_frame_a_staff_page(browser, server, other_site):
    """The probe framed a staff application, approve button and all, from a sibling
    origin; frame-ancestors 'none' (and X-Frame-Options) stop the browser showing it."""

    context, page = _new_page(browser, server)
    page.goto("/login")
    _log_in(page, "sagsbehandler@sundhedsdata.dk")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ansøgninger til behandling")
    origin, pages = other_site
    pages["evil.html"] = (f'<!doctype html><h1>Win a prize</h1>'
                          f'<iframe id="victim" src="{server}/staff/"></iframe>')
    page.goto(f"{origin}/evil.html")
    expect(page.get_by_role("heading", level=1)).to_have_text("Win a prize")
    page.wait_for_timeout(1000)
    framed = [frame for frame in page.frames if frame != page.main_frame]
    assert framed, "the iframe was not made at all"
    for frame in framed:
        # Blocked: the frame shows the browser's error page, never the staff page.
        assert "/staff/" not in frame.url or frame.url.startswith("chrome-error")
        assert "Ansøgninger til behandling" not in (frame.content() if not frame.is_detached()
                                                     else "")
    context.close()

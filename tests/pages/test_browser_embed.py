"""The embedded picker in a real browser (issue 15, item 5): Debian's Chromium, the app
on one 127.0.0.1 port, ``examples/reporting-form.html`` served by plain HTTP servers on
two others - one origin listed in SOR_PICKER_ORIGINS, one not.

The listed page frames the picker with a token its "server" (the test) asked for, the
person picks a unit, and the page receives its SOR code. The page of the origin not
listed frames the very same URL and Chromium refuses to show it (frame-ancestors).
SQLite only, as the other browser tests (test_browser.py says why).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.helpers import EXISTING_SI, bearer, build_register

CHROMIUM = "/usr/bin/chromium"
EXAMPLES = Path(__file__).parents[2] / "examples"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.parametrize("migrated_template", ["sqlite"], indirect=True),
]
TIMEOUT = 15_000  # ms; the machine is small and shared


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def form_sites() -> Iterator[tuple[str, str]]:
    """Two other origins serving examples/: (listed, not listed)."""
    handler = functools.partial(_Quiet, directory=str(EXAMPLES))
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield tuple(f"http://127.0.0.1:{s.server_port}" for s in servers)  # type: ignore[misc]
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            thread.join()
            server.server_close()


@pytest.fixture
def sor(fresh_database: str, form_sites: tuple[str, str]) -> Iterator[tuple[str, dict]]:
    """The app with the small register and SEI's API client: (its URL, the client's
    Authorization header)."""
    listed, _ = form_sites
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                      "SECRET_KEY": "browser-tests", "PICKER_ORIGINS": (listed,)})
    with app.app_context():
        build_register(db.session)
        headers = bearer(db.session, "reporter", name="SEI")
        db.session.commit()
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", headers
    finally:
        http.shutdown()
        thread.join()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_another_origin_embeds_the_picker_and_receives_the_choice(browser, sor, form_sites,
                                                                  tmp_path):
    base, client = sor
    listed, not_listed = form_sites
    # What the reporting form's server does, with its own API credentials.
    answer = requests.post(f"{base}/api/v1/picker/tokens", json={"origin": listed},
                           headers=client, timeout=10)
    assert answer.status_code == 201, answer.text
    frame_url = answer.json()["url"]

    context = browser.new_context(locale="da-DK")  # no login: the token is the credential
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(f"{listed}/reporting-form.html?picker={quote(frame_url, safe='')}")
    picker = page.frame_locator("#picker")
    picker.get_by_role("button", name="Kommunal", exact=True).click()
    chosen = picker.get_by_role("button", name=f"Vælg Plejecenter Søndergården ({EXISTING_SI})")
    chosen.click()
    expect(page.locator("#sor_code")).to_have_value(EXISTING_SI)
    expect(page.locator("#unit_name")).to_have_value("Plejecenter Søndergården")
    expect(page.locator("#unit_level")).to_have_value("SI")
    # The token left the frame's address as soon as the script read it.
    inner = next(frame for frame in page.frames if frame.url.startswith(base))
    assert "#token=" not in inner.url
    page.screenshot(path=tmp_path / "embedded-picker.png", full_page=True)

    # Without origin=, the picker posts to its parent's origin, being one of those listed.
    bare = page.context.new_page()
    token = frame_url.partition("#")[2]
    bare.goto(f"{listed}/reporting-form.html?picker={quote(f'{base}/picker?embed=1#{token}')}")
    bare.frame_locator("#picker").get_by_role("button", name="Kommunal", exact=True).click()
    bare.frame_locator("#picker").get_by_role(
        "button", name=f"Vælg Plejecenter Søndergården ({EXISTING_SI})").click()
    expect(bare.locator("#sor_code")).to_have_value(EXISTING_SI)

    # The same frame URL in a page of an origin not listed: Chromium does not show it.
    refused = context.new_page()
    refused.goto(f"{not_listed}/reporting-form.html?picker={quote(frame_url, safe='')}")
    refused.wait_for_load_state("load")
    child = refused.frames[1]
    assert child.url.startswith("chrome-error:"), child.url  # blocked: Chromium's error page
    expect(refused.frame_locator("#picker").locator("#picker-table")).to_have_count(0)
    context.close()

"""In a real browser (Debian's Chromium, Playwright): a person logs in through the
identity provider's own login and consent pages, lands on the municipality page with the
CVR from the token, finds that CVR's units under "Mit CVR – Alle" in the picker, and logs
out of both the service and the provider. Local login is off (SOR_LOCAL_LOGIN=0).

The app is served by a real threaded server on a committed SQLite database; the
provider's redirect URIs name that server's port, so the server's socket is bound first.
The browser may reach 127.0.0.1 only (the provider's pages ask for a web font, which is
refused).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from sorregistry import create_app
from sorregistry.accounts import roles
from sorregistry.accounts.models import User
from sorregistry.extensions import db
from tests.applications.helpers import AARHUS, AARHUS_CVR, EXISTING_SI, build_register
from tests.identity.conftest import identity_settings, start_provider

CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 15_000  # ms; the machine is small and shared
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.parametrize("migrated_template", ["sqlite"], indirect=True),
]


class _Later:
    """A WSGI app set after the server is bound (its port goes into the provider)."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


@pytest.fixture
def served(fresh_database: str, tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """The app and its provider: (the app's base URL, the provider's issuer, the app)."""
    later = _Later()
    http = make_server("127.0.0.1", 0, later, threaded=True)
    base = f"http://127.0.0.1:{http.server_port}"
    provider = start_provider(tmp_path, redirect_base=base)
    try:
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database,
                          "SECRET_KEY": "browser-tests", **identity_settings(provider)})
        with app.app_context():
            build_register(db.session)
            roles.grant_role(db.session, role="municipality", cvr=AARHUS_CVR,
                             municipality_code=AARHUS, granted_by="test")
            db.session.commit()
        later.app = app
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        try:
            yield base, provider.issuer, app
        finally:
            http.shutdown()
            thread.join()
            with app.app_context():
                db.engine.dispose()
    finally:
        http.server_close()
        provider.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only when it runs

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_log_in_through_the_provider_and_use_mit_cvr(browser, served, tmp_path):
    from playwright.sync_api import expect  # noqa: PLC0415 - only when it runs

    base, issuer, app = served
    context = browser.new_context(base_url=base, locale="da-DK")
    context.set_default_timeout(TIMEOUT)
    context.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    page = context.new_page()
    shots = tmp_path / "screenshots"
    shots.mkdir()

    page.goto("/municipality/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.locator('input[name="password"]')).to_have_count(0)  # local login is off
    page.screenshot(path=shots / "01-login.png", full_page=True)
    page.get_by_role("link", name="Log ind med MitID Erhverv (NemLog-in)").click()

    # The provider's own pages (devInteractions): sign in, then consent.
    expect(page).to_have_url(re.compile("^" + re.escape(issuer) + "/interaction/"))
    page.get_by_placeholder("Enter any login").fill("anne")
    page.get_by_placeholder("and password").fill("any password")
    page.screenshot(path=shots / "02-provider-login.png", full_page=True)
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(f"{base}/municipality/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Mine ansøgninger")
    expect(page.locator(".who")).to_have_text("Anne Aarhus")
    page.screenshot(path=shots / "03-municipality.png", full_page=True)
    with app.app_context():  # the account the login made: the CVR is the token's
        person = db.session.execute(select(User).where(User.oidc_subject == "anne")
                                    ).scalar_one()
        assert (person.cvr, person.municipality_code, person.password_hash) == (
            AARHUS_CVR, AARHUS, None)

    page.goto("/picker")
    page.get_by_role("button", name="Mit CVR – Alle").click()
    rows = page.locator("#picker-table tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#picker-table")).to_contain_text("Plejecenter Søndergården")
    expect(page.locator("#picker-table")).not_to_contain_text("Fysioterapi Åbyhøj")
    rows.filter(has_text="Plejecenter Søndergården").get_by_role(
        "button", name=re.compile("^Vælg")).click()
    expect(page.get_by_label("SOR-kode", exact=True)).to_have_value(EXISTING_SI)
    page.screenshot(path=shots / "04-picker-my-cvr-all.png", full_page=True)

    # Logging out ends the provider's session too (its own confirmation page), then back.
    page.get_by_role("button", name="Log ud").click()
    expect(page).to_have_url(re.compile("^" + re.escape(issuer) + "/session/end"))
    page.screenshot(path=shots / "05-provider-logout.png", full_page=True)
    page.get_by_role("button", name=re.compile("Yes, sign me out", re.I)).click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.locator(".flash")).to_contain_text("Du er logget ud")
    page.goto("/municipality/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    # The provider forgot the person: logging in again asks for the login once more.
    page.get_by_role("link", name="Log ind med MitID Erhverv (NemLog-in)").click()
    expect(page.get_by_placeholder("Enter any login")).to_be_visible()
    print(f"\nscreenshots: {shots}")
    context.close()

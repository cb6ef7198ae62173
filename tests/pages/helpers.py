"""People, logins and CSRF tokens for the page tests."""

from __future__ import annotations

import functools
import re
from typing import Any

from werkzeug.security import generate_password_hash

from sorregistry.accounts.models import PASSWORD_METHOD, User
from tests.applications.helpers import AARHUS, AARHUS_CVR, ODENSE, ODENSE_CVR

PASSWORD = "korrekt hest batteri"
SDS_CVR = "29190909"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FORMS = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)


@functools.cache
def _password_hash() -> str:
    # scrypt costs ~0.15 s a hash: hash the shared test password once per run.
    return generate_password_hash(PASSWORD, method=PASSWORD_METHOD)


def add_user(session, email: str, name: str, roles: list[str], *,
             municipality_code: str | None = None, cvr: str | None = None) -> User:
    """A user with PASSWORD (create_user's checks are tested in test_create_user)."""
    user = User(email=email, name=name, roles=roles, municipality_code=municipality_code,
                cvr=cvr, password_hash=_password_hash(), active=True, failed_logins=0)
    session.add(user)
    session.flush()
    return user


def make_users(session) -> dict[str, User]:
    """An SDS case worker, Aarhus' and Odense's case workers, and a reporter (Aarhus' CVR)."""
    return {
        "sds": add_user(session, "sagsbehandler@sundhedsdata.dk", "Sara SDS", ["sds"],
                        cvr=SDS_CVR),
        "aarhus": add_user(session, "sor@aarhus.dk", "Anne Aarhus", ["municipality"],
                           municipality_code=AARHUS, cvr=AARHUS_CVR),
        "odense": add_user(session, "sor@odense.dk", "Ole Odense", ["municipality"],
                           municipality_code=ODENSE, cvr=ODENSE_CVR),
        "reporter": add_user(session, "indberetter@aarhus.dk", "Rita Reporter", ["reporter"],
                             cvr=AARHUS_CVR),
    }


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def post_forms(html: str) -> list[str]:
    """The page's forms that are sent with POST."""
    return [form for form in _FORMS.findall(html)
            if re.search(r'method="post"', form.split(">", 1)[0], re.I)]


def login(client, email: str, password: str = PASSWORD, **extra: Any):
    page = client.get("/login")
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_token(page.get_data(as_text=True)),
                                       **extra})


def post(client, url: str, data: dict[str, Any] | None = None, *, page: str | None = None):
    """POST a form of *page* (default: the page at *url*) with that page's CSRF token."""
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={**(data or {}), "csrf_token": csrf_token(html)})

"""Every form that changes something carries a CSRF token, and a POST without one is
refused; the JSON API keeps its bearer tokens and needs none."""

from __future__ import annotations

import pytest

from applications import service
from applications.views import actor_for
from tests.applications.helpers import bearer, new_nursing_home
from tests.pages.helpers import login, post_forms


@pytest.fixture(autouse=True)
def csrf_on(app):
    # The pages' tests run with CSRF on, as production does (it is Flask-WTF's default).
    app.config["WTF_CSRF_ENABLED"] = True


@pytest.fixture
def application(session, people):
    actor = actor_for(people["aarhus"])
    made = service.create_application(session, actor, new_nursing_home(), source="web")
    session.flush()
    return made


PAGES = {
    None: ["/login"],
    "sds": ["/staff/", "/staff/register/", "/staff/applications/{id}", "/picker",
            "/staff/outbox/", "/staff/mail/"],
    "aarhus": ["/municipality/", "/municipality/applications/new",
               "/municipality/applications/{id}", "/picker"],
}


@pytest.mark.parametrize("who", list(PAGES))
def test_every_post_form_carries_a_csrf_token(client, people, application, session, who):
    if who == "sds":
        service.submit_application(session, actor_for(people["aarhus"]), application.id)
        session.flush()
    if who:
        login(client, people[who].email)
    seen = 0
    for path in PAGES[who]:
        html = client.get(path.format(id=application.id)).get_data(as_text=True)
        for form in post_forms(html):
            assert 'type="hidden" name="csrf_token" value="' in form, (path, form[:200])
            seen += 1
        # Search and filter forms are GET: they change nothing and keep tokens out of URLs.
        assert html.count("<form") == len(post_forms(html)) + html.count('method="get"')
    assert seen >= (1 if who is None else 3)


@pytest.mark.parametrize(
    "who, path",
    [
        (None, "/login"),
        ("sds", "/logout"),
        ("sds", "/staff/applications/{id}/approve"),
        ("sds", "/staff/applications/{id}/reject"),
        ("aarhus", "/municipality/applications/new"),
        ("aarhus", "/municipality/applications/{id}"),
        ("aarhus", "/municipality/applications/{id}/withdraw"),
        ("aarhus", "/picker/api/validate"),
    ],
)
def test_post_without_a_token_is_refused(client, people, application, session, who, path):
    if who:
        login(client, people[who].email)
    before = application.status
    response = client.post(path.format(id=application.id),
                           data={"email": people["sds"].email, "reason": "x"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    session.refresh(application)
    assert application.status == before


def test_a_wrong_token_is_refused(client, people):
    response = client.post("/login", data={"email": people["sds"].email,
                                           "password": "x", "csrf_token": "forged"})
    assert response.status_code == 400


def test_the_json_api_needs_no_csrf_token(client, session, people):
    headers = bearer(session, "municipality", name="Aarhus system")
    created = client.post("/api/v1/applications", json=new_nursing_home(), headers=headers)
    assert created.status_code == 201, created.get_json()
    url = f"/api/v1/applications/{created.get_json()['id']}"
    assert client.post(url + "/submit", headers=headers).status_code == 200
    # A logged-in session is no key to the API: it still wants a bearer token.
    login(client, people["sds"].email)
    refused = client.post(url + "/approve", json={})
    assert refused.status_code == 401 and refused.get_json()["code"] == 401

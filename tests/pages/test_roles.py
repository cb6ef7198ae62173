"""Who may open which page: no login goes to /login; a missing role is 403."""

from __future__ import annotations

import pytest

from tests.pages.helpers import login


@pytest.mark.parametrize("path", ["/staff/", "/staff/register/", "/municipality/", "/picker",
                                  "/staff/applications/1", "/municipality/applications/new"])
def test_pages_without_login_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "who, path, status",
    [
        ("aarhus", "/staff/", 403),
        ("aarhus", "/staff/register/", 403),
        ("aarhus", "/staff/register/tree?ownership=kommunal", 403),
        ("reporter", "/municipality/", 403),
        ("reporter", "/municipality/applications/new", 403),
        ("reporter", "/staff/", 403),
        ("sds", "/municipality/", 403),
        ("reporter", "/picker", 200),
        ("aarhus", "/picker", 200),
        ("sds", "/staff/register/", 200),
    ],
)
def test_roles(client, people, who, path, status):
    login(client, people[who].email)
    response = client.get(path)
    assert response.status_code == status
    if status == 403:
        assert "403" in response.get_data(as_text=True)


def test_menu_shows_only_the_pages_of_the_role(client, people):
    login(client, people["aarhus"].email)
    html = client.get("/municipality/").get_data(as_text=True)
    nav = html[html.index('class="pages-nav"'):html.index("</nav>")]
    assert "/municipality/" in nav and "/picker" in nav and "/staff/" not in nav

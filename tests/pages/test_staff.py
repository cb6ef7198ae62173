"""SDS staff pages: the review queue, an application with its duplicates, the decisions,
and the register browser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from applications import service
from applications.models import Application
from applications.views import actor_for
from hierarchy import service as register
from hierarchy.models import Organisation
from tests.applications.helpers import AARHUS_IE, EXISTING_SI, PRIVATE_SI, new_nursing_home
from tests.pages.helpers import add_user, login, post


def _submitted(session, user, **overrides) -> Application:
    actor = actor_for(user)
    application = service.create_application(session, actor, new_nursing_home(**overrides),
                                             source="web")
    service.submit_application(session, actor, application.id)
    session.flush()
    return application


@pytest.fixture
def duplicate(session, people):
    """An application resembling "Plejecenter Søndergården" (Søndergade 12, 8000)."""
    return _submitted(session, people["aarhus"], institution_name="Plejecenter Søndergaarden",
                      address={"street": "Søndergade 14", "postal_code": "8000",
                               "city": "Aarhus C"})


@pytest.fixture
def staff(client, people):
    login(client, people["sds"].email)
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def test_queue_shows_submitted_applications_with_filters(staff, session, people, duplicate):
    odense = _submitted(session, people["odense"], institution_name="Odense Sundhedshus",
                        address={"street": "Vestergade 1", "postal_code": "5000",
                                 "city": "Odense C"}, contact_email="sor@odense.dk")
    html = text(staff.get("/staff/"))
    assert duplicate.reference in html and odense.reference in html
    assert "2 ansøgninger" in html
    only_aarhus = text(staff.get("/staff/?status=submitted&municipality=0751"))
    assert duplicate.reference in only_aarhus and odense.reference not in only_aarhus
    drafts = text(staff.get("/staff/?status=draft"))
    assert duplicate.reference not in drafts
    odense.submitted_at -= timedelta(days=20)
    session.flush()
    old = text(staff.get("/staff/?status=submitted&age=14"))
    assert odense.reference in old and duplicate.reference not in old


def test_application_page_shows_validation_and_duplicates_side_by_side(staff, duplicate):
    html = text(staff.get(f"/staff/applications/{duplicate.id}"))
    assert "Plejecenter Søndergaarden" in html
    assert "Advarsler" in html and "lignende navn" in html
    compare = html[html.index('class="compare"'):]
    compare = compare[:compare.index("</table>")]
    # The application and the register's institution, column by column.
    assert "Søndergade 14" in compare and "Søndergade 12" in compare
    assert f'href="/staff/register/{EXISTING_SI}"' in compare  # the candidate, linked
    assert "lignende navn i samme postnummer" in compare
    assert "Historik" in html and "Indsendt" in html
    for step in ("approve", "reject", "request-info"):
        assert f"/staff/applications/{duplicate.id}/{step}" in html


def test_approve_from_the_page(staff, session, duplicate):
    page = f"/staff/applications/{duplicate.id}"
    response = post(staff, page + "/approve", {"reason": "Set i orden"}, page=page)
    assert response.status_code == 303 and response.headers["Location"] == page
    session.refresh(duplicate)
    assert duplicate.status == "approved" and duplicate.sor_code
    html = text(staff.get(page))
    assert f"Godkendt: SOR-kode {duplicate.sor_code}" in html
    assert re.search(r'id="sor-code"[^>]*>.*?' + duplicate.sor_code, html, re.S)
    assert session.get(Organisation, duplicate.sor_code).name == "Plejecenter Søndergaarden"
    events = duplicate.events
    assert events[-1].action == "approved" and events[-1].reason == "Set i orden"
    assert events[-1].actor.startswith("user:") and "Sara SDS" in events[-1].actor


def test_reject_and_request_information_need_a_reason(staff, session, duplicate):
    page = f"/staff/applications/{duplicate.id}"
    refused = post(staff, page + "/reject", {"reason": " "}, page=page)
    assert refused.status_code == 303
    assert "Begrundelse" in text(staff.get(page))
    session.refresh(duplicate)
    assert duplicate.status == "submitted"
    post(staff, page + "/request-info", {"reason": "Hvilket ydernummer?"}, page=page)
    session.refresh(duplicate)
    assert duplicate.status == "info_requested"
    post(staff, page + "/reject", {"reason": "Findes allerede"}, page=page)
    session.refresh(duplicate)
    assert duplicate.status == "rejected"
    assert "Findes allerede" in text(staff.get(page))


def test_whoever_sent_it_may_not_approve_it(client, session, people):
    both = add_user(session, "dobbelt@aarhus.dk", "Dobbelt Rolle", ["municipality", "sds"],
                    municipality_code="0751")
    own = _submitted(session, both)
    login(client, both.email)
    page = f"/staff/applications/{own.id}"
    post(client, page + "/approve", page=page)
    session.refresh(own)
    assert own.status == "submitted"
    assert "may not approve" in text(client.get(page))


def test_person_and_api_client_ids_never_collide(session, people):
    actor = actor_for(people["sds"])
    assert actor.client_id == -people["sds"].id < 0
    assert actor.roles == ("sds",) and actor.is_staff


def test_unknown_application_is_404(staff):
    assert staff.get("/staff/applications/999999").status_code == 404


# --- the register browser ------------------------------------------------------------


def test_register_tree_opens_level_by_level(staff):
    root = text(staff.get("/staff/register/"))
    assert "/staff/register/tree?ownership=kommunal" in root
    owners = text(staff.get("/staff/register/tree?ownership=kommunal"))
    assert "Aarhus Kommune" in owners and f"parent={AARHUS_IE}" in owners
    institutions = text(staff.get(f"/staff/register/tree?parent={AARHUS_IE}"))
    assert "Plejecenter Søndergården" in institutions
    assert staff.get("/staff/register/tree").status_code == 400


def test_register_search(staff):
    by_name = text(staff.get("/staff/register/?q=søndergården"))
    assert "Plejecenter Søndergården" in by_name and "1 fundet" in by_name
    by_code = text(staff.get(f"/staff/register/?q={PRIVATE_SI[:-3]}"))
    assert "Fysioterapi Åbyhøj" in by_code


def test_organisation_page_shows_identifiers_inherited_values_and_history(staff):
    html = text(staff.get(f"/staff/register/{EXISTING_SI}"))
    assert EXISTING_SI in html and "Aarhus Kommune" in html  # the owner in the breadcrumbs
    values = html[html.index('class="fields values"'):]
    values = values[:values.index("</table>")]
    # The nursing home has no phone of its own: it inherits the owner's, marked so.
    phone = values[values.index("Telefon"):]
    phone = phone[:phone.index("</tr>")]
    assert "89402000" in phone and "arvet" in phone
    assert "Søndergade 12" in values
    assert "Versioner" in html and "staff" in html
    assert staff.get("/staff/register/123").status_code == 404


def test_organisation_page_links_successors_and_predecessors_by_name(staff, session):
    register.change_organisation(session, EXISTING_SI, {"replaced_by": [PRIVATE_SI]},
                                 source="staff", actor="test")
    session.commit()
    old = text(staff.get(f"/staff/register/{EXISTING_SI}"))
    successor = old[old.index("Erstattet af"):]
    successor = successor[:successor.index("</tr>")]
    assert f"/staff/register/{PRIVATE_SI}" in successor and "Fysioterapi Åbyhøj" in successor
    new = text(staff.get(f"/staff/register/{PRIVATE_SI}?lang=en"))
    predecessor = new[new.index("Replaces"):]
    assert f"/staff/register/{EXISTING_SI}" in predecessor[:predecessor.index("</tr>")]

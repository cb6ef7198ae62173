"""Municipality pages: drafts, "Valider" inline, sending, answering SDS, withdrawing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from applications import service
from applications.models import Application
from applications.views import actor_for
from tests.applications.helpers import EXISTING_SI, PLEJEHJEM
from tests.pages.helpers import csrf_token, login


@pytest.fixture
def aarhus(client, people):
    login(client, people["aarhus"].email)
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def form(**overrides) -> dict[str, str]:
    """The new-application form as a person fills it in: like Søndergården, in 8000."""
    values = {
        "kind": "new", "contact_email": "sor@aarhus.dk",
        "institution_name": "Plejecenter Søndergaarden", "street": "Søndergade 14",
        "postal_code": "8000", "city": "Aarhus C", "phone": "87 13 00 00", "fax": "",
        "email": "", "website": "", "institution_type": PLEJEHJEM, "ownership": "kommunal",
        "owner_cvr": "", "owner_name": "", "ydernummer": "", "gln": "", "shak": "",
        "target_sor_code": "", "closing_date": "", "remarks": "",
    }
    values.update(overrides)
    return values


def send(client, url: str, page: str, **values):
    return client.post(url, data={**values, "csrf_token": csrf_token(text(client.get(page)))})


def test_new_form_validate_then_send(aarhus, session, people):
    new = "/municipality/applications/new"
    page = text(aarhus.get(new))
    assert 'name="institution_name"' in page and 'value="sor@aarhus.dk"' in page
    assert 'value="save"' in page and 'value="validate"' in page and 'value="submit"' in page

    # Valider: the draft is saved and the findings are shown inline.
    response = send(aarhus, new, new, **form(phone=""), action="validate")
    assert response.status_code == 303
    application = session.execute(select(Application)).scalar_one()
    assert application.status == "draft" and application.source == "web"
    assert application.created_by_client == -people["aarhus"].id  # the person, not a client
    shown = text(aarhus.get(response.headers["Location"]))
    assert 'class="field-error"' in shown and "Telefon skal udfyldes." in shown
    assert 'aria-invalid="true"' in shown
    assert 'class="field-warning"' in shown and "lignende navn" in shown
    assert "Plejecenter Søndergården" in shown and EXISTING_SI in shown  # the candidate

    # Sending with an error is refused and shows the errors.
    url = f"/municipality/applications/{application.id}"
    refused = send(aarhus, url, url, **form(phone=""), action="submit")
    assert "valider=1" in refused.headers["Location"]
    session.refresh(application)
    assert application.status == "draft"

    # Corrected and sent: the warning does not block.
    sent = send(aarhus, url, url, **form(), action="submit")
    assert sent.status_code == 303
    session.refresh(application)
    assert application.status == "submitted" and application.version == 1
    html = text(aarhus.get(url))
    assert "Ansøgningen er sendt til SDS." in html and "Indsendt" in html
    assert f"/municipality/applications/{application.id}/withdraw" in html
    assert application.reference in text(aarhus.get("/municipality/"))


def test_save_draft_and_edit_it(aarhus, session):
    new = "/municipality/applications/new"
    send(aarhus, new, new, **form(institution_name="Kladde 1"), action="save")
    application = session.execute(select(Application)).scalar_one()
    url = f"/municipality/applications/{application.id}"
    assert 'value="Kladde 1"' in text(aarhus.get(url))
    send(aarhus, url, url, **form(institution_name="Kladde 2", fax="86 00 00 00"),
         action="save")
    session.refresh(application)
    assert application.institution_name == "Kladde 2" and application.fax == "86 00 00 00"
    assert [e.action for e in application.events] == ["created", "edited"]


def test_values_that_can_never_be_right_are_shown_again_and_nothing_is_stored(aarhus, session):
    new = "/municipality/applications/new"
    response = send(aarhus, new, new, **form(postal_code="80", owner_cvr="12345678",
                                             ownership="privat"), action="save")
    assert response.status_code == 422
    html = text(response)
    assert "Intet er gemt" in html and "four digits" in html and "modulus 11" in html
    assert 'value="Plejecenter Søndergaarden"' in html  # what was typed is kept
    assert session.execute(select(func.count()).select_from(Application)).scalar_one() == 0


def test_answer_a_request_for_information_and_send_again(aarhus, session, people):
    actor = actor_for(people["aarhus"])
    application = service.create_application(session, actor, form(), source="web")
    service.submit_application(session, actor, application.id)
    service.request_information(session, actor_for(people["sds"]), application.id,
                                "Hvad er telefonnummeret?")
    session.flush()
    url = f"/municipality/applications/{application.id}"
    html = text(aarhus.get(url))
    assert "SDS spørger:" in html and "Hvad er telefonnummeret?" in html
    assert "Send igen" in html
    send(aarhus, url, url, **form(phone="87 13 99 99"), action="submit")
    session.refresh(application)
    assert application.status == "submitted" and application.version == 2
    assert application.phone == "87 13 99 99"


def test_withdraw(aarhus, session, people):
    application = service.create_application(session, actor_for(people["aarhus"]), form(),
                                             source="web")
    session.flush()
    url = f"/municipality/applications/{application.id}"
    response = send(aarhus, url + "/withdraw", url, reason="Oprettet ved en fejl")
    assert response.status_code == 303
    session.refresh(application)
    assert application.status == "withdrawn"
    html = text(aarhus.get(url))
    assert "Ansøgningen er trukket tilbage." in html and "Oprettet ved en fejl" in html
    assert "/withdraw" not in html
    again = send(aarhus, url + "/withdraw", url)
    assert again.status_code == 303
    assert "Kan ikke" in text(aarhus.get(url))


def test_another_municipalitys_application_is_not_found(client, session, people):
    application = service.create_application(session, actor_for(people["aarhus"]), form(),
                                             source="web")
    session.flush()
    login(client, people["odense"].email)
    assert client.get(f"/municipality/applications/{application.id}").status_code == 404
    assert application.reference not in text(client.get("/municipality/"))


def test_change_application_form(aarhus, session):
    new = "/municipality/applications/new?kind=change&target=" + EXISTING_SI
    page = text(aarhus.get(new))
    assert f'value="{EXISTING_SI}"' in page
    send(aarhus, "/municipality/applications/new", new, **form(
        kind="change", target_sor_code=EXISTING_SI, institution_name="", street="",
        postal_code="", city="", institution_type="", ownership="", phone="86 12 34 56"),
        action="validate")
    application = session.execute(select(Application)).scalar_one()
    assert application.kind == "change" and application.target_sor_code == EXISTING_SI
    html = text(aarhus.get(f"/municipality/applications/{application.id}?valider=1"))
    assert "Ingen fejl" in html or "ingen fejl" in html


def test_english_pages(aarhus):
    html = text(aarhus.get("/municipality/applications/new?lang=en"))
    assert "Save draft" in html and "Validate" in html and "Name of the institution" in html


def test_a_change_form_keeps_the_successors_typed(aarhus, session):
    new = "/municipality/applications/new?kind=change"
    successors = f"{EXISTING_SI}, 12345671000016006"
    send(aarhus, "/municipality/applications/new", new,
         **form(kind="change", target_sor_code=EXISTING_SI, closing_date="2030-01-01",
                replaced_by=successors), action="save")
    application = session.execute(select(Application)).scalar_one()
    assert application.replaced_by == [EXISTING_SI, "12345671000016006"]
    url = f"/municipality/applications/{application.id}"
    assert f'value="{successors}"' in text(aarhus.get(url))  # shown as typed, saved again
    send(aarhus, url, url, **form(kind="change", target_sor_code=EXISTING_SI,
                                  closing_date="2030-01-01", replaced_by=successors),
         action="save")
    session.refresh(application)
    assert [e.action for e in application.events] == ["created"]  # nothing changed

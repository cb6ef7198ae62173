"""Applications made from a parsed mail (the service side of the mail intake)."""

from __future__ import annotations

import pytest

from applications import service
from tests.applications.helpers import bearer, build_register, new_nursing_home


@pytest.fixture
def registered(session):
    build_register(session)
    return session


def _fields(**overrides):
    fields = new_nursing_home(**overrides)
    fields.pop("contact_email")
    return fields


def test_a_complete_mail_is_submitted_with_its_attachments(client, registered):
    application = service.create_from_mail(
        registered, municipality_code="0751", sender="sor@aarhus.dk", fields=_fields(),
        attachments=[("plan ø.pdf", "application/pdf", b"%PDF-1.4 test")],
        mail_reference="<abc@aarhus.dk>",
    )
    assert application.status == "submitted" and application.version == 1
    assert application.source == "mail" and application.contact_email == "sor@aarhus.dk"
    assert "<abc@aarhus.dk>" in application.remarks
    assert [e.action for e in application.events] == ["created", "submitted"]
    assert application.events[0].actor == "mail:sor@aarhus.dk"
    (attachment,) = application.attachments
    assert attachment.size == len(b"%PDF-1.4 test") and attachment.filename == "plan ø.pdf"

    headers = bearer(registered, "municipality")
    url = f"/api/v1/applications/{application.id}/attachments/{attachment.id}"
    response = client.get(url, headers=headers)
    assert response.status_code == 200 and response.data == b"%PDF-1.4 test"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "UTF-8''plan%20%C3%B8.pdf" in response.headers["Content-Disposition"]
    assert client.get(url + "0", headers=headers).status_code == 404
    other = bearer(registered, "municipality", cvr="29189919", municipality="0461")
    assert client.get(url, headers=other).status_code == 404


def test_an_incomplete_mail_stays_a_draft_for_the_municipality(registered):
    application = service.create_from_mail(
        registered, municipality_code="0751", sender="sor@aarhus.dk",
        fields=_fields(phone=None, institution_type=None), attachments=[],
        mail_reference="<def@aarhus.dk>",
    )
    assert application.status == "draft" and application.version == 0


def test_a_mail_with_an_impossible_value_is_refused(registered):
    with pytest.raises(service.InvalidInput) as caught:
        service.create_from_mail(
            registered, municipality_code="0751", sender="sor@aarhus.dk",
            fields=_fields(ownership="privat", owner_cvr="12345678"), attachments=[],
            mail_reference="<ghi@aarhus.dk>",
        )
    assert "owner_cvr" in caught.value.errors

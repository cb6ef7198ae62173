"""Municipality contacts: who may apply by mail, and the add-contact command."""

from __future__ import annotations

import pytest

from applications import mail_service
from applications.mail_models import MunicipalityContact


def test_add_contact_lower_cases_and_finds_the_sender(session):
    contact = mail_service.add_contact(session, "751", " SOR@Aarhus.DK ", name="Kirsten")
    assert (contact.municipality_code, contact.email, contact.name) == (
        "0751", "sor@aarhus.dk", "Kirsten")
    assert mail_service.contact_for_sender(session, "Sor@aarhus.dk") is contact
    assert mail_service.contact_for_sender(session, "other@aarhus.dk") is None
    assert mail_service.contact_for_sender(session, None) is None


@pytest.mark.parametrize(
    "code, email, message",
    [
        ("9999", "a@b.dk", "9999 is not a Danish kommunekode"),
        ("07a1", "a@b.dk", "must contain digits only"),
        ("0751", "not-an-address", "is not an email address"),
        ("0751", "a@localhost", "is not an email address"),
        ("0751", "a b@c.dk", "is not an email address"),
    ],
)
def test_add_contact_refuses_bad_input(session, code, email, message):
    with pytest.raises(mail_service.ContactError, match=message):
        mail_service.add_contact(session, code, email)


def test_an_address_belongs_to_one_municipality(session):
    mail_service.add_contact(session, "0751", "sor@aarhus.dk")
    with pytest.raises(mail_service.ContactError, match="already a contact of municipality 0751"):
        mail_service.add_contact(session, "0101", "SOR@aarhus.dk")


def test_add_contact_command(runner, session):
    result = runner.invoke(
        args=["add-contact", "0751", "Sor@Aarhus.dk", "--name", "Kirsten Ølgaard"]
    )
    assert result.exit_code == 0, result.output
    assert "sor@aarhus.dk may now apply by mail for 0751 Aarhus" in result.output
    stored = session.query(MunicipalityContact).one()
    assert (stored.email, stored.name) == ("sor@aarhus.dk", "Kirsten Ølgaard")


def test_add_contact_command_fails_clearly(runner):
    result = runner.invoke(args=["add-contact", "1234", "sor@aarhus.dk"])
    assert result.exit_code == 1
    assert "Error: 1234 is not a Danish kommunekode" in result.output

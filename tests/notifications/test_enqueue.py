"""enqueue: every kind renders in Danish, text and HTML; bad input is refused clearly."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from notifications import mails
from notifications.models import OutboxMessage
from notifications.service import NotificationError, enqueue
from tests.notifications.conftest import INSTITUTION, SUBMITTED, approve, issued_context

CONTEXTS = {
    "application_received": {
        "reference": "A-2026-0007", "institution_name": INSTITUTION, "application_kind": "new",
        "municipality_name": "Ærø Kommune", "submitted_at": SUBMITTED,
    },
    "sor_code_issued": issued_context("institution", "A-2026-0007"),
    "change_approved": {
        "reference": "A-2026-0007", "sor_code": "900000011000016001",
        "institution_name": INSTITUTION, "recipient_role": "municipality",
        "changes": [
            {"field": "phone", "label": "Telefon", "old": None, "new": "62 52 11 11"},
            {"field": "name", "label": "Navn", "old": "Plejehjem Å", "new": INSTITUTION},
        ],
    },
    "application_rejected": {
        "reference": "A-2026-0007", "institution_name": INSTITUTION,
        "reason": "Institutionen findes allerede i SOR (søg på navn).",
        "municipality_name": "Ærø Kommune",
    },
    "information_requested": {
        "reference": "A-2026-0007", "institution_name": INSTITUTION,
        "reason": "Angiv venligst CVR-nummer og ejerforhold.\nOg åbningsdato.",
        "municipality_name": "Ærø Kommune",
    },
    "mail_unreadable": {
        "original_subject": "Ansøgning om SOR-kode – Ærø", "received_at": SUBMITTED,
        "reason": "Mailen havde ingen vedhæftet ansøgning.",
    },
}

SUBJECTS = {
    "application_received": f"Ansøgning modtaget: {INSTITUTION} (ansøgning A-2026-0007)",
    "sor_code_issued": f"SOR-kode tildelt: {INSTITUTION} (ansøgning A-2026-0007)",
    "change_approved": f"Ændring godkendt: {INSTITUTION} (ansøgning A-2026-0007)",
    "application_rejected": f"Ansøgning afvist: {INSTITUTION} (ansøgning A-2026-0007)",
    "information_requested": f"Flere oplysninger ønskes: {INSTITUTION} (ansøgning A-2026-0007)",
    "mail_unreadable": "Din mail kunne ikke læses: Ansøgning om SOR-kode – Ærø",
}


def test_the_contexts_cover_every_kind():
    assert set(CONTEXTS) == set(mails.KINDS) == set(SUBJECTS)


@pytest.mark.parametrize("kind", sorted(CONTEXTS))
def test_every_kind_is_rendered_in_danish_with_its_reference(session, kind):
    message = enqueue(session, kind=kind, to="kontakt@aeroe.dk", context=CONTEXTS[kind],
                      application_id=7 if kind != "mail_unreadable" else None)
    assert message.id is not None and message.status == "queued" and message.attempts == 0
    assert message.subject == SUBJECTS[kind]
    assert message.recipients == ["kontakt@aeroe.dk"]
    assert message.message_id.startswith("<") and message.message_id.endswith(">")
    assert "\n" not in message.subject
    if kind != "mail_unreadable":
        assert message.reference == "A-2026-0007" and message.application_id == 7
        for body in (message.body_text, message.body_html):
            assert "A-2026-0007" in body and INSTITUTION in body
    assert message.body_html.startswith("<!DOCTYPE html>")
    assert "<p>" not in message.body_text and "</p>" in message.body_html


def test_the_mail_says_what_happened(session):
    issued = approve(session)
    institution, municipality = (m.body_text for m in issued)
    assert "900000011000016001" in institution and "900000011000016001" in municipality
    assert institution.startswith(f"Kære {INSTITUTION}")
    assert municipality.startswith("Kære Ærø Kommune")
    assert "Vestergade 7, 5970 Ærøskøbing" in institution
    received = enqueue(session, kind="application_received", to="a@aeroe.dk",
                       context=CONTEXTS["application_received"])
    # 12:50 UTC is 13:50 in Copenhagen in November.
    assert "22. november 2026 kl. 13.50" in received.body_text
    change = enqueue(session, kind="change_approved", to="a@aeroe.dk",
                     context=CONTEXTS["change_approved"])
    assert "Telefon: (tom) → 62 52 11 11" in change.body_text
    assert ">Telefon</td>" in change.body_html


def test_html_is_escaped_and_the_subject_stays_one_line(session):
    context = {**issued_context("institution"),
               "institution_name": "<script>alert('x')</script>\r\nBcc: evil@example.com"}
    message = enqueue(session, kind="sor_code_issued", to="a@aeroe.dk", context=context)
    assert "<script>" not in message.body_html
    assert "&lt;script&gt;" in message.body_html
    assert "\n" not in message.subject and "\r" not in message.subject


def test_message_ids_are_unique_and_use_the_sender_domain(session):
    first, second = approve(session)
    assert first.message_id != second.message_id
    assert first.message_id.endswith("@localhost>")  # the default sender's domain


def test_the_reference_may_be_given_as_an_argument(session):
    context = dict(CONTEXTS["mail_unreadable"])
    message = enqueue(session, kind="mail_unreadable", to="x@example.dk", context=context,
                      reference="M-17")
    assert message.reference == "M-17" and "M-17" in message.body_text
    with pytest.raises(NotificationError, match="reference"):
        enqueue(session, kind="sor_code_issued", to="x@example.dk",
                context=issued_context("institution"), reference="B-1")


def test_several_recipients_without_repeats(session):
    message = enqueue(session, kind="sor_code_issued",
                      to=["a@aeroe.dk", "A@AEROE.DK", "Ærø Kommune <b@ærø.dk>"],
                      context=issued_context("municipality"))
    assert message.recipients == ["a@aeroe.dk", "Ærø Kommune <b@ærø.dk>"]


@pytest.mark.parametrize(
    ("kind", "context", "match"),
    [
        ("sor_code_mailed", {}, "unknown kind of mail 'sor_code_mailed'"),
        ("sor_code_issued", {**issued_context("institution"), "sor_code": None},
         "sor_code_issued needs sor_code"),
        ("application_received", {"reference": "A-1"},
         "needs institution_name, application_kind, municipality_name, submitted_at"),
        ("sor_code_issued", {**issued_context("institution"), "recipient_role": "region"},
         "recipient_role must be one of institution, municipality"),
        ("application_received", {**CONTEXTS["application_received"],
                                  "submitted_at": datetime(2026, 11, 22, 12, 0)},
         "submitted_at must be a timezone-aware datetime"),
        ("change_approved", {**CONTEXTS["change_approved"], "changes": "phone"},
         "changes must be a list"),
        ("sor_code_issued", {**issued_context("institution"), "address": "Vestergade 7"},
         "address must be a dict"),
    ],
)
def test_unknown_kinds_and_missing_context_are_refused(session, kind, context, match):
    with pytest.raises(NotificationError, match=match) as caught:
        enqueue(session, kind=kind, to="a@aeroe.dk", context=context)
    assert isinstance(caught.value, ValueError)
    assert session.scalar(select(OutboxMessage.id)) is None


@pytest.mark.parametrize(
    "to",
    ["", "   ", [], "not-an-address", "a@", "@aeroe.dk", "a b@aeroe.dk", "a@aeroe",
     "a@aeroe.dk, b@aeroe.dk", "a@aeroe.dk\r\nBcc: x@y.dk", "a..b@aeroe.dk",
     "æble@aeroe.dk", "a@-aeroe.dk", ["a@aeroe.dk", "nope"], 42],
)
def test_invalid_recipients_are_refused(session, to):
    with pytest.raises(mails.InvalidRecipient):
        enqueue(session, kind="sor_code_issued", to=to, context=issued_context("institution"))


@pytest.mark.parametrize(
    "to", ["a@aeroe.dk", "fornavn.efternavn+sor@region.dk", "Ærø Kommune <sundhed@aeroe.dk>",
           "post@ærø.dk", "root@localhost"],
)
def test_valid_recipients_are_accepted(to):
    assert mails.check_recipients(to) == [to]

"""Staff pages for the outbox (Udbakke) and the mail intake's triage queue (Indbakke)."""

from __future__ import annotations

import html
import re
from email.message import EmailMessage

import pytest
from sqlalchemy import update

from applications import mail_service, service
from applications.views import actor_for
from notifications.models import OutboxMessage
from tests.applications.helpers import new_nursing_home
from tests.pages.helpers import csrf_token, login, post, post_forms


@pytest.fixture
def staff(client, people):
    login(client, people["sds"].email)
    return client


def _text(response) -> str:
    return response.get_data(as_text=True)


def _submitted(session, people):
    actor = actor_for(people["aarhus"])
    application = service.create_application(session, actor, new_nursing_home(), source="web")
    service.submit_application(session, actor, application.id)  # queues the receipt
    session.flush()
    return application


def test_the_outbox_lists_mails_and_puts_a_failed_one_back(staff, session, people):
    application = _submitted(session, people)
    listing = _text(staff.get("/staff/outbox/"))
    assert "Udbakke" in listing and "1 mails" in listing and application.reference in listing
    message = session.query(OutboxMessage).one()
    session.execute(update(OutboxMessage).values(status="failed", attempts=10,
                                                 last_error="550 mailbox unavailable"))
    session.expire_all()
    failed = _text(staff.get("/staff/outbox/?status=failed"))
    assert "550 mailbox unavailable" in failed
    assert _text(staff.get("/staff/outbox/?status=sent")).count("<tr>") == 0

    page = _text(staff.get(f"/staff/outbox/{message.id}"))
    assert "Send igen" in page and html.escape(message.message_id) in page
    assert all('name="csrf_token"' in form for form in post_forms(page))
    done = post(staff, f"/staff/outbox/{message.id}/retry", page=f"/staff/outbox/{message.id}")
    assert done.status_code == 303
    session.expire_all()
    assert session.get(OutboxMessage, message.id).status == "queued"
    assert "Mailen er sat i kø igen." in _text(staff.get(done.headers["Location"]))


def test_the_outbox_is_for_staff_only(client, people):
    assert client.get("/staff/outbox/").status_code == 302  # to /login
    login(client, people["aarhus"].email)
    assert client.get("/staff/outbox/").status_code == 403


def _unreadable_mail(session):
    message = EmailMessage()
    message["From"] = "sor@aarhus.dk"
    message["To"] = "sorpost@sundhedsdata.dk"
    message["Subject"] = "Ny SOR-kode til Æblehaven"
    message["Message-ID"] = "<triage-1@aarhus.dk>"
    message.set_content("Hej, vi vil gerne have en SOR-kode til vores nye plejehjem Æblehaven.")
    mail_service.add_contact(session, "0751", "sor@aarhus.dk")
    mail = mail_service.record_mail(session, message.as_bytes(), mailbox="INBOX",
                                    uidvalidity=1, uid=1, received_at=None,
                                    max_size=10_000_000)
    session.commit()  # as fetch-mail does; the view's rollback must not undo it
    return mail, message.as_bytes()


def test_staff_read_and_resolve_a_mail_that_could_not_be_read(staff, session, people):
    mail, raw = _unreadable_mail(session)
    queue = _text(staff.get("/staff/mail/"))
    assert "Ny SOR-kode til Æblehaven" in queue and "Følger ikke skabelonen" in queue
    page = _text(staff.get(f"/staff/mail/{mail.id}"))
    assert "plejehjem Æblehaven" in page and "sor@aarhus.dk" in page
    downloaded = staff.get(f"/staff/mail/{mail.id}/raw")
    assert downloaded.data == raw and downloaded.mimetype == "message/rfc822"

    refused = staff.post(f"/staff/mail/{mail.id}/resolve",
                         data={"note": "", "csrf_token": csrf_token(page)})
    assert refused.status_code == 303
    assert "note" in _text(staff.get(refused.headers["Location"]))
    done = post(staff, f"/staff/mail/{mail.id}/resolve",
                {"note": "Ringet til kommunen; ansøgningen kommer i skabelonen."},
                page=f"/staff/mail/{mail.id}")
    assert done.status_code == 303
    resolved = _text(staff.get(done.headers["Location"]))
    assert "Markeret som løst." in resolved and re.search(r"Løst af user:", resolved)
    assert "0 mails" in _text(staff.get("/staff/mail/"))
    assert "1 mails" in _text(staff.get("/staff/mail/?status=resolved"))


def test_the_mail_queue_is_for_staff_only(client, session, people):
    mail, _ = _unreadable_mail(session)
    login(client, people["aarhus"].email)
    assert client.get("/staff/mail/").status_code == 403
    assert client.get(f"/staff/mail/{mail.id}/raw").status_code == 403

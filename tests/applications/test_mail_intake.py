"""fetch-mail against a real Dovecot server: applications, triage, exactly once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from applications import mail_service
from applications.mail_imap import ImapSettings, imap_utf7
from applications.mail_models import IncomingMail
from applications.mail_service import recording
from notifications.models import OutboxMessage
from sorregistry.config import DEFAULTS, from_environment
from tests.applications.helpers import bearer
from tests.applications.messages import (
    AARHUS,
    EXPECTED_FIELDS,
    FREE_FORM,
    html_template,
    mail,
    template_text,
)

PDF = b"%PDF-1.4\n\xff\xfe binary"


def _fetch(runner, *args: str):
    result = runner.invoke(args=["fetch-mail", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _ledger(session) -> list[IncomingMail]:
    session.expire_all()
    return list(session.execute(select(IncomingMail).order_by(IncomingMail.uid)).scalars())


def test_template_mails_become_applications(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    variants = {
        "qp": mail(template_text(), cte="quoted-printable"),
        "html": mail(html_template(), subtype="html", cte="base64"),
        "latin1": mail(template_text(), charset="iso-8859-1", cte="8bit"),
        "attachment": mail(
            template_text(), attachments=[("Plantegning Åbo.pdf", "application/pdf", PDF)]
        ),
    }
    uids = {name: imap_account.append(raw) for name, raw in variants.items()}

    output = _fetch(runner)

    assert "4 applications, 0 triage items, 0 already processed" in output
    assert len(created) == 4
    ledger = _ledger(session)
    for call, row, (name, raw) in zip(created, ledger, variants.items(), strict=True):
        expected = {**EXPECTED_FIELDS, "contact_email": AARHUS}
        assert call["fields"] == expected, name
        assert call["municipality_code"] == "0751"
        assert call["sender"] == AARHUS
        assert call["mail_reference"] == row.message_id
        assert (row.uid, row.outcome, row.raw) == (uids[name], "application", raw)
        assert row.triage_status is None and row.problems is None
    assert created[3]["attachments"] == [("Plantegning Åbo.pdf", "application/pdf", PDF)]
    assert [c["attachments"] for c in created[:3]] == [[], [], []]
    applications = [call["application"] for call in created]
    assert [row.application_id for row in ledger] == [a.id for a in applications]
    assert ledger[0].application_reference == applications[0].reference
    for application in applications:  # complete, so submitted at once
        assert (application.status, application.source, application.version) == (
            "submitted", "mail", 1)
        assert application.institution_name == "Plejecenter Åbo"
        assert application.contact_email == AARHUS and application.municipality_code == "0751"
        assert application.remarks.startswith("Åbner 1. marts.\nTo afdelinger: Æblehaven")
    assert [(a.filename, a.data) for a in applications[3].attachments] == [
        ("Plantegning Åbo.pdf", PDF)]
    assert ledger[3].attachments == [
        {"filename": "Plantegning Åbo.pdf", "content_type": "application/pdf", "size": len(PDF)}
    ]
    assert ledger[0].received_at is not None and ledger[0].mailbox == "INBOX"
    assert all("\\Seen" in flags for flags in imap_account.messages().values())


def test_free_form_mail_becomes_triage_with_the_raw_message(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    raw = mail(FREE_FORM, attachments=[("tegning.pdf", "application/pdf", PDF)])
    imap_account.append(raw)

    output = _fetch(runner)

    assert "0 applications, 1 triage item, 0 already processed" in output
    assert "triage item" in output and "(unreadable)" in output
    assert created == []
    [row] = _ledger(session)
    assert (row.outcome, row.triage_reason, row.triage_status) == ("triage", "unreadable", "open")
    assert row.raw == raw
    assert row.municipality_code == "0751"
    assert "does not follow the template" in row.problems[0]
    assert mail_service.mail_attachments(row)[0].data == PDF
    assert mail_service.open_triage(session) == [row]


def test_unknown_sender_is_flagged_never_trusted(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    raw = mail(template_text(), sender="someone@evil.example")
    imap_account.append(raw)

    output = _fetch(runner)

    assert "1 triage item" in output and "(unknown_sender)" in output
    assert created == []
    [row] = _ledger(session)
    assert (row.outcome, row.triage_reason) == ("triage", "unknown_sender")
    assert row.sender == "someone@evil.example" and row.municipality_code is None
    assert row.fields == EXPECTED_FIELDS  # kept for staff, no contact e-mail invented
    assert "not a registered municipality contact" in row.problems[0]
    assert row.application_id is None and row.raw == raw


def test_running_twice_creates_nothing_twice(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    imap_account.append(mail(template_text()))
    imap_account.append(mail(FREE_FORM))
    _fetch(runner)
    assert "0 applications, 0 triage items, 0 already processed" in _fetch(runner)
    assert len(created) == 1 and len(_ledger(session)) == 2


def test_recorded_but_not_flagged_is_only_flagged(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    """As after a run that died between its commit and the \\Seen flag."""
    uid = imap_account.append(mail(template_text()))
    _fetch(runner)
    connection = imap_account.connect()
    connection.select("INBOX")
    connection.uid("STORE", str(uid), "-FLAGS", "(\\Seen)")
    connection.logout()

    output = _fetch(runner)

    assert "0 applications, 0 triage items, 1 already processed" in output
    assert len(created) == 1 and len(_ledger(session)) == 1
    assert "\\Seen" in imap_account.messages()[uid]


def test_a_mail_a_person_has_opened_is_still_read(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    imap_account.append(mail(template_text()))
    _fetch(runner)
    imap_account.append(mail(template_text(Institutionens_navn="Plejecenter Bo")), seen=True)
    assert "1 application," in _fetch(runner)
    assert created[1]["fields"]["institution_name"] == "Plejecenter Bo"


def test_same_message_id_twice_in_the_mailbox_is_one_application(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    raw = mail(template_text(), message_id="<samme@aarhus.dk>")
    imap_account.append(raw)
    imap_account.append(raw.replace(b"Subject:", b"Delivered-To: sor2@sds.dk\r\nSubject:"))
    assert "1 application, 0 triage items, 1 already processed" in _fetch(runner)
    assert len(_ledger(session)) == 1


def test_mail_without_message_id_is_recognised_by_its_bytes(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    raw = mail(template_text(), message_id=None)
    uid = imap_account.append(raw)
    _fetch(runner)
    [row] = _ledger(session)
    assert row.message_id.startswith("sha256:")
    connection = imap_account.connect()
    connection.select("INBOX")
    connection.uid("STORE", str(uid), "-FLAGS", "(\\Seen)")
    connection.logout()
    assert "1 already processed" in _fetch(runner)
    assert len(created) == 1


def test_limit_leaves_the_rest_for_the_next_run(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    for name in ("A", "B", "C"):
        imap_account.append(mail(template_text(Institutionens_navn=f"Plejecenter {name}")))
    assert "2 applications, 0 triage items, 0 already processed; 1 left" in _fetch(
        runner, "--limit", "2"
    )
    assert "1 application," in _fetch(runner, "--limit", "2")
    names = [call["fields"]["institution_name"] for call in created]
    assert names == ["Plejecenter A", "Plejecenter B", "Plejecenter C"]


def test_oversized_mail_is_kept_raw_and_triaged(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    mail_app.config["IMAP_MAX_MESSAGE_SIZE"] = 20_000
    raw = mail(template_text(), attachments=[("scan.pdf", "application/pdf", PDF * 3000)])
    assert len(raw) > 20_000
    imap_account.append(raw)
    assert "1 triage item" in _fetch(runner)
    [row] = _ledger(session)
    assert (row.triage_reason, row.raw, row.size) == ("oversized", raw, len(raw))
    assert row.sender == AARHUS and row.municipality_code == "0751"
    assert row.fields is None and "not read automatically" in row.problems[0]
    assert created == []


def test_an_impossible_value_makes_triage_with_the_reason(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    imap_account.append(mail(template_text(Ejerforhold="privat", CVR="12345678")))
    output = _fetch(runner)
    assert "0 applications, 1 triage item" in output and "(application_error)" in output
    [row] = _ledger(session)
    assert row.outcome == "triage" and row.application_id is None
    assert "owner_cvr" in row.problems[0] and "modulus 11" in row.problems[0].lower()
    assert created == []


def test_a_failing_applications_service_makes_triage_not_a_stuck_mailbox(
    mail_app, runner, session, imap_account, aarhus_contact, monkeypatch
):
    def fail(session, **kwargs):
        session.add(mail_service.MunicipalityContact(municipality_code="0101", email="x@y.dk"))
        session.flush()  # half-done work that must be undone
        raise ValueError("institution type 42665001 needs a ydernummer")

    monkeypatch.setattr(recording, "_create_application", fail)
    imap_account.append(mail(template_text()))
    imap_account.append(mail(FREE_FORM))
    output = _fetch(runner)
    assert "0 applications, 2 triage items" in output and "(application_error)" in output
    first = _ledger(session)[0]
    assert first.problems == [
        "the applications service failed: ValueError: institution type 42665001 needs a "
        "ydernummer"
    ]
    assert mail_service.contact_for_sender(session, "x@y.dk") is None
    assert all("\\Seen" in flags for flags in imap_account.messages().values())


def test_uidvalidity_change_rescans_without_duplicates(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    """A mailbox with a Danish name, deleted and re-made: new UIDVALIDITY, same mails."""
    box = "Ans&APg-gninger"  # "Ansøgninger" in modified UTF-7
    mail_app.config["IMAP_MAILBOX"] = "Ansøgninger"
    imap_account.run("CREATE", box)
    first = [mail(template_text(Institutionens_navn=f"Center {n}")) for n in (1, 2)]
    for raw in first:
        imap_account.append(raw, mailbox=box)
    before = imap_account.uidvalidity(box)
    assert "2 applications" in _fetch(runner)

    imap_account.run("DELETE", box)
    imap_account.run("CREATE", box)
    for raw in [*first, mail(template_text(Institutionens_navn="Center 3"))]:
        imap_account.append(raw, mailbox=box)
    assert imap_account.uidvalidity(box) != before

    output = _fetch(runner)
    assert "1 application, 0 triage items, 2 already processed" in output
    assert [c["fields"]["institution_name"] for c in created] == ["Center 1", "Center 2",
                                                                 "Center 3"]
    assert {row.mailbox for row in _ledger(session)} == {"Ansøgninger"}
    assert "0 already processed" in _fetch(runner)  # the new cursor holds


def test_triage_items_are_resolved_with_a_note(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    imap_account.append(mail(FREE_FORM))
    imap_account.append(mail(template_text(), sender="ukendt@example.dk"))
    _fetch(runner)
    unreadable, unknown = mail_service.open_triage(session)
    assert mail_service.open_triage(session, reason="unknown_sender") == [unknown]

    resolved = mail_service.resolve_triage(
        session, unreadable.id, resolved_by="jens@sds.dk",
        note="Ringet til kommunen; ansøgning oprettet i hånden.", application_id=77,
    )
    assert (resolved.triage_status, resolved.resolved_by, resolved.application_id) == (
        "resolved", "jens@sds.dk", 77)
    assert resolved.resolved_at is not None
    assert mail_service.open_triage(session) == [unknown]
    with pytest.raises(mail_service.TriageError, match="was resolved by jens@sds.dk"):
        mail_service.resolve_triage(session, unreadable.id, resolved_by="x", note="y")
    with pytest.raises(mail_service.TriageError, match="needs a note"):
        mail_service.resolve_triage(session, unknown.id, resolved_by="x", note="  ")
    with pytest.raises(mail_service.TriageError, match="no triage item"):
        mail_service.resolve_triage(session, 10_000, resolved_by="x", note="y")


def test_wrong_password_fails_clearly(mail_app, runner, imap_account):
    mail_app.config["IMAP_PASSWORD"] = "wrong"
    result = runner.invoke(args=["fetch-mail"])
    assert result.exit_code == 1
    assert f"IMAP login as {imap_account.user} at" in result.output
    assert "failed" in result.output and "Traceback" not in result.output


def test_unconfigured_mailbox_fails_clearly(app, runner):
    result = runner.invoke(args=["fetch-mail"])
    assert result.exit_code == 1
    assert "the mailbox is not configured: set SOR_IMAP_HOST" in result.output


def test_missing_mailbox_fails_clearly(mail_app, runner):
    mail_app.config["IMAP_MAILBOX"] = "Findes ikke"
    result = runner.invoke(args=["fetch-mail"])
    assert result.exit_code == 1
    assert "cannot open the mailbox 'Findes ikke'" in result.output


def test_without_the_applications_service_nothing_is_recorded(
    mail_app, runner, session, imap_account, aarhus_contact, monkeypatch
):
    """A deployment without applications.service: stop, record nothing, leave mail unseen."""

    def missing(session, **kwargs):
        raise ModuleNotFoundError("No module named 'applications.service'")

    monkeypatch.setattr(recording, "_create_application", missing)
    imap_account.append(mail(FREE_FORM))
    uid = imap_account.append(mail(template_text()))
    result = runner.invoke(args=["fetch-mail"])
    assert result.exit_code == 1
    assert "the applications service cannot be loaded" in result.output
    assert f"UID {uid} and the messages after it are left unread" in result.output
    assert "Before the error: 0 applications, 1 triage item" in result.output
    assert len(_ledger(session)) == 1
    assert "\\Seen" not in imap_account.messages()[uid]


def test_settings_from_the_environment():
    config = {**DEFAULTS, **from_environment({
        "SOR_IMAP_HOST": "imap.sds.dk", "SOR_IMAP_USER": "sor", "SOR_IMAP_PASSWORD": "x",
        "SOR_IMAP_MAX_MESSAGE_SIZE": "1000", "SOR_IMAP_TIMEOUT": "5",
    })}
    settings = ImapSettings.from_config(config)
    assert (settings.port, settings.use_ssl, settings.timeout) == (993, True, 5.0)
    assert config["IMAP_MAX_MESSAGE_SIZE"] == 1000
    plain = ImapSettings.from_config({**config, "IMAP_PORT": 143})
    assert not plain.use_ssl and not plain.starttls
    forced = ImapSettings.from_config({**config, "IMAP_PORT": 1993, "IMAP_SSL": True})
    assert forced.use_ssl
    assert imap_utf7("Ansøgninger") == "Ans&APg-gninger"
    assert imap_utf7("A&B/Æøå") == "A&-B/&AMYA+ADl-"


def test_a_run_that_loses_the_race_counts_the_mail_as_already_processed(
    mail_app, runner, session, imap_account, aarhus_contact, created, monkeypatch
):
    """Two runs at once: the second's insert meets the unique Message-ID and is undone."""
    uid = imap_account.append(mail(template_text()))
    _fetch(runner)
    connection = imap_account.connect()
    connection.select("INBOX")
    connection.uid("STORE", str(uid), "-FLAGS", "(\\Seen)")
    connection.logout()
    real = mail_service.is_processed
    looked: list[str] = []

    def racing(session, message_id):
        looked.append(message_id)
        # The first look: the other run had not committed yet.
        return False if len(looked) == 1 else real(session, message_id)

    monkeypatch.setattr(mail_service, "is_processed", racing)
    output = _fetch(runner)
    assert "0 applications, 0 triage items, 1 already processed" in output
    assert len(created) == 1 and len(_ledger(session)) == 1
    assert "\\Seen" in imap_account.messages()[uid]


def test_staff_work_the_triage_queue_over_the_api(
    mail_app, client, runner, session, imap_account, aarhus_contact
):
    raw = mail(FREE_FORM)
    imap_account.append(raw)
    _fetch(runner)
    staff = bearer(session, "sds", cvr="29190909", name="SDS")
    queue = client.get("/api/v1/mail/triage", headers=staff).get_json()
    assert queue["total"] == 1
    [item] = queue["items"]
    assert item["triage_reason"] == "unreadable" and item["sender"] == AARHUS
    assert item["municipality_code"] == "0751" and item["problems"]
    downloaded = client.get(f"/api/v1/mail/{item['id']}/raw", headers=staff)
    assert downloaded.status_code == 200 and downloaded.data == raw
    assert downloaded.mimetype == "message/rfc822"

    municipality = bearer(session, "municipality", name="Aarhus")
    assert client.get("/api/v1/mail/triage", headers=municipality).status_code == 403
    url = f"/api/v1/mail/{item['id']}/resolve"
    assert client.post(url, json={"note": ""}, headers=staff).status_code == 422
    resolved = client.post(url, json={"note": "Ringet til Kirsten; hun sender skabelonen."},
                           headers=staff)
    assert resolved.status_code == 200, resolved.get_json()
    assert resolved.get_json()["triage_status"] == "resolved"
    assert resolved.get_json()["resolved_by"].startswith("client:")
    assert client.post(url, json={"note": "igen"}, headers=staff).status_code == 409
    assert client.get("/api/v1/mail/triage", headers=staff).get_json()["total"] == 0
    assert client.get("/api/v1/mail/triage?status=resolved",
                      headers=staff).get_json()["total"] == 1
    assert client.get("/api/v1/mail/999999", headers=staff).status_code == 404


def test_the_sender_of_an_unreadable_mail_is_told_but_an_unknown_sender_is_not(
    mail_app, runner, session, imap_account, aarhus_contact
):
    imap_account.append(mail(FREE_FORM, subject="Ny SOR-kode til Æblehaven"))
    imap_account.append(mail(template_text(), sender="someone@evil.example"))
    imap_account.append(mail(template_text(Ejerforhold="privat", CVR="12345678")))
    _fetch(runner)
    session.expire_all()
    notices = list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())
    assert [(m.kind, m.recipients) for m in notices] == [
        ("mail_unreadable", [AARHUS]), ("mail_unreadable", [AARHUS])]
    assert "Ny SOR-kode til Æblehaven" in notices[0].body_text
    assert "skabelonen" in notices[0].body_text
    assert "modulus 11" in notices[1].body_text

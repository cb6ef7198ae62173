"""Hostile mail never stops the intake: every message ends in the ledger, and none blocks
the ones after it (issue 12). A real Dovecot, both database back ends."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from applications import mail_message, mail_service, service
from applications.mail_headers import clean_text
from applications.mail_models import IncomingMail
from applications.mail_service import recording
from applications.models import Application, ApplicationAttachment
from notifications.models import OutboxMessage
from tests.applications import hostile
from tests.applications.helpers import bearer, build_register, new_nursing_home
from tests.applications.messages import AARHUS, FREE_FORM, mail, template_text
from tests.pages.conftest import FreshGlobalsClient
from tests.pages.helpers import login, make_users

ROOT = Path(__file__).resolve().parents[2]
SORREGISTRY = str(Path(sys.executable).with_name("sorregistry"))
CONTROL = [chr(c) for c in [*range(0, 9), *range(11, 32), 127]]


def _fetch(runner, *args: str) -> str:
    result = runner.invoke(args=["fetch-mail", *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def _ledger(session) -> list[IncomingMail]:
    session.expire_all()
    return list(session.execute(select(IncomingMail).order_by(IncomingMail.uid)).scalars())


def _ordinary(n: int) -> bytes:
    return mail(template_text(Institutionens_navn=f"Plejecenter {n}"))


def _printable(text: str | None) -> bool:
    return not any(ch in (text or "") for ch in CONTROL)


# -- the real command, the three poison mails between ordinary ones ---------------------


def _command(url: str, account, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "SOR_DATABASE_URL": url, "SOR_ENV": "development",
        "SOR_IMAP_HOST": account.host, "SOR_IMAP_PORT": str(account.port),
        "SOR_IMAP_USER": account.user, "SOR_IMAP_PASSWORD": account.password,
        "SOR_IMAP_SSL": "no",
    }
    return subprocess.run([SORREGISTRY, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=180)


def test_the_poison_mails_end_in_the_ledger_and_block_nothing(fresh_database, imap_account):
    added = _command(fresh_database, imap_account, "add-contact", "0751", AARHUS)
    assert added.returncode == 0, added.stderr
    raws = [_ordinary(1), hostile.crlf_display_name(), _ordinary(2),
            hostile.nested_multipart(), _ordinary(3), hostile.nul_subject(), _ordinary(4)]
    uids = [imap_account.append(raw) for raw in raws]

    first = _command(fresh_database, imap_account, "fetch-mail")

    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert "4 applications, 3 triage items, 0 already processed" in first.stdout
    engine = create_engine(fresh_database)
    try:
        with engine.connect() as connection:
            ledger = connection.execute(
                select(IncomingMail.uid, IncomingMail.outcome, IncomingMail.triage_reason,
                       IncomingMail.raw, IncomingMail.subject, IncomingMail.sender)
                .order_by(IncomingMail.uid)).all()
            notices = connection.execute(select(OutboxMessage.recipients,
                                                OutboxMessage.subject)).all()
            names = connection.execute(select(Application.institution_name)
                                       .order_by(Application.id)).scalars().all()
    finally:
        engine.dispose()
    assert [row.uid for row in ledger] == uids  # every one, in order, once
    assert [row.raw for row in ledger] == raws  # the bytes as received
    assert [(row.outcome, row.triage_reason) for row in ledger] == [
        ("application", None), ("triage", "unknown_sender"), ("application", None),
        ("triage", "unparseable"), ("application", None), ("triage", "unreadable"),
        ("application", None)]
    assert names == [f"Plejecenter {n}" for n in (1, 2, 3, 4)]
    assert ledger[1].sender == "a@b.dk"  # the display name's CR LF harms nothing
    assert ledger[5].subject == "a\ufffdb"  # the NUL, made visible, not stored
    assert (["sor@aarhus.dk"], "Din mail kunne ikke læses: a\ufffdb") in [
        (list(n.recipients), n.subject) for n in notices]  # the notice, written at last
    assert all("\\Seen" in flags for flags in imap_account.messages().values())

    second = _command(fresh_database, imap_account, "fetch-mail")
    assert second.returncode == 0, second.stderr
    assert "0 applications, 0 triage items, 0 already processed" in second.stdout


# -- the corpus -------------------------------------------------------------------------


def test_the_hostile_corpus_ends_in_the_ledger(
    mail_app, runner, session, imap_account, aarhus_contact
):
    corpus = {name: build() for name, build in hostile.CORPUS.items()}
    uids = {}
    for number, (name, raw) in enumerate(corpus.items()):
        imap_account.append(_ordinary(number))
        uids[name] = imap_account.append(raw)
    last = imap_account.append(_ordinary(99))

    output = _fetch(runner)

    assert "16 applications, 9 triage items, 0 already processed" in output
    ledger = {row.uid: row for row in _ledger(session)}
    assert len(ledger) == 2 * len(corpus) + 1 and last in ledger
    rows = {name: ledger[uid] for name, uid in uids.items()}
    for name, row in rows.items():
        assert row.raw == corpus[name], name  # kept whole, whatever it is
        assert _printable(row.subject) and _printable(row.sender), name
        assert all(_printable(problem) for problem in row.problems or []), name
    assert {name: row.triage_reason for name, row in rows.items()} == {
        "crlf": "unknown_sender",
        "deep": "unparseable",
        "nul": "unreadable",
        "forged": None,  # SOR_MAIL_SENDER_AUTH is "none" in tests; see test_mail_trust
        "huge": "oversized",
        "many_parts": "unknown_sender",
        "invalid_charsets": "unreadable",
        "attachment_names": None,
        "subject_injection": "unreadable",
        "eight_bit_headers": None,
        "empty": "unknown_sender",
        "headers_only": "unreadable",
    }
    assert rows["subject_injection"].subject == "Hej Bcc: victim@example.dk body"
    assert rows["eight_bit_headers"].subject.startswith("Ansøgning om SOR-kode, Æblehaven")
    assert rows["invalid_charsets"].subject == "=?x-bogus?q?Ans=F8gning?="
    assert rows["empty"].message_id.startswith("sha256:")
    notices = session.execute(select(OutboxMessage)).scalars().all()
    assert all("\n" not in n.subject and "\r" not in n.subject for n in notices)
    assert {r for n in notices for r in n.recipients} == {AARHUS}
    assert "0 applications, 0 triage items, 0 already processed" in _fetch(runner)


def test_attachment_names_are_made_safe_on_the_way_in(
    mail_app, client, runner, session, imap_account, aarhus_contact
):
    imap_account.append(hostile.hostile_attachment_names())
    _fetch(runner)
    [row] = _ledger(session)
    application = session.get(Application, row.application_id)
    names = [a.filename for a in application.attachments]
    assert names[:3] == ["plan X-Evil: 1.zip", "passwd", "fakturafdp.exe"]
    assert len(names[3]) == 255 and names[3].endswith(".zip")
    assert [a["filename"] for a in row.attachments] == names
    staff = bearer(session, "sds", cvr="29190909", name="SDS")
    for attachment in application.attachments:
        response = client.get(f"/api/v1/applications/{application.id}/attachments/"
                              f"{attachment.id}", headers=staff)
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment;")


def test_an_attachment_stored_with_a_line_break_in_its_name_downloads(client, session):
    """Names stored before the intake cleaned them: the download cleans them again."""
    build_register(session)
    application = service.create_from_mail(
        session, municipality_code="0751", sender=AARHUS, fields=new_nursing_home(),
        attachments=[], mail_reference="<old@aarhus.dk>")
    stored = ApplicationAttachment(application=application, filename="plan\r\nX: 1.pdf",
                                   content_type="application/pdf", size=3, sha256="0" * 64,
                                   data=b"PDF")
    session.add(stored)
    session.flush()
    response = client.get(f"/api/v1/applications/{application.id}/attachments/{stored.id}",
                          headers=bearer(session, "municipality"))
    assert response.status_code == 200 and response.data == b"PDF"
    disposition = response.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert 'filename="plan X: 1.pdf"' in disposition


# -- whatever fails, the message is recorded and the run goes on ----------------------


def test_a_mail_whose_handling_fails_is_recorded_as_failed(
    mail_app, runner, session, imap_account, aarhus_contact, monkeypatch
):
    real = recording.parse_mail

    def breaks_on_one(raw: bytes, **kwargs):
        if b"Plejecenter Brud" in raw:
            raise RuntimeError("the database said no to this row")
        return real(raw, **kwargs)

    monkeypatch.setattr(recording, "parse_mail", breaks_on_one)
    before = imap_account.append(_ordinary(1))
    broken_raw = mail(template_text(Institutionens_navn="Plejecenter Brud"))
    broken = imap_account.append(broken_raw)
    after = imap_account.append(_ordinary(2))

    output = _fetch(runner)

    assert "2 applications, 1 triage item" in output and "(failed)" in output
    ledger = {row.uid: row for row in _ledger(session)}
    assert (ledger[before].outcome, ledger[after].outcome) == ("application", "application")
    failed = ledger[broken]
    assert (failed.outcome, failed.triage_reason, failed.raw) == ("triage", "failed",
                                                                  broken_raw)
    assert failed.problems == ["the mail could not be handled: RuntimeError: the database "
                               "said no to this row"]
    assert failed.sender == AARHUS and failed.subject == "Ansøgning om SOR-kode"
    assert session.execute(select(Application).order_by(Application.id)
                           ).scalars().all()[-1].institution_name == (
        "Plejecenter 2")  # nothing of the failed one
    assert "0 applications, 0 triage items, 0 already processed" in _fetch(runner)


def test_a_mail_that_cannot_even_be_recorded_is_left_for_the_next_run(
    mail_app, runner, session, imap_account, aarhus_contact, monkeypatch
):
    def never(*args, **kwargs):
        raise RuntimeError("no failure record either")

    real = recording.parse_mail
    monkeypatch.setattr(recording, "parse_mail",
                        lambda raw, **kw: never() if b"Brud" in raw else real(raw, **kw))
    monkeypatch.setattr(mail_service, "record_failure", never)
    broken = imap_account.append(mail(template_text(Institutionens_navn="Plejecenter Brud")))
    after = imap_account.append(_ordinary(2))

    output = _fetch(runner)

    assert "1 application, 0 triage items" in output
    assert "1 could not be recorded, left for the next run" in output
    assert f"UID {broken}: could not be recorded (RuntimeError" in output
    assert [row.uid for row in _ledger(session)] == [after]
    assert "\\Seen" not in imap_account.messages()[broken]  # not blocked: left for later

    monkeypatch.undo()
    assert "1 application, 0 triage items, 0 already processed" in _fetch(runner)
    assert [row.uid for row in _ledger(session)] == [broken, after]


def test_the_parser_giving_up_is_caught_whatever_the_limits(monkeypatch):
    """The limits on parts keep the recursion away; should they not, it is still caught."""
    monkeypatch.setattr(mail_message, "MAX_PARTS", 10**9)
    monkeypatch.setattr(mail_message, "MAX_MULTIPARTS", 10**9)
    parsed = mail_message.parse_mail(hostile.nested_multipart(5000))
    assert parsed.error is not None and parsed.error.startswith("RecursionError")
    assert not parsed.readable and parsed.sender == AARHUS and parsed.subject == "deep"


@pytest.mark.parametrize("text, multiline, cleaned", [
    ("a\x00b", False, "a\ufffdb"),
    ("a\r\nb\tc\nd", False, "a b c d"),
    ("a\r\nb\rc\x07", True, "a\nb\nc\ufffd"),
    ("\udce6\udcf8", False, "\ufffd\ufffd"),  # 8-bit bytes that are no UTF-8
    ("\udcc3\udca6", False, "æ"),  # ... and some that are
])
def test_clean_text(text, multiline, cleaned):
    assert clean_text(text, multiline=multiline) == cleaned


# -- the same Message-ID, other content ------------------------------------------------


def test_a_reused_message_id_with_other_content_is_kept_for_triage(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    first = mail(template_text(), message_id="<samme@aarhus.dk>")
    other = mail(FREE_FORM, message_id="<samme@aarhus.dk>")
    imap_account.append(first)
    imap_account.append(first.replace(b"Subject:", b"Delivered-To: sor2@sds.dk\r\nSubject:"))
    uid = imap_account.append(other)

    output = _fetch(runner)

    assert "1 application, 1 triage item, 1 already processed" in output
    ledger = _ledger(session)
    assert [row.uid for row in ledger] == [ledger[0].uid, uid]
    reused = ledger[1]
    assert (reused.triage_reason, reused.raw) == ("message_id_reused", other)
    assert reused.message_id.startswith("sha256:")
    assert f"mail {ledger[0].id} in the ledger has the Message-ID <samme@aarhus.dk>" in (
        reused.problems[0])
    assert len(created) == 1
    assert "0 applications, 0 triage items, 0 already processed" in _fetch(runner)


# -- the rate per sender ----------------------------------------------------------------


def test_more_than_the_hourly_limit_from_one_sender_goes_to_triage(
    mail_app, runner, session, imap_account, aarhus_contact, created
):
    mail_app.config["MAIL_MAX_PER_SENDER_HOUR"] = 3
    for n in range(1, 6):
        imap_account.append(_ordinary(n))

    # Counted from the ledger: two runs count together.
    assert "2 applications, 0 triage items" in _fetch(runner, "--limit", "2")
    output = _fetch(runner)

    assert "1 application, 2 triage items" in output and "(rate_limited)" in output
    ledger = _ledger(session)
    assert [row.triage_reason for row in ledger] == [None, None, None, "rate_limited",
                                                     "rate_limited"]
    assert "3 mails from sor@aarhus.dk in the hour before this one" in ledger[3].problems[0]
    assert len(created) == 3
    notices = session.execute(select(OutboxMessage.kind)).scalars().all()
    assert "mail_unreadable" not in notices  # a flood is answered by no one


def test_the_hour_is_the_hour_before_the_mail_arrived(app, session, aarhus_contact):
    now = datetime.now(UTC)

    def record(n: int, at: datetime) -> IncomingMail:
        return mail_service.record_mail(
            session, _ordinary(n), mailbox="INBOX", uidvalidity=1, uid=n, received_at=at,
            max_size=10**7, max_per_sender_hour=2)

    assert record(1, now - timedelta(hours=3)).outcome == "application"
    assert record(2, now - timedelta(minutes=61)).outcome == "application"
    assert record(3, now - timedelta(minutes=50)).outcome == "application"
    assert record(4, now).outcome == "application"  # 61 minutes ago is outside the hour
    assert record(5, now).triage_reason == "rate_limited"


def test_a_mail_of_no_bytes_at_all_is_recorded(app, session):
    """IMAP servers refuse to store one (the corpus's "empty" mail is a lone CR LF);
    the intake records it all the same."""
    recorded = mail_service.record_mail(session, b"", mailbox="INBOX", uidvalidity=1, uid=1,
                                        received_at=None, max_size=10**7)
    assert (recorded.triage_reason, recorded.raw, recorded.sender) == (
        "unknown_sender", b"", None)
    assert recorded.message_id.startswith("sha256:")


def test_staff_can_open_every_hostile_mail(app, session, aarhus_contact):
    """The triage pages read the stored bytes again: none of them may fail on them."""
    people = make_users(session)
    recorded = [mail_service.record_mail(session, build(), mailbox="INBOX", uidvalidity=1,
                                         uid=uid, received_at=None, max_size=10**7)
                for uid, build in enumerate(hostile.CORPUS.values(), start=1)]
    session.commit()
    app.test_client_class = FreshGlobalsClient
    staff = app.test_client()
    login(staff, people["sds"].email)
    queue = staff.get("/staff/mail/").get_data(as_text=True)
    assert "Kan ikke læses" in queue and "Ukendt afsender" in queue
    for mail_row in recorded:
        if mail_row.outcome == "triage":
            page = staff.get(f"/staff/mail/{mail_row.id}")
            assert page.status_code == 200, (mail_row.triage_reason, mail_row.subject)

"""Killing fetch-mail mid-batch loses and duplicates nothing (real process, real servers).

The runs that die are tests/support/mail_crash.py: the intake as the command runs it,
in a process of its own, ended with os._exit at a checkpoint of fetch_mail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import create_engine, select

from applications import mail_service
from applications.mail_imap import ImapSettings
from applications.mail_intake import fetch_mail
from applications.mail_models import IncomingMail
from applications.models import Application
from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.messages import AARHUS, FREE_FORM, mail, template_text
from tests.support import mail_crash
from tests.support.dovecot import Account, _free_port

ROOT = Path(__file__).resolve().parents[2]
SORREGISTRY = str(Path(sys.executable).with_name("sorregistry"))


def _env(url: str, account, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SOR_DATABASE_URL": url,
        "SOR_ENV": "development",
        "SOR_IMAP_HOST": account.host,
        "SOR_IMAP_PORT": str(account.port),
        "SOR_IMAP_USER": account.user,
        "SOR_IMAP_PASSWORD": account.password,
        "SOR_IMAP_SSL": "no",
        **extra,
    }


def _fetch(url: str, account, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    """``sorregistry fetch-mail``; with *crash* ("before-flag:3"), the same intake dying there."""
    command = ([sys.executable, "-m", mail_crash.__name__, crash] if crash
               else [SORREGISTRY, "fetch-mail"])
    return subprocess.run(
        command, env=_env(url, account), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def _state(url: str):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ledger = connection.execute(
                select(IncomingMail.message_id, IncomingMail.uid, IncomingMail.outcome,
                       IncomingMail.application_id).order_by(IncomingMail.uid)
            ).all()
            applications = connection.execute(
                select(Application.id, Application.institution_name, Application.status,
                       Application.remarks).order_by(Application.id)
            ).all()
        return ledger, applications
    finally:
        engine.dispose()


def test_killed_mid_batch_then_rerun_loses_and_duplicates_nothing(fresh_database, imap_account):
    added = subprocess.run(
        [SORREGISTRY, "add-contact", "0751", AARHUS], env=_env(fresh_database, imap_account),
        capture_output=True, text=True, timeout=120,
    )
    assert added.returncode == 0, added.stderr
    raws = [
        mail(template_text(Institutionens_navn="Center 1")),
        mail(FREE_FORM),
        mail(template_text(Institutionens_navn="Center 2")),
        mail(template_text(Institutionens_navn="Center 3"), sender="ukendt@example.dk"),
        mail(template_text(Institutionens_navn="Center 4")),
        mail(template_text(Institutionens_navn="Center 5"), message_id=None),
    ]
    uids = [imap_account.append(raw) for raw in raws]

    # Dies after committing the 3rd message, before flagging it.
    first = _fetch(fresh_database, imap_account, crash="before-flag:3")
    assert first.returncode == mail_crash.EXIT_STATUS == 86, first.stderr
    ledger, calls = _state(fresh_database)
    assert [row.uid for row in ledger] == uids[:3]
    seen = {uid for uid, flags in imap_account.messages().items() if "\\Seen" in flags}
    assert seen == set(uids[:2])

    # Dies with the 2nd new message (the 5th) recorded but not committed.
    second = _fetch(fresh_database, imap_account, crash="before-commit:2")
    assert second.returncode == mail_crash.EXIT_STATUS, second.stderr
    assert "already processed" in second.stdout  # the 3rd, only flagged
    ledger, calls = _state(fresh_database)
    assert [row.uid for row in ledger] == uids[:4]
    seen = {uid for uid, flags in imap_account.messages().items() if "\\Seen" in flags}
    assert seen == set(uids[:4])

    third = _fetch(fresh_database, imap_account)
    assert third.returncode == 0, third.stderr
    assert "2 applications, 0 triage items, 0 already processed" in third.stdout

    ledger, calls = _state(fresh_database)
    assert [row.uid for row in ledger] == uids  # each message exactly once
    assert len({row.message_id for row in ledger}) == len(raws)
    assert [row.outcome for row in ledger] == [
        "application", "triage", "application", "triage", "application", "application"]
    # One real application per application row, none from the rolled-back attempt.
    assert [a.id for a in calls] == [
        row.application_id for row in ledger if row.outcome == "application"]
    assert all(row.message_id in a.remarks for a, row in zip(
        calls, [row for row in ledger if row.outcome == "application"], strict=True))
    assert [a.institution_name for a in calls] == [
        "Center 1", "Center 2", "Center 4", "Center 5"]
    assert {a.status for a in calls} == {"submitted"}
    assert all("\\Seen" in flags for flags in imap_account.messages().values())

    fourth = _fetch(fresh_database, imap_account)
    assert "0 applications, 0 triage items, 0 already processed" in fourth.stdout
    assert len(_state(fresh_database)[0]) == len(raws)


def test_the_checkpoints_come_before_each_commit_and_each_flag(
    mail_app, session, imap_account, aarhus_contact
):
    """The seam the crash test kills at: per new message, before its commit, then before
    its \\Seen flag; a message already in the ledger passes no checkpoint."""
    first = imap_account.append(mail(template_text(Institutionens_navn="Center 1")))
    fetch_mail(session, ImapSettings.from_config(mail_app.config), max_size=10**6)
    uids = [imap_account.append(mail(template_text(Institutionens_navn=f"Center {n}")))
            for n in (2, 3)]
    connection = imap_account.connect()  # the first one again unseen: only flagged
    connection.select("INBOX")
    connection.uid("STORE", str(first), "-FLAGS", "(\\Seen)")
    connection.logout()
    calls: list[tuple[str, int, bool]] = []

    def checkpoint(point: str, number: int) -> None:
        seen = "\\Seen" in imap_account.messages()[uids[number - 1]]
        calls.append((point, number, seen))

    result = fetch_mail(session, ImapSettings.from_config(mail_app.config), max_size=10**6,
                        checkpoint=checkpoint)
    assert (result.applications, result.already) == (2, 1)
    assert calls == [("before-commit", 1, False), ("before-flag", 1, False),
                     ("before-commit", 2, False), ("before-flag", 2, False)]


def test_unreachable_server_is_a_clean_error(fresh_database, dovecot_server):
    nowhere = Account(host="127.0.0.1", port=_free_port(), user="sor", password="x")
    result = subprocess.run(
        [SORREGISTRY, "fetch-mail"], env=_env(fresh_database, nowhere),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert f"Error: cannot connect to the IMAP server 127.0.0.1:{nowhere.port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_wrong_password_is_a_clean_error(fresh_database, imap_account):
    result = subprocess.run(
        [SORREGISTRY, "fetch-mail"],
        env=_env(fresh_database, imap_account, SOR_IMAP_PASSWORD="wrong"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert f"Error: IMAP login as {imap_account.user}" in result.stderr
    assert "AUTHENTICATIONFAILED" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_sigterm_ends_fetch_mail_after_the_mail_under_way(tmp_path, imap_account):
    """The supervisor's SIGTERM (systemd stopping the timer's run): the mail being read is
    recorded and flagged, the run stops cleanly (exit 0), the next run reads the rest.
    One back end: signals are the process's business, not the database's."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        mail_service.add_contact(db.session, "0751", AARHUS)
        db.session.commit()
    count = 25
    uids = [imap_account.append(mail(template_text(Institutionens_navn=f"Center {n}")))
            for n in range(count)]
    run = subprocess.Popen(
        [SORREGISTRY, "fetch-mail"], env=_env(url, imap_account, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = run.stdout.readline()  # the first mail is in: stop now
        assert first.strip(), run.stderr.read()
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert "Traceback" not in err and "stopped (a signal)" in out
    ledger, _ = _state(url)
    recorded = [row.uid for row in ledger]
    assert 1 <= len(recorded) < count and recorded == uids[:len(recorded)]
    seen = {uid for uid, flags in imap_account.messages().items() if "\\Seen" in flags}
    assert seen == set(recorded)  # each recorded mail flagged, none half done

    app.config.update(IMAP_HOST=imap_account.host, IMAP_PORT=imap_account.port,
                      IMAP_USER=imap_account.user, IMAP_PASSWORD=imap_account.password,
                      IMAP_SSL=False, MAIL_SENDER_AUTH="none")
    with app.app_context():
        rest = fetch_mail(db.session, ImapSettings.from_config(app.config), max_size=10**6)
        db.engine.dispose()
    assert (rest.applications, rest.already) == (count - len(recorded), 0)
    assert [row.uid for row in _state(url)[0]] == uids

"""Fixtures for the mail intake: a real Dovecot IMAP server, one account per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from applications import mail_service
from applications.mail_service import recording
from tests.applications.messages import AARHUS
from tests.support import dovecot

_accounts = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[dovecot.Server]:
    if not dovecot.available():
        pytest.skip(
            "Dovecot is not installed (/usr/sbin/dovecot is missing); `make test` installs "
            "Debian's dovecot-imapd"
        )
    server = dovecot.Server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_account(dovecot_server: dovecot.Server) -> dovecot.Account:
    """A fresh IMAP user with an empty INBOX."""
    return dovecot_server.add_account(f"sor{next(_accounts)}")


@pytest.fixture
def mail_app(app: Flask, imap_account: dovecot.Account) -> Flask:
    """The app reading *imap_account*'s mailbox."""
    app.config.update(
        IMAP_HOST=imap_account.host,
        IMAP_PORT=imap_account.port,
        IMAP_USER=imap_account.user,
        IMAP_PASSWORD=imap_account.password,
        IMAP_SSL=False,
    )
    return app


@pytest.fixture
def aarhus_contact(session):
    """sor@aarhus.dk may apply for 0751 Aarhus (committed: the intake commits too)."""
    contact = mail_service.add_contact(session, "0751", AARHUS, name="Kirsten Ølgaard")
    session.commit()
    return contact


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the intake passed to applications.service.create_from_mail, call by call.

    A spy, not a stand-in: each call goes on to the real service, which makes
    the real application; the list records the arguments and, under
    ``"application"``, what came back.
    """
    calls: list[dict[str, Any]] = []
    real = recording._create_application

    def spy(session, **kwargs: Any) -> Any:
        application = real(session, **kwargs)
        calls.append({**kwargs, "application": application})
        return application

    monkeypatch.setattr(recording, "_create_application", spy)
    return calls

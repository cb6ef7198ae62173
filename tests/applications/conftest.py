"""Fixtures for the mail intake: a real Dovecot IMAP server, one account per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from applications import mail_service
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
    """What the intake passes through its seam to applications.service.create_from_mail.

    Each call is recorded; the "application" returned has the id and reference
    the real one would have.
    """
    calls: list[dict[str, Any]] = []

    def record(session, **kwargs: Any) -> SimpleNamespace:
        calls.append(kwargs)
        return SimpleNamespace(id=1000 + len(calls), reference=f"ANS-2026-{len(calls):04d}")

    monkeypatch.setattr(mail_service, "_create_application", record)
    return calls

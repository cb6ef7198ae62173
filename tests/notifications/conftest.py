"""Fixtures for the outbox: a real SMTP server (aiosmtpd) and apps that really commit."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from notifications.service import enqueue
from sorregistry import create_app
from sorregistry.extensions import db

SENDER = "SOR <sorpost@sundhedsdata.example>"
INSTITUTION = "Plejehjemmet Ærøskøbing Å"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore


@dataclass
class Handler:
    """Stores every message; refuses the recipients in *refuse* with 550; calls
    *on_received* (in the server's thread) after storing one."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    delay: float = 0.0
    on_received: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            time.sleep(self.delay)  # a slow server: workers overlap
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        with self.lock:
            self.received.append(received)
        if self.on_received is not None:
            self.on_received(received)
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 at a fixed port, which can be down and come up."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = Handler()
        self.controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """A port with nothing listening; ``start()`` brings the server up on it."""
    server = SmtpServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp(smtp_down: SmtpServer) -> SmtpServer:
    smtp_down.start()
    return smtp_down


def settings(database_url: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_DEFAULT_SENDER": SENDER,
        # TESTING makes Flask-Mail suppress sending; these tests want the real thing.
        "MAIL_SUPPRESS_SEND": False,
        "NOTIFY_SMTP_TIMEOUT_SECONDS": 10,
        **extra,
    }


# The installed ``sorregistry`` command, beside this Python, for tests that run it as a process.
COMMAND = Path(sys.executable).with_name("sorregistry")


def command_environment(database_url: str, smtp_port: int) -> dict[str, str]:
    """The environment of a real ``sorregistry`` process: SOR_ settings only, as deployed."""
    return {
        **os.environ,
        "SOR_DATABASE_URL": database_url,
        "SOR_SECRET_KEY": "not-secret-test-key",
        "SOR_MAIL_SERVER": "127.0.0.1",
        "SOR_MAIL_PORT": str(smtp_port),
        "SOR_MAIL_DEFAULT_SENDER": SENDER,
    }


@pytest.fixture
def make_app(fresh_database: str, smtp_down: SmtpServer) -> Iterator[Callable[..., Flask]]:
    """Apps on a database of their own (each commit is real) and the test's SMTP port."""
    apps: list[Flask] = []

    def make(**extra: Any) -> Flask:
        app = create_app(settings(fresh_database, smtp_down.port, **extra))
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def issued_context(recipient_role: str, reference: str = "A-2026-0042") -> dict[str, Any]:
    return {
        "reference": reference,
        "sor_code": "900000011000016001",
        "institution_name": INSTITUTION,
        "address": {"street": "Vestergade 7", "postal_code": "5970", "city": "Ærøskøbing"},
        "municipality_name": "Ærø Kommune",
        "recipient_role": recipient_role,
    }


def approve(session: Any, reference: str = "A-2026-0042", application_id: int = 42) -> list:
    """What approving a new-code application enqueues: one mail each to the
    institution and to the municipality."""
    return [
        enqueue(session, kind="sor_code_issued", to="leder@plejehjem-aeroe.dk",
                context=issued_context("institution", reference), application_id=application_id),
        enqueue(session, kind="sor_code_issued", to="Ærø Kommune <sundhed@aeroe.dk>",
                context=issued_context("municipality", reference), application_id=application_id),
    ]


SUBMITTED = datetime(2026, 11, 22, 12, 50, tzinfo=UTC)

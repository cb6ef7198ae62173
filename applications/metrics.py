"""The mail intake's figures for ``/metrics``: the ledger's mails by what became of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from applications.mail_models import IncomingMail
from sorregistry import metrics
from sorregistry.database import DbSession

# A ledger row's state: an application, or a triage item open or resolved.
STATES = ("application", "triage_open", "triage_resolved")


def collect(session: DbSession) -> Iterator[Any]:
    counts = dict.fromkeys(STATES, 0)
    rows = session.execute(
        select(IncomingMail.outcome, IncomingMail.triage_status, func.count())
        .group_by(IncomingMail.outcome, IncomingMail.triage_status))
    for outcome, triage_status, count in rows:
        state = outcome if outcome != "triage" else f"triage_{triage_status or 'open'}"
        counts[state] = counts.get(state, 0) + count
    family = GaugeMetricFamily("sor_mail_intake_mails",
                               "Mails in the intake ledger by state", labels=["state"])
    for state, count in counts.items():
        family.add_metric([state], count)
    yield family


def init_app(app: Flask) -> None:
    metrics.register_collector(app, "mail_intake", collect)

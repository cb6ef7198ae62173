"""``sorregistry fetch-mail`` with the application seam recording into a table.

Run as ``python -m tests.support.fetch_mail_recording [fetch-mail options]``.
The same command as the ``sorregistry`` executable, except that
``applications.mail_service._create_application`` — the one call into the
applications service, which this branch does not have yet — inserts a row
into ``seam_calls`` in the intake's own transaction (as the real service
would insert its application) and returns it as the application. A test can
then see what was passed, and that a crash rolled it back.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from sqlalchemy import text

from applications import mail_service
from sorregistry.cli import main

SEAM_CALLS_DDL = {
    "sqlite": "CREATE TABLE seam_calls (id INTEGER PRIMARY KEY, mail_reference TEXT NOT NULL,"
    " municipality_code TEXT NOT NULL, sender TEXT NOT NULL, fields TEXT NOT NULL,"
    " attachments TEXT NOT NULL)",
    "postgresql": "CREATE TABLE seam_calls (id SERIAL PRIMARY KEY, mail_reference TEXT NOT NULL,"
    " municipality_code TEXT NOT NULL, sender TEXT NOT NULL, fields TEXT NOT NULL,"
    " attachments TEXT NOT NULL)",
}


def _record(session, **kwargs: Any) -> SimpleNamespace:
    row_id = session.execute(
        text(
            "INSERT INTO seam_calls (mail_reference, municipality_code, sender, fields,"
            " attachments) VALUES (:mail_reference, :municipality_code, :sender, :fields,"
            " :attachments) RETURNING id"
        ),
        {
            "mail_reference": kwargs["mail_reference"],
            "municipality_code": kwargs["municipality_code"],
            "sender": kwargs["sender"],
            "fields": json.dumps(kwargs["fields"], ensure_ascii=False, sort_keys=True),
            "attachments": json.dumps([[n, t, len(d)] for n, t, d in kwargs["attachments"]]),
        },
    ).scalar_one()
    return SimpleNamespace(id=row_id, reference=f"ANS-{row_id}")


if __name__ == "__main__":
    mail_service._create_application = _record  # type: ignore[assignment]
    main(prog_name="sorregistry")

"""The mail intake as ``sorregistry fetch-mail`` runs it, dying at one checkpoint.

    python -m tests.support.mail_crash before-flag:3

builds the app from the SOR_ environment, reads the mailbox with
:func:`applications.mail_intake.fetch_mail` and ends the process with
``os._exit(EXIT_STATUS)`` - no clean-up, no rollback, no IMAP logout, as a kill
would - at that point of the Nth new message. The crash-recovery test
(tests/applications/test_mail_crash.py) runs it from the repository's root; the
delivery code knows nothing of it but the checkpoint parameter.
"""

from __future__ import annotations

import os
import sys
from typing import get_args

from applications.mail_imap import ImapSettings
from applications.mail_intake import Checkpoint, CheckpointName, fetch_mail
from sorregistry import create_app
from sorregistry.extensions import db

EXIT_STATUS = 86
POINTS: tuple[str, ...] = get_args(CheckpointName)


def die_at(point: str, number: int) -> Checkpoint:
    """A checkpoint that ends the process at *point* of the *number*-th new message."""

    def checkpoint(reached: str, count: int) -> None:
        if (reached, count) == (point, number):
            os._exit(EXIT_STATUS)

    return checkpoint


def _echo(line: str) -> None:
    print(line, flush=True)  # os._exit flushes nothing: each line must be out already


def main(argv: list[str]) -> int:
    point, _, number = (argv[0] if argv else "").partition(":")
    if point not in POINTS or not number.isdigit():
        print(f"usage: python -m tests.support.mail_crash {{{'|'.join(POINTS)}}}:N",
              file=sys.stderr)
        return 2
    app = create_app()
    with app.app_context():
        result = fetch_mail(
            db.session, ImapSettings.from_config(app.config),
            max_size=int(app.config["IMAP_MAX_MESSAGE_SIZE"]), echo=_echo,
            checkpoint=die_at(point, int(number)),
        )
    print(result.summary())  # the checkpoint was never reached
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ledger's questions: has this message been recorded, where was the intake, how many
mails did a sender send in the last hour."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select

from applications.mail_headers import content_digest, digest_key
from applications.mail_models import IncomingMail
from sorregistry.database import DbSession

RATE_WINDOW = timedelta(hours=1)


class AlreadyRecorded(Exception):  # noqa: N818 - a state, not a failure
    """The ledger holds this very message already (another run, or an earlier one,
    recorded it): only flag it \\Seen."""


def is_processed(session: DbSession, message_id: str) -> bool:
    """True when the ledger holds the message with this key (Message-ID or digest)."""
    found = session.execute(
        select(IncomingMail.id).where(IncomingMail.message_id == message_id)
    ).first()
    return found is not None


def find_recorded(session: DbSession, key: str) -> IncomingMail | None:
    """The ledger row with this key (Message-ID or digest), if any."""
    return session.execute(
        select(IncomingMail).where(IncomingMail.message_id == key)
    ).scalar_one_or_none()


def recorded_at(session: DbSession, key: str, mailbox: str, uidvalidity: int, uid: int) -> bool:
    """True when the row with this key was read from this very place in the mailbox (a
    run that died between its commit and the \\Seen flag)."""
    found = session.execute(
        select(IncomingMail.id).where(
            IncomingMail.message_id == key, IncomingMail.mailbox == mailbox,
            IncomingMail.uidvalidity == uidvalidity, IncomingMail.uid == uid)
    ).first()
    return found is not None


def already_recorded(session: DbSession, key: str | None, raw: bytes) -> bool:
    """True when the ledger holds this message: under *key* with the same content (one mail
    delivered twice, or read again after the mailbox was rebuilt), or by its bytes."""
    if key is not None:
        existing = find_recorded(session, key)
        if existing is not None and content_digest(existing.raw) == content_digest(raw):
            return True
    return is_processed(session, digest_key(raw))


def ledger_key(session: DbSession, key: str, raw: bytes) -> tuple[str, IncomingMail | None]:
    """The key to record *raw* under, and the other mail that holds its Message-ID.

    Usually *key* itself (its Message-ID) and None. When another mail with other content
    holds that key, the digest of the bytes and that mail: the new one is kept, as a
    triage item. Raises :class:`AlreadyRecorded` when this very message is there.
    """
    existing = find_recorded(session, key)
    if existing is None:
        return key, None
    digest = digest_key(raw)
    if key == digest or content_digest(existing.raw) == content_digest(raw):
        raise AlreadyRecorded(key)
    if is_processed(session, digest):
        raise AlreadyRecorded(digest)
    return digest, existing


def last_uid(session: DbSession, mailbox: str, uidvalidity: int) -> int | None:
    """The highest UID processed in *mailbox* under *uidvalidity*; None if none was."""
    return session.execute(
        select(func.max(IncomingMail.uid)).where(
            IncomingMail.mailbox == mailbox, IncomingMail.uidvalidity == uidvalidity
        )
    ).scalar_one()


def mails_in_the_hour_before(session: DbSession, sender: str, at: datetime) -> int:
    """How many mails from *sender* the ledger holds that arrived in the hour up to *at*.

    Counted from the ledger itself, so that the limit holds across runs and across
    intake processes running at once; a mail without an arrival time counts by when it
    was processed.
    """
    since = at - RATE_WINDOW
    arrived = and_(IncomingMail.received_at > since, IncomingMail.received_at <= at)
    processed = and_(IncomingMail.received_at.is_(None), IncomingMail.processed_at > since,
                     IncomingMail.processed_at <= at)
    return session.execute(
        select(func.count()).select_from(IncomingMail)
        .where(IncomingMail.sender == sender, or_(arrived, processed))
    ).scalar_one()

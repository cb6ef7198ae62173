"""Login sessions the server knows: started at login, ended at logout or when they run out.

The signed session cookie holds a random token (``SESSION_KEY``); only its SHA-256
digest is stored. A session is alive while it has not been ended, has been used within
the idle lifetime (``SOR_SESSION_IDLE_MINUTES``, default 30) and is younger than the
absolute lifetime (``SOR_SESSION_MAX_HOURS``, default 12) - OWASP ASVS 3.3's figures for
a level-2 application. Use is recorded at most once a minute (``TOUCH_EVERY``), so a
person reading pages does not write on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from sorregistry.accounts.models import LoginSession, User
from sorregistry.database import DbSession, rowcount
from sorregistry.models import utcnow

SESSION_KEY = "sid"
TOUCH_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start(session: DbSession, user: User, *, address: str | None = None,
          id_token: str | None = None) -> str:
    """A new login session for *user*; returns the token for the cookie. A login with the
    national identity keeps the provider's ID token (the hint for logging out there too).
    Flushes."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(LoginSession(token_digest=_digest(token), user_id=user.id, created_at=now,
                             last_seen_at=now, address=(address or "")[:64] or None,
                             id_token=id_token))
    session.flush()
    return token


def id_token_of(session: DbSession, token: str | None) -> str | None:
    """The provider's ID token of the open login session of *token*, if it has one."""
    if not token:
        return None
    return session.execute(
        select(LoginSession.id_token).where(LoginSession.token_digest == _digest(token),
                                            LoginSession.ended_at.is_(None))
    ).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Found:
    """What a session cookie's token was found to be: ``alive``, ``idle`` or ``expired``
    (ran out: to be ended with that reason), or ``unknown`` (no such open session of
    this person); the row's id, and whether its use should be recorded now."""

    state: str
    row_id: int | None = None
    touch: bool = False


def look_up(session: DbSession, token: str | None, user_id: int, *, idle: timedelta,
            lifetime: timedelta, now: datetime | None = None) -> Found:
    """The state of the login session of *token* for *user_id*. Reads only."""
    if not token:
        return Found("unknown")
    row = session.execute(
        select(LoginSession).where(LoginSession.token_digest == _digest(token))
    ).scalar_one_or_none()
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return Found("unknown")
    now = now or utcnow()
    if now - row.created_at >= lifetime:
        return Found("expired", row.id)
    if now - row.last_seen_at >= idle:
        return Found("idle", row.id)
    return Found("alive", row.id, touch=now - row.last_seen_at >= TOUCH_EVERY)


def touch(session: DbSession, session_id: int, now: datetime | None = None) -> None:
    """Record that the session was used now (flushes)."""
    session.execute(update(LoginSession).where(LoginSession.id == session_id,
                                               LoginSession.ended_at.is_(None))
                    .values(last_seen_at=now or utcnow()))


def end(session: DbSession, token: str | None, reason: str = "logout") -> bool:
    """End the session of *token*; whether there was one alive to end. Flushes."""
    if not token:
        return False
    ended = rowcount(session.execute(
        update(LoginSession)
        .where(LoginSession.token_digest == _digest(token), LoginSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason, id_token=None)
    ))
    return bool(ended)


def end_all(session: DbSession, user_id: int, reason: str) -> int:
    """End every open session of a person (a new password, deactivation). Flushes."""
    return rowcount(session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )) or 0


def end_row(session: DbSession, row_id: int, reason: str, now: datetime) -> None:
    """End one session that ran out, saying why (``idle``, ``expired``). Flushes."""
    session.execute(update(LoginSession).where(LoginSession.id == row_id,
                                               LoginSession.ended_at.is_(None))
                    .values(ended_at=now, end_reason=reason))

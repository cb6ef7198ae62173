"""People who log in to the pages: SDS staff, municipality case workers, reporters.

A person has the same roles as an API client (``reporter``, ``municipality``,
``sds``); a municipality user names its kommunekode, and anyone may carry the
CVR they act for (the picker's "Mit CVR" uses it, never a typed value).
Passwords are stored as werkzeug scrypt hashes only. After
``MAX_FAILURES`` wrong passwords in a row the account is locked for
``LOCKOUT``; the login page never says whether an account exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from hierarchy import identifiers as ids
from sorregistry import audit
from sorregistry.accounts import sessions as login_sessions
from sorregistry.accounts.clients import ClientError, check_roles
from sorregistry.accounts.models import PASSWORD_METHOD, User
from sorregistry.database import DbSession
from sorregistry.errors import DomainError
from sorregistry.models import utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
# Checked when the email is unknown, so that a wrong email costs as much time as a
# wrong password and the response time does not tell which accounts exist.
_DUMMY_HASH = generate_password_hash("not a password of anyone", method=PASSWORD_METHOD)


class UserError(DomainError, ValueError):
    """A user cannot be made or changed as asked; the message says why."""


def end_sessions(session: DbSession, user: User, reason: str) -> None:
    """Make every session of *user* invalid from its next request. Incremented in SQL, so
    that two operators at once both end the sessions made before either. Flushes."""
    session.flush()
    session.execute(
        update(User).where(User.id == user.id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["session_version"])
    login_sessions.end_all(session, user.id, reason)


def label(user: User) -> str:
    """How the commands and the audit log name a person: the email, or for a person from
    the identity provider without one, the provider's subject."""
    return user.email or f"subject {user.oidc_subject}"


def user_actor(user: User) -> audit.Actor:
    """A person as the audit log names them."""
    return audit.Actor("user", str(user.id), label(user)[:254])


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if password.strip() != password or not password.isprintable():
        raise UserError("a password may not begin or end with spaces or hold control characters")


def create_user(
    session: DbSession,
    email: str,
    *,
    name: str,
    password: str,
    roles: list[str],
    municipality_code: str | None = None,
    cvr: str | None = None,
) -> User:
    """Make a person's account; the same rules for roles and kommunekode as API clients."""
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 254:
        raise UserError(f"{email!r} is not an email address")
    if not name.strip():
        raise UserError("a user needs a name (--name)")
    try:
        municipality_code = check_roles(roles, municipality_code, who="user")
    except ClientError as exc:
        raise UserError(str(exc)) from None
    if cvr:
        try:
            cvr = ids.validate_cvr(cvr)
        except ids.IdentifierError as exc:
            raise UserError(str(exc)) from None
    check_password_strength(password)
    if session.execute(select(User.id).where(User.email == email)).first() is not None:
        raise UserError(f"a user with email {email} exists already")
    user = User(
        email=email,
        name=name.strip(),
        roles=sorted(set(roles)),
        municipality_code=municipality_code,
        cvr=cvr or None,
        active=True,
        failed_logins=0,
    )
    user.set_password(password)
    session.add(user)
    session.flush()
    return user


def find_user(session: DbSession, email: str) -> User:
    """The user with *email*, matched as the login page matches it (trimmed, any
    case), so that an operator can paste the address as the person typed it; else the
    person from the identity provider whose subject it is (``list-users`` shows it)."""
    wanted = normalise_email(email)
    user = session.execute(select(User).where(User.email == wanted)).scalar_one_or_none()
    if user is None and email.strip():
        linked = list(session.execute(
            select(User).where(User.oidc_subject == email.strip())).scalars())
        if len(linked) > 1:
            raise UserError(f"subject {email.strip()} is known from several identity "
                            "providers; name the person by email")
        user = linked[0] if linked else None
    if user is None:
        raise UserError(f"there is no user with email {wanted or repr(email)}")
    return user


def list_users(session: DbSession) -> list[User]:
    """Every user, inactive ones too, by email; the caller decides what to show."""
    return list(session.execute(select(User).order_by(User.email)).scalars())


def clear_lockout(user: User) -> bool:
    """Forget wrong passwords and lift a lock-out; whether there was anything to forget.

    An operator who activates a person or gives them a new password means for
    them to log in now, not after the rest of a lock-out someone else caused.
    """
    had = bool(user.failed_logins) or user.locked_until is not None
    user.failed_logins = 0
    user.locked_until = None
    return had


def set_active(session: DbSession, email: str, active: bool) -> tuple[User, bool]:
    """Let a person log in again, or stop them; returns the user and whether anything changed.

    Deactivating keeps the account and its history (their name stays on what
    they did) and refuses their sessions from the next request on, since
    :func:`load_user` refuses inactive accounts. Activating also clears a lock-out. Setting the
    state an account already has is no error, so scripts can repeat it. Flushes.
    """
    user = find_user(session, email)
    changed = bool(user.active) != active
    user.active = active
    if changed and not active:
        end_sessions(session, user, "deactivated")  # reactivating must not revive them
    if active:
        changed = clear_lockout(user) or changed
    session.flush()
    return user, changed


def reset_password(session: DbSession, email: str, password: str) -> User:
    """Give a person a new password (create-user's strength rule) and clear a lock-out.

    Does not activate an inactive account: that is a decision of its own
    (activate-user). Flushes; the caller commits.
    """
    user = find_user(session, email)
    if user.password_hash is None:
        raise UserError(f"{label(user)} logs in with the national identity and has no password")
    check_password_strength(password)
    user.set_password(password)
    end_sessions(session, user, "password")  # whoever knew the old one is logged out
    clear_lockout(user)
    session.flush()
    return user


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a login form's email and password were found to be, before anything is
    written: whose account (None: no such email) and whether the password is its."""

    user_id: int | None
    password_ok: bool


def check_credentials(session: DbSession, email: str, password: str) -> Credentials:
    """Read the account and check the password - one scrypt hash in every case (an
    unknown email, a locked or inactive account alike), so the time taken tells nothing.

    Reads only: the hash (about 0.15 s) runs outside the write that records the attempt,
    so attempts do not queue behind each other's hashing.
    """
    user = session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()
    if user is None or user.password_hash is None:  # no such email, or no password at all
        check_password_hash(_DUMMY_HASH, password)
        return Credentials(None if user is None else user.id, False)
    return Credentials(user.id, check_password_hash(user.password_hash, password))


def record_attempt(session: DbSession, credentials: Credentials, *,
                   now: datetime | None = None) -> User | None:
    """Count a failed attempt (locking the account after ``MAX_FAILURES``) or let the
    person in; the user when the login succeeds.

    Call it in the write transaction (``write_step``): the account is read again there,
    so a lock set by a parallel attempt holds. A locked account refuses even the right
    password and its lock is not extended. The count and the lock are one UPDATE, so
    parallel guesses cannot slip past the limit. Flushes; the caller commits (a failure
    must be committed too, or the counter would never grow).
    """
    if credentials.user_id is None:
        return None
    now = now or utcnow()
    user = session.get(User, credentials.user_id, populate_existing=True)
    if user is None:
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    if not credentials.password_ok or not user.active:
        reached = User.failed_logins + 1 >= MAX_FAILURES
        session.execute(
            update(User)
            .where(User.id == user.id,
                   User.locked_until.is_(None) | (User.locked_until <= now))
            .values(failed_logins=case((reached, 0), else_=User.failed_logins + 1),
                    locked_until=case((reached, now + LOCKOUT), else_=User.locked_until))
            .execution_options(synchronize_session=False)
        )
        session.refresh(user)
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    return user


def authenticate(
    session: DbSession, email: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The user when *email* and *password* are right; count failures and lock the
    account after ``MAX_FAILURES``. Unknown email, wrong password, a locked or inactive
    account all fail alike. The login page runs the two halves apart
    (:func:`check_credentials`, then :func:`record_attempt` in a write step)."""
    return record_attempt(session, check_credentials(session, email, password), now=now)


def load_user(session: DbSession, user_id: str) -> User | None:
    """The logged-in person of a session, if the account still exists, is active and the
    session is of its current session version (``User.get_id``: "id.version")."""
    number, _, version = user_id.partition(".")
    if not (number.isascii() and number.isdigit() and version.isascii() and version.isdigit()):
        return None
    user = session.get(User, int(number))
    if user is None or not user.active or int(version) != (user.session_version or 0):
        return None
    return user

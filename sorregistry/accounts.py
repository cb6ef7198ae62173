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
import sys
from datetime import datetime, timedelta

import click
from flask.cli import with_appcontext
from flask_login import UserMixin
from sqlalchemy import Boolean, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from sorregistry.auth import ClientError, check_roles
from sorregistry.cli import ROLE_OPTION
from sorregistry.cli import fail as _fail
from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
PASSWORD_METHOD = "scrypt"
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
# Checked when the email is unknown, so that a wrong email costs as much time as a
# wrong password and the response time does not tell which accounts exist.
_DUMMY_HASH = generate_password_hash("not a password of anyone", method=PASSWORD_METHOD)


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JsonDocument)
    municipality_code: Mapped[str | None] = mapped_column(String(4))
    cvr: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # In every session cookie beside the id; bumped by deactivation and by a new password,
    # which thus end every session made before (a copied cookie included): the cookie is
    # signed but holds no server state, so it cannot be revoked otherwise.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def get_id(self) -> str:  # what Flask-Login puts in the session cookie
        return f"{self.id}.{self.session_version or 0}"


    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return bool(self.active)

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)

    @property
    def actor_id(self) -> int:
        """The id a person acts under in the workflow: negative, so that it never
        equals an API client's id ("whoever sent it may not approve it")."""
        return -self.id


class UserError(ValueError):
    """A user cannot be made or changed as asked; the message says why."""


def end_sessions(session: Session, user: User) -> None:
    """Make every session of *user* invalid from its next request. Incremented in SQL, so
    that two operators at once both end the sessions made before either. Flushes."""
    session.flush()
    session.execute(
        update(User).where(User.id == user.id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["session_version"])


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if password.strip() != password or not password.isprintable():
        raise UserError("a password may not begin or end with spaces or hold control characters")


def create_user(
    session: Session,
    email: str,
    *,
    name: str,
    password: str,
    roles: list[str],
    municipality_code: str | None = None,
    cvr: str | None = None,
) -> User:
    """Make a person's account; the same rules for roles and kommunekode as API clients."""
    from hierarchy import identifiers as ids

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


def find_user(session: Session, email: str) -> User:
    """The user with *email*, matched as the login page matches it (trimmed, any
    case), so that an operator can paste the address as the person typed it."""
    wanted = normalise_email(email)
    user = session.execute(select(User).where(User.email == wanted)).scalar_one_or_none()
    if user is None:
        raise UserError(f"there is no user with email {wanted or repr(email)}")
    return user


def list_users(session: Session) -> list[User]:
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


def set_active(session: Session, email: str, active: bool) -> tuple[User, bool]:
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
        end_sessions(session, user)  # reactivating later must not revive them
    if active:
        changed = clear_lockout(user) or changed
    session.flush()
    return user, changed


def reset_password(session: Session, email: str, password: str) -> User:
    """Give a person a new password (create-user's strength rule) and clear a lock-out.

    Does not activate an inactive account: that is a decision of its own
    (activate-user). Flushes; the caller commits.
    """
    user = find_user(session, email)
    check_password_strength(password)
    user.set_password(password)
    end_sessions(session, user)  # whoever knew the old password is logged out everywhere
    clear_lockout(user)
    session.flush()
    return user


def authenticate(
    session: Session, email: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The user when *email* and *password* are right; count failures and lock the
    account after ``MAX_FAILURES``.

    Unknown email, wrong password, a locked or inactive account all fail alike,
    so the caller can say nothing that tells them apart. Flushes; the caller commits
    (a failure must be committed too, or the counter would never grow).
    """
    now = now or utcnow()
    user = session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        # Locked: refuse even the right password, and do not extend the lock.
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        # Counted in SQL, so that parallel guesses cannot slip past the limit.
        session.execute(
            update(User).where(User.id == user.id)
            .values(failed_logins=User.failed_logins + 1)
        )
        session.refresh(user)
        if user.failed_logins >= MAX_FAILURES:
            user.failed_logins = 0
            user.locked_until = now + LOCKOUT
        session.flush()
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    return user


def load_user(session: Session, user_id: str) -> User | None:
    """The logged-in person of a session, if the account still exists, is active and the
    session is of its current session version (``User.get_id``: "id.version")."""
    number, _, version = user_id.partition(".")
    if not (number.isascii() and number.isdigit() and version.isascii() and version.isdigit()):
        return None
    user = session.get(User, int(number))
    if user is None or not user.active or int(version) != (user.session_version or 0):
        return None
    return user


_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)


def _read_password(from_stdin: bool, prompt: str) -> str:
    """The password from stdin's first line (for scripts) or typed twice, hidden; never an
    argument, where other users of the machine could read it in the process list."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@click.command("create-user")
@click.argument("email")
@click.option("--name", required=True, help="The person's name, shown on the pages and in history.")
@ROLE_OPTION
@click.option("--municipality-code", default=None, help="Kommunekode of a municipality user.")
@click.option("--cvr", default=None, help="The CVR the person acts for (the picker's Mit CVR).")
@_PASSWORD_STDIN
@with_appcontext
def create_user_command(
    email: str,
    name: str,
    roles: tuple[str, ...],
    municipality_code: str | None,
    cvr: str | None,
    password_stdin: bool,
) -> None:
    """Make a person's login. The password is prompted for (or read from stdin), never
    given on the command line, where other users could see it."""
    from sorregistry.extensions import db

    password = _read_password(password_stdin, "Password")
    try:
        user = create_user(
            db.session, email, name=name, password=password, roles=list(roles),
            municipality_code=municipality_code, cvr=cvr,
        )
        db.session.commit()
    except UserError as exc:
        db.session.rollback()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"User {user.id} {user.email} '{user.name}' (roles {', '.join(user.roles)}"
        + (f", kommunekode {user.municipality_code}" if user.municipality_code else "")
        + (f", CVR {user.cvr}" if user.cvr else "")
        + ")."
    )


@click.command("list-users")
@click.option("--all", "all_", is_flag=True, help="Show inactive users too.")
@with_appcontext
def list_users_command(all_: bool) -> None:
    """List the people who can log in (times in UTC); inactive ones with --all."""
    from sorregistry.cli import echo_listing, format_time
    from sorregistry.extensions import db

    now = utcnow()
    echo_listing(
        list_users(db.session), show_all=all_, shown_by_default=lambda user: user.active,
        headers=["email", "name", "roles", "kommunekode", "CVR", "active", "locked until",
                 "last login"],
        row=lambda u: [
            u.email, u.name, ",".join(u.roles), u.municipality_code or "-", u.cvr or "-",
            "yes" if u.active else "no",
            # A lock-out that has run out is no lock-out; show only one in force.
            format_time(u.locked_until if u.locked_until and u.locked_until > now else None),
            format_time(u.last_login_at)],
        nothing="No users.", hidden="inactive",
    )


@click.command("deactivate-user")
@click.argument("email")
@with_appcontext
def deactivate_user_command(email: str) -> None:
    """Stop EMAIL from logging in. Every session they have open is refused from its next
    request on, for good (activating the account later does not revive them); the
    account and its history stay (activate-user undoes it)."""
    _set_active(email, False)


@click.command("activate-user")
@click.argument("email")
@with_appcontext
def activate_user_command(email: str) -> None:
    """Let EMAIL log in again, and lift a lock-out after wrong passwords."""
    _set_active(email, True)


def _set_active(email: str, active: bool) -> None:
    from sorregistry.extensions import db

    try:
        user, changed = set_active(db.session, email, active)
        db.session.commit()
    except UserError as exc:
        _fail(exc)
    if not changed:
        click.echo(f"User {user.email} was "
                   + ("active and not locked out" if active else "inactive")
                   + " already; nothing changed.")
    elif active:
        click.echo(f"User {user.email} is active, with no lock-out or failed logins.")
    else:
        click.echo(f"User {user.email} deactivated; an open session is refused from its next "
                   "request on.")


@click.command("set-password")
@click.argument("email")
@_PASSWORD_STDIN
@with_appcontext
def set_password_command(email: str, password_stdin: bool) -> None:
    """Give EMAIL a new password, and lift a lock-out. The password is prompted for (or
    read from stdin), never given on the command line; the rule is create-user's.

    Every session made with the old password ends (they log in again with the new one).
    """
    from sorregistry.extensions import db

    try:
        find_user(db.session, email)  # before the prompt: no typing for an unknown email
    except UserError as exc:
        _fail(exc)
    finally:
        db.session.rollback()  # no transaction held open while the operator types
    password = _read_password(password_stdin, "New password")
    try:
        user = reset_password(db.session, email, password)
        db.session.commit()
    except UserError as exc:
        _fail(exc)
    click.echo(
        f"New password set for {user.email}; their open sessions are ended."
        + ("" if user.active else " The account is inactive; activate-user lets them log in.")
    )

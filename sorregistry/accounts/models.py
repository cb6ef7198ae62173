"""The tables of who may log in (people), who may call the API (clients), and the roles
SDS staff grant to people who log in with the national identity (role grants)."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import generate_password_hash

from sorregistry.models import Base, BigIntKey, JsonDocument, UTCDateTime, utcnow

PASSWORD_METHOD = "scrypt"


class User(UserMixin, Base):
    """A person who logs in to the pages: SDS staff, a municipality's case worker, a
    reporter. Passwords are stored as werkzeug scrypt hashes only.

    A person who logs in with the national identity (OpenID Connect) has no password:
    the account is linked by the provider's (issuer, subject) and made at their first
    login; their name, email, CVR, roles and kommunekode are set from the ID token and
    the role grants at every login (``sorregistry.accounts.oidc``)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # None for a person from the identity provider whose email is unknown or another's.
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    # From the token, for the record: the organisation the person acts for and their
    # persistent professional UUID (NemLog-in's).
    organisation: Mapped[str | None] = mapped_column(String(200))
    person_uuid: Mapped[str | None] = mapped_column(String(255))
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


class ApiClient(Base):
    """A machine that calls the API (a reporting form, a municipality's system). Its
    token is stored only as a SHA-256 digest: a database leak reveals no usable token.

    A system that calls with an identity provider's access tokens has no token here: it
    is recorded at its first call, linked by (issuer, subject), so that it has an id
    (whoever sent an application may not approve it), a name in the audit log, and can
    be revoked like any client. Its CVR and roles come from each token, not from here."""

    __tablename__ = "api_clients"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    cvr: Mapped[str | None] = mapped_column(String(8), index=True)
    roles: Mapped[list[str]] = mapped_column(JsonDocument)
    municipality_code: Mapped[str | None] = mapped_column(String(4))
    token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


class LoginSession(Base):
    """One login of a person, known to the server: the session cookie carries a random
    token whose digest is stored here, so that logging out (or a new password, or
    deactivation) ends that session for good - a copy of the cookie included - and idle
    and absolute lifetimes are enforced by the server, not by the browser."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # logout, idle, expired, password, deactivated
    end_reason: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(64))
    # The ID token of a login with the national identity: the hint that lets logout end
    # the provider's session too (RP-initiated logout). None for a password login.
    id_token: Mapped[str | None] = mapped_column(Text)


class RoleGrant(Base):
    """A role SDS staff give to people who log in with the national identity: to one
    person (the provider's issuer and subject) or to everyone acting for a CVR ("every
    person acting for CVR 55133018 may apply as municipality 0751"). Read at each login;
    a revoked grant keeps its row (who granted what, and when, stays known)."""

    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(255))
    oidc_subject: Mapped[str | None] = mapped_column(String(255), index=True)
    cvr: Mapped[str | None] = mapped_column(String(8), index=True)
    role: Mapped[str] = mapped_column(String(20))
    municipality_code: Mapped[str | None] = mapped_column(String(4))
    granted_by: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

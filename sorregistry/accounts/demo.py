"""The demo logins of a first start (``sorregistry load-demo``, development only).

Three people, one per role, each with a random password that the command prints once:
an SDS employee (the staff pages), a municipality's employee (its applications; the
municipality of the demo register) and a reporter (the picker, "Mit CVR" acting for a
real private clinic of the demo). Run again, the command gives the same logins new
passwords, so whoever lost the first ones can get in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sorregistry import audit
from sorregistry.accounts.users import UserError, create_user, label, reset_password
from sorregistry.database import DbSession

DOMAIN = "demo.sor.example"  # RFC 2606's reserved name: no mail ever leaves for it


@dataclass(frozen=True, slots=True)
class DemoLogin:
    role: str
    email: str
    password: str


def new_password() -> str:
    """A random password: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def create_logins(session: DbSession, *, municipality_code: str | None,
                  municipality_name: str | None, municipality_cvr: str | None,
                  reporter_cvr: str | None) -> list[DemoLogin]:
    """Make (or give new passwords to) the demo logins; flushes, the caller commits."""
    # (role, email, name, kommunekode, CVR)
    people: list[tuple[str, str, str, str | None, str | None]] = [
        ("sds", f"sds@{DOMAIN}", "SDS Demo", None, None)]
    if municipality_code:
        people.append(("municipality", f"kommune@{DOMAIN}",
                       f"{municipality_name or 'Kommune'} Demo", municipality_code,
                       municipality_cvr))
    people.append(("reporter", f"indberetter@{DOMAIN}", "Indberetter Demo", None, reporter_cvr))
    logins = []
    for role, email, name, code, cvr in people:
        password = new_password()
        try:
            user = create_user(session, email, name=name, password=password, roles=[role],
                               municipality_code=code, cvr=cvr)
            action = "user_created"
        except UserError:  # made by an earlier load-demo: a new password
            user = reset_password(session, email, password)
            action = "password_set"
        audit.record(session, action, audit.Actor.system(), target=label(user)[:120],
                     details={"roles": user.roles, "demo": True})
        logins.append(DemoLogin(role, email, password))
    return logins

"""What an identity may do, whatever it came from: the one rule, and the grants SDS keep.

Every identity - a password login, a login with the national identity (OpenID Connect),
an identity provider's access token, the service's own token - ends as roles and
perhaps a kommunekode, and :func:`settle` is the one rule that makes them: only the
known roles (``sorregistry.security.ROLES``), ``municipality`` only with a valid
kommunekode, a kommunekode only for ``municipality``. Pages and API then read the
roles, the CVR and the kommunekode of the identity alone (``security.require``,
``role_required``, the picker's and the lookups' "Mit CVR", the applications' rule that
a municipality sees its own and that nobody approves what they sent in).

Where the roles come from:

- a person with a password: the account (``create-user``);
- a person from the identity provider: the role claim, when the provider sends one
  (``SOR_OIDC_CLAIMS_ROLES``, its values mapped by ``SOR_OIDC_CLAIMS_ROLE_VALUES``),
  together with the grants below; read at each login;
- a system with an access token: the token's scopes (``sor:lookup`` reporter,
  ``sor:apply`` municipality, ``sor:staff`` sds) and nothing more - the provider that
  issued the token decided what the client may do; a grant can only name the
  kommunekode a ``sor:apply`` system applies for;
- a system with the service's own token: the client (``create-client``).

**Grants** (``sorregistry grant-role``) are SDS staff's decisions for people from the
identity provider: to one person, by the provider's subject, or to everyone acting for
a CVR ("every person acting for CVR 55133018 may apply as municipality 0751"). The
kommunekode of a grant wins over a claimed one, a person's own grant over their CVR's.
A subject or a CVR has at most one municipality grant, so the kommunekode is never a
choice. A grant takes effect at the person's next login; revoking one ends the login
sessions of the people it covered at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select

from hierarchy import identifiers as ids
from sorregistry.accounts.models import RoleGrant, User
from sorregistry.accounts.users import end_sessions
from sorregistry.database import DbSession
from sorregistry.errors import DomainError
from sorregistry.models import utcnow
from sorregistry.security import ROLES


class GrantError(DomainError, ValueError):
    """A grant cannot be made or revoked as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Standing:
    """What an identity may do: its roles (sorted) and, for a municipality, its
    kommunekode."""

    roles: tuple[str, ...]
    municipality_code: str | None


def _kommunekode(code: str | None) -> str | None:
    if not code:
        return None
    try:
        return ids.validate_kommunekode(str(code))
    except ids.IdentifierError:
        return None


def settle(roles: Iterable[str], municipality_code: str | None) -> Standing:
    """The one rule: known roles only; ``municipality`` only with a valid kommunekode
    (without one it is dropped: a municipality that cannot be named can apply for
    nobody); a kommunekode only for ``municipality``."""
    known = {role for role in roles if role in ROLES}
    code = _kommunekode(municipality_code) if "municipality" in known else None
    if code is None:
        known.discard("municipality")
    return Standing(tuple(sorted(known)), code)


def active_grants(session: DbSession, *, issuer: str | None, subject: str | None,
                  cvr: str | None) -> list[RoleGrant]:
    """The grants in force for a person (or system) of *issuer*/*subject* acting for
    *cvr*: their own first, then their CVR's."""
    conditions: list[ColumnElement[bool]] = []
    if subject:
        conditions.append((RoleGrant.oidc_subject == subject)
                          & (RoleGrant.oidc_issuer == issuer))
    if cvr:
        conditions.append(RoleGrant.cvr == cvr)
    if not conditions:
        return []
    rows = session.execute(
        select(RoleGrant).where(RoleGrant.revoked_at.is_(None), or_(*conditions))
        .order_by(RoleGrant.id)
    ).scalars()
    return sorted(rows, key=lambda grant: grant.oidc_subject is None)


def _granted_kommunekode(grants: list[RoleGrant]) -> str | None:
    return next((g.municipality_code for g in grants if g.role == "municipality"), None)


def person_standing(session: DbSession, *, issuer: str, subject: str, cvr: str | None,
                    claimed_roles: Iterable[str], claimed_municipality: str | None) -> Standing:
    """A person from the identity provider: the claimed roles and the granted ones."""
    grants = active_grants(session, issuer=issuer, subject=subject, cvr=cvr)
    roles = {*claimed_roles, *(grant.role for grant in grants)}
    return settle(roles, _granted_kommunekode(grants) or claimed_municipality)


def system_standing(session: DbSession, *, issuer: str, subject: str, cvr: str | None,
                    scope_roles: Iterable[str], claimed_municipality: str | None) -> Standing:
    """A system with an access token: the roles its scopes give, no more; a grant may
    only name the kommunekode it applies for."""
    roles = set(scope_roles)
    code = None
    if "municipality" in roles:
        grants = active_grants(session, issuer=issuer, subject=subject, cvr=cvr)
        code = _granted_kommunekode(grants)
    return settle(roles, code or claimed_municipality)


def grant_role(session: DbSession, *, role: str, subject: str | None = None,
               issuer: str | None = None, cvr: str | None = None,
               municipality_code: str | None = None,
               granted_by: str | None = None) -> RoleGrant:
    """Record a grant to one person (*issuer*, *subject*) or to everyone acting for *cvr*.
    Flushes; the caller commits."""
    if bool(subject) == bool(cvr):
        raise GrantError("name either --oidc-subject or --cvr, not both")
    if subject and not issuer:
        raise GrantError("a grant to a subject needs the issuer (--issuer or SOR_OIDC_ISSUER)")
    if role not in ROLES:
        raise GrantError(f"unknown role {role}; roles are {', '.join(ROLES)}")
    if cvr:
        try:
            cvr = ids.validate_cvr(cvr)
        except ids.IdentifierError as exc:
            raise GrantError(str(exc)) from None
    if role == "municipality":
        if not municipality_code:
            raise GrantError("a municipality grant needs --municipality-code (kommunekode)")
        try:
            municipality_code = ids.validate_kommunekode(municipality_code)
        except ids.IdentifierError as exc:
            raise GrantError(str(exc)) from None
    elif municipality_code:
        raise GrantError("--municipality-code is for the municipality role only")
    existing = [grant for grant in active_grants(session, issuer=issuer, subject=subject,
                                                 cvr=cvr)
                if grant.oidc_subject == subject and grant.cvr == cvr and grant.role == role]
    if existing:
        raise GrantError(f"grant {existing[0].id} gives that role already"
                         + (f" (kommunekode {existing[0].municipality_code})"
                            if existing[0].municipality_code else ""))
    grant = RoleGrant(oidc_issuer=issuer if subject else None, oidc_subject=subject or None,
                      cvr=cvr or None, role=role, municipality_code=municipality_code,
                      granted_by=(granted_by or "")[:254] or None, created_at=utcnow())
    session.add(grant)
    session.flush()
    return grant


def list_grants(session: DbSession) -> list[RoleGrant]:
    """Every grant, revoked ones too, oldest first."""
    return list(session.execute(select(RoleGrant).order_by(RoleGrant.id)).scalars())


def covered_people(session: DbSession, grant: RoleGrant) -> list[User]:
    """The people from the identity provider a grant applies to (as last seen)."""
    query = select(User).where(User.oidc_subject.is_not(None))
    if grant.oidc_subject:
        query = query.where(User.oidc_issuer == grant.oidc_issuer,
                            User.oidc_subject == grant.oidc_subject)
    else:
        query = query.where(User.cvr == grant.cvr)
    return list(session.execute(query).scalars())


def revoke_grant(session: DbSession, grant_id: int) -> tuple[RoleGrant, int]:
    """Revoke a grant and end the login sessions of the people it covered (their next
    login reads the grants again); returns it and how many people were logged out.
    Flushes; the caller commits."""
    grant = session.get(RoleGrant, grant_id)
    if grant is None:
        raise GrantError(f"there is no grant with id {grant_id}")
    if grant.revoked_at is not None:
        raise GrantError(f"grant {grant.id} was revoked already, at "
                         f"{grant.revoked_at:%Y-%m-%d %H:%M} UTC")
    grant.revoked_at = utcnow()
    people = covered_people(session, grant)
    for person in people:
        end_sessions(session, person, "grant_revoked")
    session.flush()
    return grant, len(people)

"""The register's domain logic: reading organisations now and as they stood, and history.

Functions take the SQLAlchemy session; they flush, never commit (the caller
owns the transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hierarchy import identifiers as ids
from hierarchy.models import Organisation, OrganisationVersion


class NotFound(LookupError):
    """No organisation with that SOR code (at that time)."""


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One version of an organisation, with what it changed from the one before."""

    version: int
    recorded_at: datetime
    superseded_at: datetime | None
    source: str
    actor: str
    reference: str | None
    snapshot: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]


def register_is_empty(session: Session) -> bool:
    return session.execute(select(Organisation.sor_code).limit(1)).first() is None


def count_by_level(session: Session, active_on: date | None = None) -> dict[str, int]:
    query = select(Organisation.level, func.count()).group_by(Organisation.level)
    if active_on is not None:
        query = query.where(*active_on_clause(active_on))
    return {level: count for level, count in session.execute(query)}


def active_on_clause(day: date) -> list[Any]:
    """Conditions for an organisation valid on *day* (closing date exclusive)."""
    return [
        (Organisation.valid_from.is_(None)) | (Organisation.valid_from <= day),
        (Organisation.valid_to.is_(None)) | (Organisation.valid_to > day),
    ]


def get_organisation(session: Session, sor_code: str) -> Organisation:
    """The organisation with *sor_code* as it stands now; raises NotFound or IdentifierError."""
    sor_code = ids.validate_sor_code(sor_code)
    organisation = session.get(Organisation, sor_code)
    if organisation is None:
        raise NotFound(f"no organisation has SOR code {sor_code}")
    return organisation


def get_version_as_of(session: Session, sor_code: str, moment: datetime) -> OrganisationVersion:
    """The version of *sor_code* that the register held at *moment* (system time)."""
    sor_code = ids.validate_sor_code(sor_code)
    version = session.execute(
        select(OrganisationVersion)
        .where(
            OrganisationVersion.sor_code == sor_code,
            OrganisationVersion.recorded_at <= moment,
            (OrganisationVersion.superseded_at.is_(None))
            | (OrganisationVersion.superseded_at > moment),
        )
        .order_by(OrganisationVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"the register held no organisation {sor_code} at {moment.isoformat()}")
    return version


def register_as_of(session: Session, moment: datetime) -> list[OrganisationVersion]:
    """Every organisation's version as the register held it at *moment*."""
    return list(
        session.execute(
            select(OrganisationVersion)
            .where(
                OrganisationVersion.recorded_at <= moment,
                (OrganisationVersion.superseded_at.is_(None))
                | (OrganisationVersion.superseded_at > moment),
            )
            .order_by(OrganisationVersion.sor_code)
        ).scalars()
    )


def organisation_history(session: Session, sor_code: str) -> list[VersionEntry]:
    """Every version of *sor_code*, oldest first, each with its changes from the previous."""
    sor_code = ids.validate_sor_code(sor_code)
    rows = session.execute(
        select(OrganisationVersion)
        .where(OrganisationVersion.sor_code == sor_code)
        .order_by(OrganisationVersion.version)
    ).scalars()
    entries: list[VersionEntry] = []
    previous: dict[str, Any] = {}
    for row in rows:
        changes = {
            name: (previous.get(name), value)
            for name, value in row.snapshot.items()
            if previous.get(name) != value and (previous or value is not None)
        }
        entries.append(
            VersionEntry(
                version=row.version,
                recorded_at=row.recorded_at,
                superseded_at=row.superseded_at,
                source=row.source,
                actor=row.actor,
                reference=row.reference,
                snapshot=row.snapshot,
                changes=changes,
            )
        )
        previous = row.snapshot
    if not entries:
        raise NotFound(f"no organisation has SOR code {sor_code}")
    return entries


def children(session: Session, sor_code: str) -> list[Organisation]:
    return list(
        session.execute(
            select(Organisation)
            .where(Organisation.parent_sor_code == sor_code)
            .order_by(Organisation.name_search)
        ).scalars()
    )

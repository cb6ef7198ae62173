"""The register's domain logic: reading organisations now and as they stood, and history.

Functions take the SQLAlchemy session; they flush, never commit (the caller
owns the transaction).

A replacement link is kept on both sides (``hierarchy.successors``): a change that
gives A ``replaced_by`` B (or takes it away) changes B's ``replaces`` the same way, and
the reverse, each recorded as a version of its own organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from hierarchy import identifiers as ids
from hierarchy.changes import REGISTER_VERSION_QUERY, record_change

# The register version and the narrow search rows are hierarchy.changes'; these names
# stay importable from here, where the lookups and the health answer read them.
from hierarchy.changes import bump_register_version as bump_register_version
from hierarchy.changes import mark_register_changed as mark_register_changed
from hierarchy.changes import register_changed_in as register_changed_in
from hierarchy.changes import register_version as register_version
from hierarchy.changes import remember_register_version as remember_register_version
from hierarchy.changes import sync_names as sync_names
from hierarchy.models import (
    VERSION_SOURCES,
    Organisation,
    OrganisationVersion,
    SorCodeCounter,
    table_of,
)
from hierarchy.records import (
    OWN_FIELDS,
    Placement,
    content_fingerprint,
    derive,
    derived_fingerprint,
    placement_from_row,
)
from hierarchy.successors import merge_links
from sorregistry.database import DbSession
from sorregistry.models import utcnow

_VERSION_QUERY = REGISTER_VERSION_QUERY  # the name hierarchy.lookups imports


class NotFound(LookupError):
    """No organisation with that SOR code (at that time)."""


class InvalidChange(ValueError):
    """A change the register cannot take; ``errors`` maps fields to reasons."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors.items()))


# Fields a change may set; the tree structure (level) is fixed at creation.
CHANGEABLE_FIELDS = frozenset(OWN_FIELDS) - {"level"}
CHILD_LEVELS = {"IE": ("SI",), "SI": ("OE",), "OE": ("OE",)}
# Each side of a replacement link, and the field that holds the other side.
LINK_SIDES = {"replaced_by": "replaces", "replaces": "replaced_by"}


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


def register_is_empty(session: DbSession) -> bool:
    return session.execute(select(Organisation.sor_code).limit(1)).first() is None


def count_by_level(session: DbSession, active_on: date | None = None) -> dict[str, int]:
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


def get_organisation(session: DbSession, sor_code: str) -> Organisation:
    """The organisation with *sor_code* as it stands now; raises NotFound or IdentifierError."""
    sor_code = ids.validate_sor_code(sor_code)
    organisation = session.get(Organisation, sor_code)
    if organisation is None:
        raise NotFound(f"no organisation has SOR code {sor_code}")
    return organisation


def _in_force_at(moment: datetime) -> list[Any]:
    """Conditions for the version the register held at *moment* (system time)."""
    return [
        OrganisationVersion.recorded_at <= moment,
        OrganisationVersion.superseded_at.is_(None) | (OrganisationVersion.superseded_at > moment),
    ]


def get_version_as_of(session: DbSession, sor_code: str, moment: datetime) -> OrganisationVersion:
    """The version of *sor_code* that the register held at *moment* (system time)."""
    sor_code = ids.validate_sor_code(sor_code)
    version = session.execute(
        select(OrganisationVersion)
        .where(OrganisationVersion.sor_code == sor_code, *_in_force_at(moment))
        .order_by(OrganisationVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"the register held no organisation {sor_code} at {moment.isoformat()}")
    return version


def register_as_of(session: DbSession, moment: datetime) -> list[OrganisationVersion]:
    """Every organisation's version as the register held it at *moment*."""
    return list(
        session.execute(
            select(OrganisationVersion)
            .where(*_in_force_at(moment))
            .order_by(OrganisationVersion.sor_code)
        ).scalars()
    )


def organisation_history(session: DbSession, sor_code: str) -> list[VersionEntry]:
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


def create_organisation(
    session: DbSession,
    sor_code: str,
    values: dict[str, Any],
    *,
    source: str,
    actor: str,
    reference: str | None = None,
) -> Organisation:
    """Put a new organisation into the register with its first version.

    *values* are its own values (see ``hierarchy.records.OWN_FIELDS``);
    ``level`` is required, and ``parent_sor_code`` for an SI or OE.
    """
    _check_source(source)
    sor_code = ids.validate_sor_code(sor_code)
    if session.get(Organisation, sor_code) is not None:
        raise InvalidChange({"sor_code": f"SOR code {sor_code} is already in the register"})
    unknown = set(values) - set(OWN_FIELDS)
    if unknown:
        raise InvalidChange({name: "not a field of an organisation" for name in sorted(unknown)})
    own = {name: values.get(name) for name in OWN_FIELDS}
    own["gln_inherited"] = bool(own["gln_inherited"])
    if not own["name"]:
        raise InvalidChange({"name": "a name is required"})
    _check_links(session, sor_code, {}, own)
    parent = _parent_placement(session, own)
    derived = derive(own, sor_code, parent)
    now = utcnow()
    organisation = Organisation(
        sor_code=sor_code,
        **own,
        **derived,
        version=1,
        content_hash=content_fingerprint(own),
        derived_hash=derived_fingerprint(derived),
        created_at=now,
        updated_at=now,
    )
    session.add(organisation)
    record_change(session, organisation, own, now, source=source, actor=actor,
                  reference=reference)
    _keep_other_sides(session, sor_code, {}, own, source=source, actor=actor,
                      reference=reference)
    return organisation


def change_organisation(
    session: DbSession,
    sor_code: str,
    changes: dict[str, Any],
    *,
    source: str,
    actor: str,
    reference: str | None = None,
) -> Organisation:
    """Change an organisation's own values, record the version, and pass the change on.

    What its units inherit (address, contact data, GLN, owner, ownership) is
    recomputed for the whole subtree; they get no version of their own, since
    their own values did not change. A change of ``replaced_by`` or ``replaces``
    changes the other side of each link gained or lost (a version of that organisation).
    A change that changes nothing records nothing.
    """
    return _change(session, sor_code, changes, source=source, actor=actor,
                   reference=reference, other_sides=True)


def _change(
    session: DbSession,
    sor_code: str,
    changes: dict[str, Any],
    *,
    source: str,
    actor: str,
    reference: str | None,
    other_sides: bool,
) -> Organisation:
    _check_source(source)
    organisation = get_organisation(session, sor_code)
    unknown = set(changes) - CHANGEABLE_FIELDS
    if unknown:
        raise InvalidChange(
            {name: "cannot be changed (not a field, or fixed)" for name in sorted(unknown)}
        )
    before = {name: getattr(organisation, name) for name in OWN_FIELDS}
    own = dict(before)
    own.update(changes)
    if not own["name"]:
        raise InvalidChange({"name": "a name is required"})
    _check_links(session, organisation.sor_code, before, own)
    content_hash = content_fingerprint(own)
    if content_hash == organisation.content_hash:
        return organisation
    old_path = organisation.path
    parent = _parent_placement(session, own, moving=organisation)
    derived = derive(own, organisation.sor_code, parent)
    now = utcnow()
    for name, value in {**own, **derived}.items():
        setattr(organisation, name, value)
    organisation.version += 1
    organisation.content_hash = content_hash
    organisation.derived_hash = derived_fingerprint(derived)
    organisation.updated_at = now
    refreshed = _refresh_subtree(session, organisation, old_path, now)
    record_change(session, organisation, own, now, source=source, actor=actor,
                  reference=reference, inherited_by=refreshed)
    if other_sides:
        _keep_other_sides(session, organisation.sor_code, before, own, source=source,
                          actor=actor, reference=reference)
    return organisation


def close_organisation(
    session: DbSession,
    sor_code: str,
    closing_date: date,
    *,
    source: str,
    actor: str,
    reference: str | None = None,
) -> Organisation:
    """Close an organisation and every open unit under it as of *closing_date*."""
    organisation = get_organisation(session, sor_code)
    if organisation.valid_from and closing_date < organisation.valid_from:
        raise InvalidChange({"valid_to": "the closing date is before the organisation's start"})
    descendants = session.execute(
        select(Organisation.sor_code)
        .where(
            Organisation.path.like(f"{organisation.path}%"),
            Organisation.sor_code != organisation.sor_code,
            (Organisation.valid_to.is_(None)) | (Organisation.valid_to > closing_date),
        )
        .order_by(Organisation.depth.desc())
    ).scalars().all()
    for code in descendants:
        change_organisation(session, code, {"valid_to": closing_date}, source=source,
                            actor=actor, reference=reference)
    return change_organisation(session, sor_code, {"valid_to": closing_date}, source=source,
                               actor=actor, reference=reference)


def _check_links(session: DbSession, sor_code: str, before: dict[str, Any],
                 after: dict[str, Any]) -> None:
    """Refuse links a change adds that cannot be: not a list of SOR codes, to the
    organisation itself, or to a code the register does not hold. Links it already
    had (an import may name codes the register lacks) are left alone."""
    for name in LINK_SIDES:
        codes = after.get(name)
        if codes is None:
            continue
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise InvalidChange({name: "a list of SOR codes"})
        for code in set(codes) - set(before.get(name) or ()):
            try:
                ids.validate_sor_code(code)
            except ids.IdentifierError as exc:
                raise InvalidChange({name: str(exc)}) from None
            if code == sor_code:
                raise InvalidChange({name: "an organisation cannot replace itself"})
            if session.get(Organisation, code) is None:
                raise InvalidChange({name: f"no organisation has SOR code {code}"})


def _keep_other_sides(session: DbSession, sor_code: str, before: dict[str, Any],
                      after: dict[str, Any], *, source: str, actor: str,
                      reference: str | None) -> None:
    """Give the other side of every link *sor_code* gained or lost the same change:
    B's ``replaces`` follows A's ``replaced_by``, and the reverse."""
    for name, other_side in LINK_SIDES.items():
        old, new = set(before.get(name) or ()), set(after.get(name) or ())
        for code in sorted(old ^ new):
            other = session.get(Organisation, code)
            if other is None:
                continue  # a link the register held to a code it lacks, now dropped
            current: list[str] | None = getattr(other, other_side)
            if (sor_code in (current or ())) == (code in new):
                continue  # that side says so already
            if code in new:
                merged = merge_links(current, [sor_code])
            else:
                merged = merge_links([c for c in current or () if c != sor_code], ())
            _change(session, code, {other_side: merged}, source=source, actor=actor,
                    reference=reference, other_sides=False)


def _check_source(source: str) -> None:
    if source not in VERSION_SOURCES:
        raise ValueError(f"source must be one of {', '.join(VERSION_SOURCES)}")


def _parent_placement(
    session: DbSession, own: dict[str, Any], moving: Organisation | None = None
) -> Placement | None:
    level = own["level"]
    parent_code = own.get("parent_sor_code")
    if level == "IE":
        if parent_code:
            raise InvalidChange({"parent_sor_code": "an institution owner (IE) has no parent"})
        return None
    if not parent_code:
        raise InvalidChange({"parent_sor_code": f"an {level} needs a parent"})
    parent = session.get(Organisation, parent_code)
    if parent is None:
        raise InvalidChange({"parent_sor_code": f"no organisation has SOR code {parent_code}"})
    if level not in CHILD_LEVELS[parent.level]:
        raise InvalidChange(
            {"parent_sor_code": f"an {level} cannot be placed under an {parent.level}"}
        )
    if moving is not None and parent.path.startswith(moving.path):
        raise InvalidChange({"parent_sor_code": "an organisation cannot move under itself"})
    return placement_from_row(parent)


def _refresh_subtree(
    session: DbSession, root: Organisation, old_path: str, now: datetime
) -> list[str]:
    """Recompute what the units under *root* inherit, top down; the codes that changed."""
    changed: list[str] = []
    placements = {root.sor_code: placement_from_row(root)}
    units = session.execute(
        select(Organisation)
        .where(Organisation.path.like(f"{old_path}%"), Organisation.sor_code != root.sor_code)
        .order_by(Organisation.depth)
    ).scalars()
    for unit in units:
        assert unit.parent_sor_code is not None  # a unit under root has a parent
        own = {name: getattr(unit, name) for name in OWN_FIELDS}
        derived = derive(own, unit.sor_code, placements[unit.parent_sor_code])
        fingerprint = derived_fingerprint(derived)
        if fingerprint != unit.derived_hash:
            for name, value in derived.items():
                setattr(unit, name, value)
            unit.derived_hash = fingerprint
            unit.updated_at = now
            changed.append(unit.sor_code)
        placements[unit.sor_code] = placement_from_row(unit)
    session.flush()
    return changed


def allocate_sor_code(session: DbSession) -> str:
    """A new SOR code: namespace 1000016, partition 00, Verhoeff check digit, never used before.

    Safe under concurrent transactions: the counter row is updated first, which
    serialises allocators until each commits (or rolls back: a rolled-back
    allocation gives its number back, and no code was handed out with it).
    """
    counter = table_of(SorCodeCounter)
    while True:
        item = session.execute(
            counter.update()
            .where(counter.c.name == "sor")
            .values(last_item=counter.c.last_item + 1)
            .returning(counter.c.last_item)
        ).scalar_one()
        code = ids.make_sor_code(item)
        if session.get(Organisation, code) is None:
            return code

"""Reads as of a date and as of an instant: SORES's ``GetSorEntity(SorIds, Date)``, bitemporal.

The register keeps every state of an organisation as a version: its own values (the
snapshot), recorded at ``recorded_at`` - the register's *transaction time* - and each
snapshot carries ``valid_from`` / ``valid_to``, when that state is in force - the
*valid time*. Two questions follow, and both at once:

- **as recorded at T** (``as_recorded``): what the register said at instant T - the
  newest version recorded at or before T, whatever its validity; nothing before the
  first version.
- **in force on D** (``on``): the newest version whose ``valid_from`` is on or before D
  (none: valid from the start). A version that had taken effect by D replaces those
  before it: a later closing cuts an earlier open-ended state, and a correction recorded
  later with the same ``valid_from`` wins. The organisation was in force on D if that
  version's ``valid_to`` is after D; otherwise, or when no version had taken effect by
  D, it was not (the API answers 404). Taking "any version whose period covers D"
  instead would answer an organisation closed since with the open-ended state it had
  before its closing.
- **both**: what the register said at T about D - the rule for D among the versions
  recorded by T.

The answer is an organisation with its effective values as of the same moment:
address, contact data and GLN inherited from its ancestors, its owner, ownership and
institution - derived by ``hierarchy.records.derive`` from the ancestors' versions
chosen by the same rule (an ancestor with none in force then gives its nearest one:
the state that had taken effect by then, or its first). A unit moved since sits under
the parent it had then.

Reads: all versions of the asked codes in one statement, then one per level of
ancestors (parents shared by many units are read once) - a batch of 500 codes costs a
handful of statements, not 500 times the depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from hierarchy.models import OrganisationVersion
from hierarchy.records import Placement, derive, own_values_from_snapshot, placement_of
from sorregistry.database import DbSession, is_postgresql, one_of

__all__ = ["AsOfItem", "Moment", "organisations_as_of", "version_as_recorded"]

_CHUNK = 1000  # codes per statement: well inside SQLite's limit on bound parameters
_MAX_DEPTH = 64  # a tree is a handful of levels deep; this bounds a corrupt one


@dataclass(frozen=True, slots=True)
class Moment:
    """When to read: in force on ``on`` (valid time), as recorded at ``as_recorded``
    (transaction time, timezone-aware), either or both."""

    on: date | None = None
    as_recorded: datetime | None = None

    def __post_init__(self) -> None:
        if self.as_recorded is not None and self.as_recorded.utcoffset() is None:
            raise ValueError("as_recorded needs a time zone")


@dataclass(frozen=True, slots=True)
class AsOfItem:
    """An organisation as it stood at a moment: what ``organisation_item`` shows
    (``hierarchy.search.statements.ItemRow``), and when that version was recorded."""

    sor_code: str
    name: str
    name_search: str
    level: str
    entity_type: str | None
    ownership: str | None
    owner_cvr: str | None
    ydernummer: str | None
    shak: str | None
    p_number: str | None
    parent_sor_code: str | None
    institution_sor_code: str | None
    owner_sor_code: str
    effective: dict[str, Any]
    inherited: list[str]
    clinical_specialities: list[dict[str, str]] | None
    replaces: list[str] | None
    replaced_by: list[str] | None
    first_valid_from: date | None
    valid_from: date | None
    valid_to: date | None
    version: int
    recorded_at: datetime
    own_address: bool  # the version gives an address of its own (not inherited)

    @property
    def updated_at(self) -> datetime:
        """When the register last changed this organisation, as of the moment: the
        version's recording (what FHIR's ``meta.lastUpdated`` shows)."""
        return self.recorded_at


@dataclass(frozen=True, slots=True)
class _Version:
    version: int
    recorded_at: datetime
    own: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Choice:
    version: _Version
    in_force: bool


def choose(versions: Sequence[_Version], moment: Moment) -> _Choice | None:
    """The version *moment* reads among *versions* (oldest first), and whether the
    organisation was in force then; None when the register held none of it yet."""
    known = [v for v in versions
             if moment.as_recorded is None or v.recorded_at <= moment.as_recorded]
    if not known:
        return None
    day = moment.on
    if day is None:
        return _Choice(known[-1], True)
    started = [v for v in known if v.own["valid_from"] is None or v.own["valid_from"] <= day]
    if not started:
        return _Choice(known[0], False)
    chosen = started[-1]
    valid_to = chosen.own["valid_to"]
    return _Choice(chosen, valid_to is None or valid_to > day)


def organisations_as_of(
    session: DbSession, codes: Iterable[str], moment: Moment
) -> dict[str, AsOfItem]:
    """The organisations among *codes* as they stood at *moment*; a code is absent when
    the register held no version of it then, or (with ``on``) it was not in force."""
    wanted = list(dict.fromkeys(codes))
    versions = _read_versions(session, wanted)
    chosen: dict[str, _Choice | None] = {code: choose(versions.get(code, ()), moment)
                                         for code in wanted}
    answered = [code for code in wanted if (c := chosen[code]) is not None and c.in_force]
    _choose_ancestors(session, chosen, versions, moment, answered)
    placements: dict[str, Placement | None] = {}
    items: dict[str, AsOfItem] = {}
    for code in answered:
        choice = chosen[code]
        assert choice is not None
        own = choice.version.own
        derived = derive(own, code, _placement(own.get("parent_sor_code"), chosen, placements))
        items[code] = _item(code, choice.version, derived)
    return items


def version_as_recorded(session: DbSession, code: str, number: int, recorded_at: datetime,
                        snapshot: Mapping[str, Any]) -> AsOfItem:
    """The organisation *code* as its version *number* (recorded at *recorded_at*, own
    values *snapshot*) showed it: what it inherited from its ancestors as the register
    held them when that version was recorded - what FHIR's vread and history serve."""
    version = _Version(number, recorded_at, own_values_from_snapshot(snapshot))
    chosen: dict[str, _Choice | None] = {code: _Choice(version, True)}
    _choose_ancestors(session, chosen, {code: [version]}, Moment(as_recorded=recorded_at),
                      [code])
    parent = _placement(version.own.get("parent_sor_code"), chosen, {})
    return _item(code, version, derive(version.own, code, parent))


def _read_versions(session: DbSession, codes: Sequence[str]) -> dict[str, list[_Version]]:
    """Every version of *codes*, oldest first (the (sor_code, version) index serves it)."""
    found: dict[str, list[_Version]] = {}
    ordered = sorted(set(codes))
    table = OrganisationVersion
    postgresql = is_postgresql(session)
    for start in range(0, len(ordered), _CHUNK):
        rows = session.execute(
            select(table.sor_code, table.version, table.recorded_at, table.snapshot)
            .where(one_of(table.sor_code, ordered[start:start + _CHUNK], postgresql=postgresql))
            .order_by(table.sor_code, table.version)
        )
        for code, number, recorded_at, snapshot in rows:
            found.setdefault(code, []).append(
                _Version(number, recorded_at, own_values_from_snapshot(snapshot)))
    return found


def _choose_ancestors(session: DbSession, chosen: dict[str, _Choice | None],
                      versions: dict[str, list[_Version]], moment: Moment,
                      codes: Iterable[str]) -> None:
    """Add to *chosen* the ancestors of *codes*, level by level: one read per level.

    An ancestor the register held no version of at the moment takes its first (it is
    the parent the unit's version names, so the unit's values are derived under it).
    """
    level = set(codes)
    followed: set[str] = set()
    for _ in range(_MAX_DEPTH):
        followed |= level
        parents = {
            parent
            for code in level
            if (choice := chosen.get(code)) is not None
            and (parent := choice.version.own.get("parent_sor_code")) is not None
        } - followed
        if not parents:
            return
        unread = sorted(parents - chosen.keys())
        versions.update(_read_versions(session, unread))
        for parent in unread:
            own_versions = versions.get(parent, [])
            choice = choose(own_versions, moment)
            if choice is None and own_versions:
                choice = _Choice(own_versions[0], False)
            chosen[parent] = choice
        level = parents


def _placement(code: str | None, chosen: Mapping[str, _Choice | None],
               placements: dict[str, Placement | None]) -> Placement | None:
    """What the ancestor *code* (as chosen) passes on to its units, derived top down."""
    if code is None:
        return None
    if code in placements:
        return placements[code]
    chain: list[str] = []
    current: str | None = code
    while current is not None and current not in placements and current not in chain \
            and len(chain) < _MAX_DEPTH:
        chain.append(current)
        choice = chosen.get(current)
        current = choice.version.own.get("parent_sor_code") if choice is not None else None
    for ancestor in reversed(chain):
        choice = chosen.get(ancestor)
        if choice is None:
            placements[ancestor] = None
            continue
        own = choice.version.own
        parent = own.get("parent_sor_code")
        above = placements.get(parent) if parent is not None else None
        placements[ancestor] = placement_of(ancestor, own["level"], derive(own, ancestor, above))
    return placements[code]


def _item(code: str, version: _Version, derived: Mapping[str, Any]) -> AsOfItem:
    own = version.own
    return AsOfItem(
        sor_code=code,
        name=own["name"],
        name_search=derived["name_search"],
        level=own["level"],
        entity_type=own["entity_type"],
        ownership=derived["ownership"],
        owner_cvr=derived["owner_cvr"],
        ydernummer=own["ydernummer"],
        shak=own["shak"],
        p_number=own["p_number"],
        parent_sor_code=own["parent_sor_code"],
        institution_sor_code=derived["institution_sor_code"],
        owner_sor_code=derived["owner_sor_code"],
        effective=derived["effective"],
        inherited=derived["inherited"],
        clinical_specialities=own["clinical_specialities"],
        replaces=own["replaces"],
        replaced_by=own["replaced_by"],
        first_valid_from=own["first_valid_from"],
        valid_from=own["valid_from"],
        valid_to=own["valid_to"],
        version=version.version,
        recorded_at=version.recorded_at,
        own_address=bool(own.get("visiting_address") or own.get("postal_address")),
    )

"""The import's replacement links: filling in the other side of what the files state.

An export may give a link on one side only (A ``ReplacedBy`` B, B without ``Replaces``
A). The register keeps both sides (``hierarchy.successors``), so the import completes
them by one rule: the links are those the files state for the entities they contain,
and those the register holds for the entities they do not contain; each side holds its
own statement, then the codes the other sides add (``successors.merge_links``). A
filled-in side is a change of that organisation's own values: a version, like any.

Two steps keep a re-import of the same file free of changes:

- while the file streams, each row is completed with the best estimate at hand
  (:meth:`Links.complete`): the statements of the rows already read, and the
  register's for those not read yet. So a link given on one side classifies as
  unchanged the next night, instead of a version dropping the filled-in side and
  another adding it back;
- once the files are read every statement is known (:meth:`Links.corrections`), and
  the few sides that differ from what was written - a link whose other side was read
  first, one the files dropped - are written as versions by :func:`fill_in`.

Links the files cannot see both ends of (the other end is outside the files' owners)
stay as the register holds them: the files do not speak for that end. A code the
register does not hold is kept where it is stated and gets no side of its own. The
cost is a dictionary of the entities that have links (a few per cent of the register),
after the files a look-up of the codes the links name (read? registered?), and one read
and one write per organisation whose side changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection

from hierarchy import changes
from hierarchy.import_writer import Row, json_text
from hierarchy.models import Organisation, table_of
from hierarchy.records import OWN_FIELDS, digest, snapshot_json
from hierarchy.successors import merge_links
from sorregistry.database import is_postgresql, one_of

__all__ = ["Links", "Sides", "fill_in", "load_links"]

_CHUNK = 1000

# One organisation's two sides: (replaces, replaced_by).
Sides = tuple[list[str] | None, list[str] | None]
# Of the codes given: those read from the files, those the register holds.
Lookup = Callable[[Iterable[str]], tuple[set[str], set[str]]]
_NONE: Sides = (None, None)


def _parse(value: Any) -> list[str] | None:
    """A link column's value, as the ORM or the import's text rows hold it."""
    if isinstance(value, str):
        value = orjson.loads(value)
    return list(value) if value else None


def load_links(connection: Connection) -> dict[str, Sides]:
    """Every organisation of the register that holds a link, with its two sides."""
    org = table_of(Organisation)
    rows = connection.execute(
        select(org.c.sor_code, org.c.replaces, org.c.replaced_by).where(
            or_(org.c.replaces.is_not(None), org.c.replaced_by.is_not(None))
        )
    )
    held: dict[str, Sides] = {}
    for code, replaces, replaced_by in rows:
        sides = (_parse(replaces), _parse(replaced_by))
        if sides != _NONE:
            held[code] = sides
    return held


@dataclass
class Links:
    """The links one import sees: the register's before it (*held*), the files' as read."""

    held: dict[str, Sides]
    # The codes of *held* read so far: all the streaming estimate needs to know of what
    # was read (the import keeps no set of every code read: ``import_read``).
    read_held: set[str] = field(default_factory=set)
    stated: dict[str, Sides] = field(default_factory=dict)
    written: dict[str, Sides] = field(default_factory=dict)
    # code -> the codes whose statements give it a side: [0] replaces, [1] replaced_by.
    _held_in: tuple[dict[str, set[str]], dict[str, set[str]]] = field(init=False)
    _read_in: tuple[dict[str, set[str]], dict[str, set[str]]] = field(init=False)

    def __post_init__(self) -> None:
        self._held_in = (defaultdict(set), defaultdict(set))
        self._read_in = (defaultdict(set), defaultdict(set))
        for code, sides in self.held.items():
            _index(self._held_in, code, sides)

    def complete(self, row: Row, snapshot: str) -> tuple[Row, str]:
        """*row* (read from the files, with its snapshot) with both sides of its links as
        far as known now; the snapshot and the content fingerprint follow."""
        code = row["sor_code"]
        if code in self.held:
            self.read_held.add(code)
        stated = (_parse(row["replaces"]), _parse(row["replaced_by"]))
        if stated != _NONE:
            self.stated[code] = stated
            _index(self._read_in, code, stated)
        if code not in self._held_in[0] and code not in self._held_in[1] \
                and code not in self._read_in[0] and code not in self._read_in[1]:
            if stated != _NONE:
                self.written[code] = stated
            return row, snapshot  # nobody else names it: the common case, nothing to do
        estimate = tuple(
            merge_links(stated[side], self._estimate(code, side)) for side in (0, 1)
        )
        sides: Sides = (estimate[0], estimate[1])
        if sides != _NONE:
            self.written[code] = sides
        if sides == stated:
            return row, snapshot
        own = orjson.loads(snapshot)
        own["replaces"], own["replaced_by"] = sides
        own_json = snapshot_json(own)
        completed = dict(row, replaces=json_text(sides[0]), replaced_by=json_text(sides[1]),
                         content_hash=digest(own_json))
        return completed, own_json.decode()

    def _estimate(self, code: str, side: int) -> set[str]:
        """Who gives *code* this side: rows read so far, and the register for the rest."""
        # Every code in _held_in's sets is one of *held*: read_held says if it was read.
        from_register = {c for c in self._held_in[side].get(code, ())
                         if c not in self.read_held}
        return (from_register | self._read_in[side].get(code, set())) - {code}

    def corrections(self, lookup: Lookup) -> dict[str, Sides]:
        """The sides that differ, now that every statement is read, from what the
        register holds after the rows were written. *lookup* says which of the codes it
        is given were read from the files, and which the register holds now (those it
        held before and those the files added)."""
        statements = {code: sides for code, sides in self.held.items()
                      if code not in self.read_held}
        statements.update(self.stated)
        final: tuple[dict[str, set[str]], dict[str, set[str]]] = (defaultdict(set),
                                                                  defaultdict(set))
        for code, sides in statements.items():
            _index(final, code, sides)
            for side in (0, 1):
                final[side][code].update(c for c in sides[side] or () if c != code)
        found: dict[str, Sides] = {}
        candidates = set(final[0]) | set(final[1]) | set(self.written)
        seen, registered = lookup(candidates)
        for code in candidates:
            if code not in registered:
                continue
            current = self.written.get(code, _NONE) if code in seen \
                else self.held.get(code, _NONE)
            base = self.stated.get(code, _NONE) if code in seen else current
            target = (merge_links(base[0], final[0].get(code, ())),
                      merge_links(base[1], final[1].get(code, ())))
            if target != current:
                found[code] = target
        return found


def _index(index: tuple[dict[str, set[str]], dict[str, set[str]]], code: str,
           sides: Sides) -> None:
    """Note what *code*'s statement gives others: B ``replaced_by`` of A gives A's
    ``replaced_by`` side to B's ``replaces``, and the reverse."""
    replaces, replaced_by = sides
    for other in replaced_by or ():
        if other != code:
            index[0][other].add(code)
    for other in replaces or ():
        if other != code:
            index[1][other].add(code)


@dataclass(frozen=True, slots=True)
class Filled:
    """One organisation whose side was filled in (or taken away): its level, new version."""

    sor_code: str
    level: str
    version: int


def fill_in(connection: Connection, corrections: Mapping[str, Sides], now: datetime,
            version: Callable[[str, int, str], changes.VersionRow]) -> list[Filled]:
    """Write *corrections* into the register: each organisation's two sides, a new
    version (made by *version*: code, number, snapshot) and the one before superseded.

    Runs after the import's rows are all written (``ImportWriter.finish``).
    """
    organisations = table_of(Organisation)
    columns = [organisations.c[name] for name in ("sor_code", "version", *OWN_FIELDS)]
    filled: list[Filled] = []
    ordered = sorted(corrections)
    postgresql = is_postgresql(connection)
    for start in range(0, len(ordered), _CHUNK):
        chunk: Sequence[str] = ordered[start:start + _CHUNK]
        rows = connection.execute(select(*columns).where(
            one_of(organisations.c.sor_code, chunk, postgresql=postgresql)))
        versions: list[changes.VersionRow] = []
        for row in rows:
            own = {name: getattr(row, name) for name in OWN_FIELDS}
            own["replaces"], own["replaced_by"] = corrections[row.sor_code]
            own_json = snapshot_json(own)
            number = row.version + 1
            connection.execute(
                update(organisations)
                .where(organisations.c.sor_code == row.sor_code)
                .values(replaces=own["replaces"], replaced_by=own["replaced_by"],
                        version=number, content_hash=digest(own_json), updated_at=now)
            )
            versions.append(version(row.sor_code, number, own_json.decode()))
            filled.append(Filled(row.sor_code, row.level, number))
        if versions:
            connection.execute(insert(changes.VERSION_TABLE), versions)
        changes.supersede(connection, [v["sor_code"] for v in versions], now)
    return filled

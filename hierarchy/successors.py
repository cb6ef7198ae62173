"""Successors: where a closed organisation went, and replacement links kept on both sides.

A closed unit names the unit(s) that took over from it (``replaced_by``, SOR's
``ReplacedByEntityCollection``) and a successor names those it took over
(``replaces``, ``ReplacesEntityCollection``). Mergers make fan-in (A, B → C), splits
fan-out (A → B, C), and reorganisations one after the other make chains (A → B → C);
what a reporter or a mirror wants is the organisation(s) in force at the end of each
chain (NHS ODS users meet the same problem after practice mergers).

**Both sides.** The register keeps a link on both sides, as values of each
organisation's own (so each side's change is a version of it, in its history and in
the change feed): :func:`merge_links` is the one rule for what a side holds - the
codes it states itself, in its order, then those the other sides add, sorted - used by
the service (``hierarchy.service``) and by the import (``hierarchy.import_links``).

**The walk** (:func:`find_successors`) follows ``replaced_by`` level by level for every
start at once: one query per hop, whatever the number of starts (a batch of 500 closed
codes two hops from their successors costs two queries). It ends a chain at the first
organisation not closed on the day asked (a successor that starts later is still the
answer: it is where the unit went); a closed one that names no successor, or a code the
register does not hold, ends its chain without one (``ended``). Each start has its own
visited set, so a cycle (A → B → A) ends without error, and the walk stops after
:data:`MAX_HOPS` hops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, scoped_session

from hierarchy.models import Organisation
from sorregistry.database import is_postgresql, one_of

__all__ = [
    "DEFAULT_WARNING_DAYS",
    "MAX_HOPS",
    "ChainEnd",
    "Successors",
    "find_successors",
    "merge_links",
    "successor_entry",
    "warning_days",
]

MAX_HOPS = 20  # real chains are one to three hops; this bounds a pathological one
DEFAULT_WARNING_DAYS = 365
_CHUNK = 1000  # codes per statement: well inside SQLite's limit on bound parameters
# The app's db.session, a plain Session, or the lookups' (hierarchy.reporting) alike;
# or the connection a writer records on (the feed's items, hierarchy.changes).
AnySession = Session | scoped_session[Any] | Connection


def merge_links(stated: Sequence[str] | None, others: Iterable[str]) -> list[str] | None:
    """What one side of a link holds: *stated* (its own word, order kept, duplicates
    dropped) and then the codes *others* add, sorted; None when that is nothing.

    The same rule for every writer, so that an import classifying a row and the pass
    that fills in the other sides afterwards reach the same list (and the next import
    of the same file finds nothing changed).
    """
    kept = list(dict.fromkeys(stated or ()))
    present = set(kept)
    added = sorted({code for code in others if code not in present})
    merged = kept + added
    return merged or None


def warning_days() -> int:
    """``SOR_SUCCESSOR_WARNING_DAYS``: how long after its closing a replaced code still
    only warns (resolve, reporting-unit validation); 0 turns the warning off."""
    if has_app_context():
        return int(current_app.config.get("SUCCESSOR_WARNING_DAYS", DEFAULT_WARNING_DAYS))
    return DEFAULT_WARNING_DAYS


@dataclass(frozen=True, slots=True)
class ChainEnd:
    """The organisation at the end of one chain, *hops* steps from where it started.

    ``name`` is None for a code the register does not hold.
    """

    sor_code: str
    name: str | None
    level: str | None
    valid_from: date | None
    valid_to: date | None
    hops: int


@dataclass(slots=True)
class Successors:
    """The ends of an organisation's chains: in force on the day, or ended without one."""

    active: list[ChainEnd] = field(default_factory=list)
    ended: list[ChainEnd] = field(default_factory=list)

    def describe(self) -> str:
        """``"Y (name), Z (name)"``: the active successors as a message names them."""
        return ", ".join(
            f"{end.sor_code} ({end.name})" if end.name else end.sor_code for end in self.active
        )


@dataclass(frozen=True, slots=True)
class _Node:
    sor_code: str
    name: str
    level: str
    valid_from: date | None
    valid_to: date | None
    replaced_by: tuple[str, ...]


def find_successors(
    session: AnySession, starts: Mapping[str, Sequence[str] | None], day: date
) -> dict[str, Successors]:
    """The chain ends of every start (its code -> its ``replaced_by``), judged on *day*.

    Starts with no ``replaced_by`` get empty answers and cost nothing.
    """
    answers = {code: Successors() for code in starts}
    walks = {
        code: _Walk(code, [c for c in dict.fromkeys(links or ()) if c != code])
        for code, links in starts.items()
        if links
    }
    nodes: dict[str, _Node | None] = {}
    for hop in range(1, MAX_HOPS + 1):
        wanted = {c for walk in walks.values() for c in walk.frontier if c not in nodes}
        nodes.update(_read_nodes(session, wanted))
        for walk in walks.values():
            walk.step(nodes, day, hop, answers[walk.start])
        walks = {code: walk for code, walk in walks.items() if walk.frontier}
        if not walks:
            break
    return answers


@dataclass(slots=True)
class _Walk:
    start: str
    frontier: list[str]
    visited: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.visited.add(self.start)

    def step(self, nodes: Mapping[str, _Node | None], day: date, hop: int,
             answer: Successors) -> None:
        """One hop: each code of the frontier ends its chain or leads on."""
        following: list[str] = []
        for code in self.frontier:
            if code in self.visited:
                continue  # fan-in reaches it twice; a cycle comes back to it
            self.visited.add(code)
            node = nodes.get(code)
            if node is None:
                answer.ended.append(ChainEnd(code, None, None, None, None, hop))
            elif node.valid_to is None or node.valid_to > day:
                answer.active.append(_end(node, hop))
            else:
                onward = [c for c in node.replaced_by if c not in self.visited]
                if onward:
                    following.extend(onward)
                elif not node.replaced_by:
                    answer.ended.append(_end(node, hop))
                # else: it leads back into the chain only (a cycle): nothing more here
        self.frontier = list(dict.fromkeys(following))


def _end(node: _Node, hops: int) -> ChainEnd:
    return ChainEnd(node.sor_code, node.name, node.level, node.valid_from, node.valid_to, hops)


_NODE_COLUMNS = (
    Organisation.sor_code,
    Organisation.name,
    Organisation.level,
    Organisation.valid_from,
    Organisation.valid_to,
    Organisation.replaced_by,
)


def _read_nodes(session: AnySession, codes: set[str]) -> dict[str, _Node | None]:
    """The organisations of *codes* (None for those the register does not hold)."""
    found: dict[str, _Node | None] = dict.fromkeys(codes)
    ordered = sorted(codes)
    postgresql = is_postgresql(session)
    for start in range(0, len(ordered), _CHUNK):
        rows = session.execute(select(*_NODE_COLUMNS).where(one_of(
            Organisation.sor_code, ordered[start:start + _CHUNK], postgresql=postgresql)))
        for code, name, level, valid_from, valid_to, replaced_by in rows:
            found[code] = _Node(code, name, level, valid_from, valid_to,
                                tuple(replaced_by or ()))
    return found


def successor_entry(end: ChainEnd) -> dict[str, Any]:
    """A chain end as the API shows it."""
    return {
        "sor_code": end.sor_code,
        "name": end.name,
        "level": end.level,
        "valid_from": end.valid_from,
        "valid_to": end.valid_to,
        "hops": end.hops,
    }

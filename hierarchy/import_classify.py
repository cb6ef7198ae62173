"""What the SOR import does with each entity: its register row, and how it differs.

Each entity of the file becomes the row the register would hold for it
(:func:`register_rows`: own values, what the tree gives it, fingerprints), and is
classified against the fingerprints the register holds (:func:`load_known`, a few
bytes per entity, loaded once) by :func:`classify`:

- **new**: not in the register;
- **changed**: its own values differ (a new version);
- **derived**: only what it inherits or its place in the tree differs (e.g. its
  owner's phone number changed): updated without a new version;
- **unchanged**: nothing to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.engine import Connection

from hierarchy.import_writer import JSON_COLUMNS, Row, json_text
from hierarchy.models import Organisation, table_of
from hierarchy.records import (
    OWN_FIELDS,
    Placement,
    derive,
    derived_fingerprint,
    digest,
    placement_of,
    snapshot_json,
)
from hierarchy.sor_xml import SorEntity, SorFileError

Action = Literal["new", "changed", "derived", "unchanged"]
# A problem found in the file: file, line, sor_code, level, problems.
Problem = dict[str, Any]


@dataclass(slots=True)
class Known:
    """What the register holds about one SOR code, enough to classify an incoming entity."""

    content_hash: str
    derived_hash: str
    version: int
    owner_sor_code: str
    level: str
    is_open: bool


def load_known(connection: Connection) -> dict[str, Known]:
    """Every SOR code the register holds, with its fingerprints."""
    org = table_of(Organisation)
    rows = connection.execute(
        select(
            org.c.sor_code,
            org.c.content_hash,
            org.c.derived_hash,
            org.c.version,
            org.c.owner_sor_code,
            org.c.level,
            org.c.valid_to,
        ).execution_options(yield_per=20000)
    )
    return {
        code: Known(content, derived, version, owner, level, valid_to is None)
        for code, content, derived, version, owner, level, valid_to in rows
    }


def classify(before: Known | None, row: Row) -> Action:
    """How the register row *row* differs from what the register holds (*before*)."""
    if before is None:
        return "new"
    if before.content_hash != row["content_hash"]:
        return "changed"
    if before.derived_hash != row["derived_hash"]:
        return "derived"
    return "unchanged"


def register_rows(
    entities: Iterator[SorEntity],
    file_name: str,
    seen: set[str],
    skipped: set[str],
    problems: list[Problem],
    strict: bool,
) -> Iterator[tuple[Row, str]]:
    """Turn the file's entities into register rows, computing what the tree gives each.

    Yields each row with the canonical JSON of its own values (its version snapshot).
    Entities with problems, and those under them, are skipped and listed in *problems*.
    """
    ancestors: list[Placement] = []
    for entity in entities:
        entity_problems = list(entity.problems)
        parent_code = entity.parent_sor_code
        if entity.level == "IE":
            ancestors.clear()
        else:
            while ancestors and ancestors[-1].sor_code != parent_code:
                ancestors.pop()
            if not parent_code or parent_code in skipped or not ancestors:
                entity_problems.append("its parent was skipped")
        if entity.sor_code and not entity_problems and entity.sor_code in seen:
            raise SorFileError(
                f"SOR code {entity.sor_code} appears twice in the export ({file_name})",
                entity.line,
            )
        if entity_problems:
            if entity.sor_code:
                skipped.add(entity.sor_code)
            problems.append(
                {
                    "file": file_name,
                    "line": entity.line,
                    "sor_code": entity.sor_code,
                    "level": entity.level,
                    "problems": entity_problems,
                }
            )
            if strict and len(problems) >= 20:
                break
            continue
        sor_code = entity.sor_code
        assert sor_code is not None
        seen.add(sor_code)
        own = {name: getattr(entity, name) for name in OWN_FIELDS}
        own_json = snapshot_json(own)
        derived = derive(own, sor_code, ancestors[-1] if ancestors else None)
        ancestors.append(placement_of(sor_code, entity.level, derived))
        row = {"sor_code": sor_code, **own, **derived}
        for name in JSON_COLUMNS:
            row[name] = json_text(row[name])
        row["content_hash"] = digest(own_json)
        row["derived_hash"] = derived_fingerprint(derived)
        yield row, own_json.decode()

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
from typing import Any, Literal

from hierarchy.import_read import Known
from hierarchy.import_writer import JSON_COLUMNS, Row, json_text
from hierarchy.records import (
    EFFECTIVE_VALUES,
    OWN_FIELDS,
    Placement,
    derive,
    derived_fingerprint,
    digest,
    placement_of,
    snapshot_json,
)
from hierarchy.sor_xml import SorEntity

Action = Literal["new", "changed", "derived", "unchanged"]
# A problem found in the file: file, line, sor_code, level, problems.
Problem = dict[str, Any]


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
    skipped: set[str],
    problems: list[Problem],
    strict: bool,
) -> Iterator[tuple[Row, str, int]]:
    """Turn the file's entities into register rows, computing what the tree gives each.

    Yields each row with the canonical JSON of its own values (its version snapshot) and
    its line. Entities with problems, and those under them, are skipped and listed in
    *problems*. A code read twice is the caller's to find (``import_read``).
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
        own = {name: getattr(entity, name) for name in OWN_FIELDS}
        own_json = snapshot_json(own)
        derived = derive(own, sor_code, ancestors[-1] if ancestors else None)
        ancestors.append(placement_of(sor_code, entity.level, derived))
        row = {"sor_code": sor_code, **own, **derived}
        row[EFFECTIVE_VALUES] = derived["effective"]
        for name in JSON_COLUMNS:
            row[name] = json_text(row[name])
        row["content_hash"] = digest(own_json)
        row["derived_hash"] = derived_fingerprint(derived)
        yield row, own_json.decode(), entity.line

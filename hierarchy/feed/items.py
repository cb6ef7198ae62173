"""A feed entry's item, rendered once when the change is recorded and stored as JSON text.

Rendering an organisation as the API shows it (``hierarchy.schemas.organisation_item``:
its entity type's name, its two addresses, its successors) costs far more than reading
its row; a mirror catching up from zero reads each entry once, but every mirror does, and
each page would render a thousand of them again. So ``hierarchy.changes`` renders an
entry as it records it - from the row it copied, the same values a reader would have got -
and ``feed_entries.item`` keeps the text; a page is the stored texts joined
(``hierarchy.feed.reading``), with nothing rendered or parsed per entry.

The text is the entry as the API shows it **less its position** (known only at commit,
``hierarchy.changes``): a reader puts ``{"position":N,`` in front of the text's first
``{`` (:func:`with_position`). ``organisation`` carries ``successors`` and
``successor_dead_ends`` when it names a successor (``replaced_by``), as
``GET /api/v1/organisations/{code}`` does, judged on the day of the change (a
``took_effect`` entry: the day it took effect). An entry is a snapshot: a successor
closed later changes the chain's end without an entry for its predecessors (their own
rows did not change); ``GET /organisations/{code}`` gives the chain's end today.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date
from types import SimpleNamespace
from typing import Any

import orjson

from hierarchy.feed.entries import JSON_COLUMNS
from hierarchy.schemas import organisation_item, with_successors
from hierarchy.successors import AnySession, Successors, find_successors

__all__ = ["copy_data", "render_created", "render_items", "with_position"]


def _decoded(row: Any) -> SimpleNamespace:
    """*row* with its JSON columns (text, ``hierarchy.feed.entries.JSON_COLUMNS``) decoded."""
    values = row._asdict()
    for name in JSON_COLUMNS:
        text = values[name]
        values[name] = orjson.loads(text) if text is not None else None
    return SimpleNamespace(**values)


def _entry(row: Any) -> dict[str, Any]:
    """One entry as the API shows it, without its position, from a row holding the
    entry's columns and the organisation's (``hierarchy.feed.entries``)."""
    return {
        "sor_code": row.sor_code,
        "change": row.change,
        "changed_fields": row.changed_fields.rstrip(",").split(",")
        if row.changed_fields else [],
        "inherited": bool(row.by_inheritance),
        "recorded_at": row.recorded_at.astimezone(UTC),
        "source": row.source,
        "reference": row.reference,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "took_effect_on": row.took_effect_on,
        "organisation": organisation_item(row),
    }


def render_items(session: AnySession, rows: Sequence[Any], today: date) -> list[str]:
    """The stored text of each entry row (``hierarchy.feed.entries``' statements: JSON
    columns as text), in order; successors judged on *today* (or on the day a
    ``took_effect`` entry took effect). One query per hop of the successor chains for all
    the rows together."""
    rows = [_decoded(row) for row in rows]
    found: dict[tuple[str, date], Successors] = {}
    by_day: dict[date, dict[str, Sequence[str]]] = {}
    for row in rows:
        if row.replaced_by:
            by_day.setdefault(row.took_effect_on or today, {})[row.sor_code] = row.replaced_by
    for day, starts in by_day.items():
        for code, answer in find_successors(session, starts, day).items():
            found[(code, day)] = answer
    texts = []
    for row in rows:
        entry = _entry(row)
        if row.replaced_by:
            with_successors(entry["organisation"], found[(row.sor_code,
                                                          row.took_effect_on or today)])
        texts.append(orjson.dumps(entry).decode())
    return texts


def render_created(entry: Mapping[str, Any]) -> str:
    """The stored text of a ``created`` entry the import writes as it inserts the
    organisation: *entry* holds the entry's columns and the organisation's row as the
    import sends it (JSON columns as their text). The organisation names no successor
    (those are rendered with their chains' ends, :func:`render_items`)."""
    values = dict(entry)
    for name in JSON_COLUMNS:
        text = values[name]
        values[name] = orjson.loads(text) if text is not None else None
    return orjson.dumps(_entry(SimpleNamespace(**values))).decode()


def with_position(position: int, item: str | bytes) -> bytes:
    """The stored *item* (or its UTF-8) as the API shows it: with its position first."""
    return b'{"position":%d,%s' % (position,
                                    (item if isinstance(item, bytes) else item.encode())[1:])


def copy_data(rows: Sequence[Any], texts: Sequence[str]) -> bytes:
    """*rows* (their values in order, JSON as text) with their *texts* as the last value,
    in PostgreSQL's COPY text format, one line each."""
    lines = []
    for row, text in zip(rows, texts, strict=True):
        values = [_copy_value(value) for value in row]
        values.append(_escaped(text))
        lines.append("\t".join(values))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return _escaped(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, date):  # datetime included: ISO 8601 with its offset
        return value.isoformat()
    return str(value)


def _escaped(text: str) -> str:
    # Substring tests run in C; most values need no escaping at all.
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r"))
    return text

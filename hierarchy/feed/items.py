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
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import BigInteger, Text, bindparam, cast, column, func, null, select, table, update
from sqlalchemy.engine import Connection

from hierarchy.codes import entity_type_name
from hierarchy.feed.entries import (
    ENTRIES,
    FIELD_ORDER,
    JSON_COLUMNS,
    META_COLUMNS,
    ORGANISATIONS,
    STATE_COLUMNS,
    STORED_COLUMNS,
)
from hierarchy.schemas import organisation_item, shown_addresses, with_successors
from hierarchy.successors import AnySession, Successors, find_successors
from sorregistry.database import copy_text

__all__ = ["change_of", "created_copy_line", "organisation_columns", "render_created",
           "render_items", "render_missing", "with_position"]

_DATES = ("first_valid_from", "valid_from", "valid_to")
# The JSON columns an item shows as they are stored.
_LISTS = ("inherited", "clinical_specialities", "replaces", "replaced_by")


def _decoded(row: Any) -> SimpleNamespace:
    """*row* with its JSON columns (text, ``hierarchy.feed.entries.JSON_COLUMNS``) decoded."""
    values = row._asdict()
    for name in JSON_COLUMNS:
        text = values[name]
        values[name] = orjson.loads(text) if text is not None else None
    return SimpleNamespace(**values)


def _entry(row: Any, organisation: dict[str, Any]) -> dict[str, Any]:
    """One entry as the API shows it, without its position: the entry's columns of *row*
    and the *organisation* it shows."""
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
        "organisation": organisation,
    }


def _shown(organisation: Mapping[str, Any], field: str) -> Any:
    """*field* of an item (rendered, or read back from JSON) as JSON shows it."""
    value = organisation.get(field)
    if field == "entity_type":
        return value.get("code") if value else None
    if field in _DATES and isinstance(value, date):
        return value.isoformat()
    return value


def organisation_columns(shown: Mapping[str, Any]) -> dict[str, Any]:
    """The organisation's columns (``STATE_COLUMNS``) as an item read back from JSON shows
    them: ``organisation_item``'s inverse, the effective values those the item shows (an
    address as its six keys). What FHIR's history reads of a version's entry, and what
    migration 0022's downgrade puts back in the columns."""
    values: dict[str, Any] = {name: shown.get(name) for name in STATE_COLUMNS}
    values["owner_cvr"] = shown.get("cvr")
    values["entity_type"] = (shown.get("entity_type") or {}).get("code")
    values["effective"] = {
        "gln": shown.get("gln"), "phone": shown.get("phone"), "fax": shown.get("fax"),
        "email": shown.get("email"), "website": shown.get("website"),
        "postal_address": shown.get("address"),
        "visiting_address": shown.get("visiting_address"),
    }
    values["inherited"] = shown.get("inherited") or []
    for name in _DATES:
        values[name] = date.fromisoformat(values[name]) if values[name] else None
    return values


def change_of(organisation: Mapping[str, Any],
              previous: Mapping[str, Any] | None) -> tuple[str, str]:
    """(kind, changed fields) of an entry showing *organisation* after one that showed
    *previous* (None: no entry yet), both items as the API shows them: the fields named
    each followed by a comma (``hierarchy.feed.entries`` has the rules)."""
    if previous is None:
        return "created", ""
    fields = "".join(f"{field}," for field in FIELD_ORDER
                     if _shown(organisation, field) != _shown(previous, field))
    successors = organisation.get("replaced_by")
    if _shown(organisation, "parent_sor_code") != previous.get("parent_sor_code"):
        return "moved", fields
    if successors and successors != previous.get("replaced_by"):
        return "replaced", fields
    ends, ended = organisation.get("valid_to"), previous.get("valid_to")
    if ends is not None and ended is None:
        return "closed", fields
    if ends is None and ended is not None:
        return "reopened", fields
    return "changed", fields


def render_items(session: AnySession, rows: Sequence[Any], today: date,
                 base: int = 0) -> list[dict[str, Any]]:
    """The stored rows (``hierarchy.feed.entries.STORED_COLUMNS``) of the entry rows
    *rows* (the statements of ``hierarchy.feed.entries``: JSON columns as text), in
    order, each with its item rendered; successors judged on *today* (or on the day a
    ``took_effect`` entry took effect).

    A row whose ``changed_fields`` is null is compared with its ``previous`` item
    (:func:`change_of`): its kind, unless the row gives one, and its fields are what
    differs. A row with a kind but nothing that differs (a unit whose inherited values
    moved with no effect on its item) is left out. A row with no ``commit_seq`` is
    numbered ``base + 1`` on, in order, among those kept. One query per hop of the
    successor chains for all the rows together."""
    decoded = [_decoded(row) for row in rows]
    shown: list[tuple[SimpleNamespace, dict[str, Any]]] = []
    number = base
    for row in decoded:
        organisation = organisation_item(row)
        if row.changed_fields is None:
            previous = (orjson.loads(row.previous)["organisation"]
                        if row.previous is not None else None)
            change, row.changed_fields = change_of(organisation, previous)
            if row.change is None:
                row.change = change
            elif not row.changed_fields:
                continue
        if row.commit_seq is None:
            number += 1
            row.commit_seq = number
        shown.append((row, organisation))
    found: dict[tuple[str, date], Successors] = {}
    by_day: dict[date, dict[str, Sequence[str]]] = {}
    for row, _ in shown:
        if row.replaced_by:
            by_day.setdefault(row.took_effect_on or today, {})[row.sor_code] = row.replaced_by
    for day, starts in by_day.items():
        for code, answer in find_successors(session, starts, day).items():
            found[(code, day)] = answer
    stored = []
    for row, organisation in shown:
        if row.replaced_by:
            with_successors(organisation, found[(row.sor_code, row.took_effect_on or today)])
        values = {name: getattr(row, name) for name in META_COLUMNS}
        values["item"] = orjson.dumps(_entry(row, organisation)).decode()
        stored.append(values)
    return stored


def render_created(entry: Mapping[str, Any], organisation: Mapping[str, Any],
                   effective: Mapping[str, Any]) -> bytes:
    """The stored text of a ``created`` entry, as UTF-8, the import writes as it inserts the
    organisation: *entry* holds the entry's columns (``META_COLUMNS``), *organisation* the
    row as the import sends it, JSON columns as their text: the lists go into the text as
    they are; the effective values are *effective*, the dict their text was made from
    (not parsed again). The organisation names no successor (those
    are rendered with their chains' ends, :func:`render_items`).

    The import renders one for every organisation it inserts - on a first import, the
    whole register, on the thread that parses the files - so this builds the item in one
    pass from the row, without :func:`render_items`' namespaces: the same keys in the same
    order as ``hierarchy.schemas.organisation_item`` and :func:`_entry` (a test holds the
    two ways equal, ``tests/hierarchy/test_feed_entries.py``), left as the UTF-8 orjson
    makes, which PostgreSQL's COPY takes as it is (decoding it to text and encoding it
    again cost more than a third of the rendering)."""
    address, visiting_address = shown_addresses(effective)
    kind = organisation["entity_type"]
    valid_from, valid_to = organisation["valid_from"], organisation["valid_to"]
    inherited, specialities, replaces, successors = (organisation[name] for name in _LISTS)
    return orjson.dumps({
        "sor_code": entry["sor_code"],
        "change": entry["change"],
        "changed_fields": [],
        "inherited": bool(entry["by_inheritance"]),
        "recorded_at": entry["recorded_at"].astimezone(UTC),
        "source": entry["source"],
        "reference": entry["reference"],
        "valid_from": valid_from,
        "valid_to": valid_to,
        "took_effect_on": entry["took_effect_on"],
        "organisation": {
            "sor_code": entry["sor_code"],
            "name": organisation["name"],
            "level": organisation["level"],
            "entity_type": {"code": kind, "name": entity_type_name(kind)},
            "ownership": organisation["ownership"],
            "cvr": organisation["owner_cvr"],
            "ydernummer": organisation["ydernummer"],
            "shak": organisation["shak"],
            "gln": effective.get("gln"),
            "p_number": organisation["p_number"],
            "parent_sor_code": organisation["parent_sor_code"],
            "institution_sor_code": organisation["institution_sor_code"],
            "owner_sor_code": organisation["owner_sor_code"],
            "address": address,
            "visiting_address": visiting_address,
            "phone": effective.get("phone"),
            "fax": effective.get("fax"),
            "email": effective.get("email"),
            "website": effective.get("website"),
            "inherited": orjson.Fragment(inherited) if inherited is not None else [],
            "clinical_specialities": _fragment(specialities),
            "replaces": _fragment(replaces),
            "replaced_by": _fragment(successors),
            "first_valid_from": organisation["first_valid_from"],
            "valid_from": valid_from,
            "valid_to": valid_to,
            "version": organisation["version"],
        },
    })


def _fragment(text: str | None) -> orjson.Fragment | None:
    """A JSON column's *text* put into an item as it is."""
    return orjson.Fragment(text) if text is not None else None


def created_copy_line(entry: Mapping[str, Any], shared: dict[Any, tuple[bytes, bytes]]) -> bytes:
    """A :func:`render_created` *entry* (``hierarchy.changes.created_entry``, its item as
    UTF-8) as its row of ``STORED_COLUMNS`` in COPY's text format, as
    ``sorregistry.database.copy_lines`` makes it of the item as text. The columns the
    created entries of a commit share are formatted once and kept in *shared* (the
    caller's, one for the lines it makes), so a line costs its number, code and item:
    the import makes one for every organisation it inserts, on the thread that parses."""
    key = _SHARED(entry)
    around = shared.get(key)
    if around is None:
        before, after = _SHARED_AROUND
        around = shared[key] = (
            (copy_text(entry[before[0]]) + "\t").encode(),
            ("\t" + "\t".join([copy_text(entry[name]) for name in after]) + "\t").encode())
    item = entry["item"]
    if b"\\" in item or b"\t" in item or b"\n" in item or b"\r" in item:
        item = copy_text(item.decode()).encode()
    return b"%b%d\t%b%b%b\n" % (around[0], entry["commit_seq"],
                                copy_text(entry["sor_code"]).encode(), around[1], item)


# STORED_COLUMNS is: commit_id, commit_seq, sor_code, then the columns the created entries
# of one commit share, then the item.
_SHARED_AROUND = (STORED_COLUMNS[:1], STORED_COLUMNS[3:-1])
_SHARED = itemgetter(*_SHARED_AROUND[0], *_SHARED_AROUND[1])


def render_missing(bind: Connection, state_columns: Sequence[str], batch: int = 5000) -> None:
    """For the migrations: render the item of every entry that has none, from the copy of
    the organisation's columns *state_columns* the entries held then (each given its kind
    and fields, so nothing is compared), in batches of *batch*."""
    entries = table("feed_entries", column("id", BigInteger()), column("item", Text()),
                    *[column(name, ENTRIES.c[name].type) for name in META_COLUMNS],
                    *[column(name, ORGANISATIONS.c[name].type) for name in state_columns])
    selected = [entries.c.id, *[
        func.coalesce(entries.c[name], "").label(name) if name == "changed_fields"
        else cast(entries.c[name], Text).label(name) if name in JSON_COLUMNS
        else entries.c[name] for name in (*META_COLUMNS, *state_columns)],
        null().label("previous")]
    write = (update(entries).where(entries.c.id == bindparam("_id"))
             .values(item=bindparam("_item")))
    after = 0
    while True:
        rows = bind.execute(select(*selected)
                            .where(entries.c.id > after, entries.c.item.is_(None))
                            .order_by(entries.c.id).limit(batch)).all()
        if not rows:
            return
        stored = render_items(bind, rows, date.today())
        bind.execute(write, [{"_id": row.id, "_item": values["item"]}
                             for row, values in zip(rows, stored, strict=True)])
        after = rows[-1].id


def with_position(position: int, item: str | bytes) -> bytes:
    """The stored *item* (or its UTF-8) as the API shows it: with its position first."""
    return b'{"position":%d,%s' % (position,
                                    (item if isinstance(item, bytes) else item.encode())[1:])

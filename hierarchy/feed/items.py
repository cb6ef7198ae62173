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

import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, date
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
from sorregistry.database import binary_field

__all__ = ["COPY_TYPES", "Created", "change_of", "organisation_columns", "render_items",
           "render_missing", "with_position"]

_DATES = ("first_valid_from", "valid_from", "valid_to")


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


# The PostgreSQL type of each stored column, for COPY's binary format (a test holds it to
# the model's columns).
COPY_TYPES: dict[str, str] = {
    "commit_id": "int8", "commit_seq": "int4", "sor_code": "varchar", "change": "varchar",
    "changed_fields": "varchar", "by_inheritance": "bool", "recorded_at": "timestamptz",
    "source": "varchar", "reference": "varchar", "took_effect_on": "date", "item": "text",
}
# A created entry's binary row (Created.copy_row): its own three columns, the columns a
# commit's created entries share, then its item.
assert STORED_COLUMNS[:3] == ("commit_id", "commit_seq", "sor_code") and \
    STORED_COLUMNS[-1] == "item"
_SHARED_COLUMNS = STORED_COLUMNS[3:-1]
# A binary row's start: its number of fields; then commit_seq's length, commit_seq and the
# code's length.
_FIELDS = len(STORED_COLUMNS).to_bytes(2, "big")
_SEQ_AND_CODE = struct.Struct(">iii")


def _key(version: Mapping[str, Any]) -> tuple[Any, ...]:
    return (version["commit_id"], version["recorded_at"], version["source"],
            version["reference"])


class Created:
    """The ``created`` entries of one commit's import, what they share made once.

    The import makes an entry for every organisation it inserts - on a first import the
    whole register, on the thread that parses the files
    (``hierarchy.changes.created_entry``) - so an entry costs only what is its own. Its
    item (:meth:`item`) is built in one pass from the row the import sends, with the same
    keys in the same order as ``hierarchy.schemas.organisation_item`` and :func:`_entry`
    (a test holds the two ways equal, ``tests/hierarchy/test_feed_entries.py``); the
    entry's fields around the organisation are rendered once. On PostgreSQL its row is
    made in COPY's binary format (:meth:`copy_row`, ``sorregistry.database.copy_binary``)
    with the columns it shares with the commit's other entries encoded once: the item
    goes as orjson made it, neither escaped here nor parsed by the server (the text
    format scanned every item on both sides).
    """

    __slots__ = ("_envelope", "_head", "_shared", "key", "values")

    def __init__(self, version: Mapping[str, Any]) -> None:
        self.key = _key(version)
        commit_id, recorded_at, source, reference = self.key
        # The stored columns of every created entry of the commit, but code and number.
        self.values: dict[str, Any] = {
            "commit_id": commit_id, "change": "created", "changed_fields": "",
            "by_inheritance": False, "recorded_at": recorded_at, "source": source,
            "reference": reference, "took_effect_on": None,
        }
        around = orjson.dumps({
            "change": "created", "changed_fields": [], "inherited": False,
            "recorded_at": recorded_at.astimezone(UTC), "source": source,
            "reference": reference,
        })[1:-1].replace(b"%", b"%%")
        self._envelope = (b'{"sor_code":%b,' + around + b',"valid_from":%b,"valid_to":%b,'
                          b'"took_effect_on":null,"organisation":%b}')
        self._head = _FIELDS + binary_field(commit_id, COPY_TYPES["commit_id"])
        self._shared = b"".join(binary_field(self.values[name], COPY_TYPES[name])
                                for name in _SHARED_COLUMNS)

    def shares(self, version: Mapping[str, Any]) -> bool:
        """Whether the entry of *version* (its first) shares this commit's values."""
        return _key(version) == self.key

    def item(self, sor_code: str, organisation: Mapping[str, Any],
             effective: Mapping[str, Any]) -> bytes:
        """The stored text of *sor_code*'s entry, as UTF-8: *organisation* is the row as
        the import sends it, JSON columns as their text (the lists go into the text as
        they are); the effective values are *effective*, the dict their text was made
        from (not parsed again). The organisation names no successor (those are rendered
        with their chains' ends, :func:`render_items`)."""
        address, visiting_address = shown_addresses(effective)
        kind = organisation["entity_type"]
        valid_from, valid_to = organisation["valid_from"], organisation["valid_to"]
        inherited = organisation["inherited"]
        specialities, replaces = organisation["clinical_specialities"], organisation["replaces"]
        successors = organisation["replaced_by"]
        code = orjson.dumps(sor_code)
        shown = orjson.dumps({
            "sor_code": sor_code,
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
            "clinical_specialities":
                orjson.Fragment(specialities) if specialities is not None else None,
            "replaces": orjson.Fragment(replaces) if replaces is not None else None,
            "replaced_by": orjson.Fragment(successors) if successors is not None else None,
            "first_valid_from": organisation["first_valid_from"],
            "valid_from": valid_from,
            "valid_to": valid_to,
            "version": organisation["version"],
        })
        return self._envelope % (code, orjson.dumps(valid_from), orjson.dumps(valid_to),
                                 shown)

    def copy_row(self, commit_seq: int, sor_code: str, item: bytes) -> bytes:
        """The entry's row of ``STORED_COLUMNS`` in COPY's binary format."""
        code = sor_code.encode()
        return b"%b%b%b%b%b%b" % (self._head, _SEQ_AND_CODE.pack(4, commit_seq, len(code)),
                                  code, self._shared, len(item).to_bytes(4, "big"), item)

    def row(self, commit_seq: int, sor_code: str, item: bytes) -> dict[str, Any]:
        """The entry's row of ``STORED_COLUMNS`` by name, the item as text."""
        return {**self.values, "commit_seq": commit_seq, "sor_code": sor_code,
                "item": item.decode()}


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

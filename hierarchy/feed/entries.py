"""What a feed entry is made of, as statements that run in the database.

An entry copies the organisation's row as it stands after the change (the columns the
API's item is rendered from, :data:`STATE_COLUMNS`), says what kind of change it was and
which of the item's fields changed. Both are worked out by comparing the row with the
organisation's previous entry - the state the feed showed last - so one rule serves
every writer: the service's single changes, the import's thousands, the tick. Each
statement is a ``SELECT ... FROM organisations`` joined with the previous entries whose
rows are the entries (named as ``feed_entries``' columns): ``hierarchy.changes`` renders
each row's item (``hierarchy.feed.items``) and inserts them (COPY on PostgreSQL).

The kinds (:func:`_change`), first that applies: ``created`` (no previous entry),
``moved`` (another parent), ``replaced`` (``replaced_by`` set or changed to a
non-empty list; a closing that names successors is a replacement), ``closed``
(``valid_to`` set), ``reopened`` (``valid_to`` cleared), else ``changed``; and
``took_effect`` from the tick.

The fields (:func:`_changed_fields`) are the item's (none for ``created``), compared as
the item shows them:
the effective contact values and the six address keys of ``address`` and
``visiting_address`` one by one (so key order in stored JSON never matters), the JSON
lists as text. ``version`` is left out: it moves with every recorded change.

The statements here only build SQL; ``hierarchy.changes`` runs them and numbers the
entries (their ``commit_seq``), as it numbers versions.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.sql.selectable import FromClause

from hierarchy.models import FeedEntry, Organisation, OrganisationVersion, table_of

ENTRIES = table_of(FeedEntry)
ORGANISATIONS = table_of(Organisation)
VERSIONS = table_of(OrganisationVersion)

# The organisation's columns an entry copies: what hierarchy.schemas.organisation_item
# reads (hierarchy.search.ITEM_COLUMNS but name_search; a test holds them equal).
STATE_COLUMNS: tuple[str, ...] = (
    "name",
    "level",
    "entity_type",
    "ownership",
    "owner_cvr",
    "ydernummer",
    "shak",
    "p_number",
    "parent_sor_code",
    "institution_sor_code",
    "owner_sor_code",
    "effective",
    "inherited",
    "clinical_specialities",
    "replaces",
    "replaced_by",
    "first_valid_from",
    "valid_from",
    "valid_to",
    "version",
)
# The keys an item's address shows (hierarchy.schemas.AddressSchema; a test holds them equal).
ADDRESS_KEYS = ("street", "postal_code", "city", "municipality_code", "region_code", "country")

# Item field -> the organisation column it shows, in the item's order.
_PLAIN = {
    "name": "name",
    "entity_type": "entity_type",
    "ownership": "ownership",
    "cvr": "owner_cvr",
    "ydernummer": "ydernummer",
    "shak": "shak",
    "p_number": "p_number",
    "parent_sor_code": "parent_sor_code",
    "institution_sor_code": "institution_sor_code",
    "owner_sor_code": "owner_sor_code",
    "first_valid_from": "first_valid_from",
    "valid_from": "valid_from",
    "valid_to": "valid_to",
}
_EFFECTIVE = ("gln", "phone", "fax", "email", "website")
_ADDRESSES = {"address": "postal_address", "visiting_address": "visiting_address"}
_LISTS = ("inherited", "clinical_specialities", "replaces", "replaced_by")
# The order fields are named in, the item's.
FIELD_ORDER: tuple[str, ...] = (
    "name", "entity_type", "ownership", "cvr", "ydernummer", "shak", "gln", "p_number",
    "parent_sor_code", "institution_sor_code", "owner_sor_code", "address",
    "visiting_address", "phone", "fax", "email", "website", "inherited",
    "clinical_specialities", "replaces", "replaced_by", "first_valid_from", "valid_from",
    "valid_to",
)

# The columns every entry statement selects, in this order (the item is added to them).
TARGET: tuple[str, ...] = (
    "commit_id", "commit_seq", "sor_code", "change", "changed_fields", "by_inheritance",
    "recorded_at", "source", "reference", "took_effect_on", *STATE_COLUMNS,
)


# The JSON columns, selected as their text: written back as they are, decoded (by orjson)
# only to render the item.
JSON_COLUMNS = frozenset({"effective", "inherited", "clinical_specialities", "replaces",
                          "replaced_by"})


def _named(statement: Select[Any]) -> Select[Any]:
    """*statement*'s columns labelled as ``feed_entries``' (rows read by name), the JSON
    columns as text."""
    return statement.with_only_columns(
        *[(cast(column, Text) if name in JSON_COLUMNS else column).label(name)
          for column, name in zip(statement.selected_columns, TARGET, strict=True)],
        maintain_column_froms=True)


def _json_text(column: Any) -> ColumnElement[str]:
    """A JSON value as text, SQL NULL and JSON null alike ('null'): as the item shows it."""
    return func.coalesce(cast(column, Text), "null")


def _differences(new: FromClause, old: FromClause) -> dict[str, ColumnElement[bool]]:
    """Item field -> whether it differs between the rows *new* and *old*."""
    found: dict[str, ColumnElement[bool]] = {}
    for field, column in _PLAIN.items():
        found[field] = new.c[column].is_distinct_from(old.c[column])
    # The same effective text has the same values: its ~19 paths, each a parse of the
    # JSON text on PostgreSQL, are compared only when the texts differ (most changes of
    # a unit's own values leave its effective values as they were).
    moved = _json_text(new.c.effective) != _json_text(old.c.effective)
    for field in _EFFECTIVE:
        found[field] = and_(moved, new.c.effective[field].as_string().is_distinct_from(
            old.c.effective[field].as_string()))
    for field, key in _ADDRESSES.items():
        # An empty address shows as null, whatever keys it holds; else its six keys.
        shown = [
            (func.coalesce(side.c.effective[key].as_string(), "{}") == "{}")
            for side in (new, old)
        ]
        found[field] = and_(moved, or_(
            shown[0].is_distinct_from(shown[1]),
            *[new.c.effective[(key, part)].as_string().is_distinct_from(
                old.c.effective[(key, part)].as_string()) for part in ADDRESS_KEYS],
        ))
    for field in _LISTS:
        found[field] = _json_text(new.c[field]).is_distinct_from(_json_text(old.c[field]))
    return found


def _changed_fields(new: FromClause, old: FromClause) -> ColumnElement[str]:
    """The names of the item's fields that differ, each followed by a comma ('' if none)."""
    differences = _differences(new, old)
    named: ColumnElement[str] = literal("", String)
    for field in FIELD_ORDER:
        named = named.concat(case((differences[field], literal(f"{field},", String)),
                                  else_=literal("", String)))
    return named


def _change(new: FromClause, old: FromClause) -> ColumnElement[str]:
    replaced_by = _json_text(new.c.replaced_by)
    return case(
        (old.c.id.is_(None), "created"),
        (new.c.parent_sor_code.is_distinct_from(old.c.parent_sor_code), "moved"),
        (and_(replaced_by.not_in(["null", "[]"]),
              replaced_by.is_distinct_from(_json_text(old.c.replaced_by))), "replaced"),
        (and_(new.c.valid_to.is_not(None), old.c.valid_to.is_(None)), "closed"),
        (and_(new.c.valid_to.is_(None), old.c.valid_to.is_not(None)), "reopened"),
        else_="changed",
    )


def _with_previous() -> tuple[FromClause, FromClause, FromClause]:
    """organisations joined with each one's latest entry (absent: none yet)."""
    new = ORGANISATIONS.alias("o")
    old = ENTRIES.alias("prev")
    latest = ENTRIES.alias("latest")
    last_id = (
        select(func.max(latest.c.id)).where(latest.c.sor_code == new.c.sor_code)
        .scalar_subquery()
    )
    return new, old, new.outerjoin(old, old.c.id == last_id)


def versioned_entries(
    commit_id: int, *, sor_code: str | None = None, commit_seq: int | None = None,
    import_run_id: int | None = None, seq_range: tuple[int, int] | None = None,
    seqs: list[int] | None = None,
) -> Select[Any]:
    """Entries for the versions recorded under commit *commit_id* (those of *sor_code*
    numbered *commit_seq*, or those of import run *import_run_id*, numbered within
    *seq_range* (first, last) or among *seqs* when given): each shares its version's
    number, time, source and reference, and shows the organisation's row as it stands."""
    new, old, joined = _with_previous()
    version = VERSIONS.alias("v")
    conditions = [version.c.commit_id == commit_id]
    if sor_code is not None:
        conditions += [version.c.sor_code == sor_code, version.c.commit_seq == commit_seq]
    if import_run_id is not None:
        conditions.append(version.c.import_run_id == import_run_id)
    if seq_range is not None:
        conditions.append(version.c.commit_seq.between(*seq_range))
    if seqs is not None:
        conditions.append(version.c.commit_seq.in_(seqs))
    statement = (
        select(
            version.c.commit_id, version.c.commit_seq, new.c.sor_code, _change(new, old),
            case((old.c.id.is_(None), literal("", String)), else_=_changed_fields(new, old)),
            false(), version.c.recorded_at, version.c.source,
            version.c.reference, cast(null(), Date),
            *[new.c[name] for name in STATE_COLUMNS],
        )
        .select_from(joined.join(version, version.c.sor_code == new.c.sor_code))
        .where(*conditions)
        .order_by(version.c.commit_seq)
    )
    return _named(statement)


def inherited_entries(
    commit_id: int, base: int, codes: list[str], *, recorded_at: datetime, source: str,
    reference: str | None,
) -> Select[Any]:
    """Entries for the units *codes* whose effective values changed with an ancestor's,
    numbered ``base + 1`` on in code order; units whose item shows no change get none."""
    new, old, joined = _with_previous()
    changed = _changed_fields(new, old)
    number = (literal(base, Integer) + func.row_number().over(order_by=new.c.sor_code))
    statement = (
        select(
            literal(commit_id, Integer), number, new.c.sor_code, literal("changed", String),
            changed, true(), literal(recorded_at, ENTRIES.c.recorded_at.type),
            literal(source, String), literal(reference, String), cast(null(), Date),
            *[new.c[name] for name in STATE_COLUMNS],
        )
        .select_from(joined)
        .where(new.c.sor_code.in_(codes), changed != "")
    )
    return _named(statement)


def took_effect_entries(
    commit_id: int, base: int, after: date, through: date, *, recorded_at: datetime,
    reference: str,
) -> Select[Any]:
    """``took_effect`` entries for the organisations whose ``valid_from`` or ``valid_to``
    falls in (*after*, *through*], numbered ``base + 1`` on in code order; the fields named
    are the dates that took effect, ``took_effect_on`` the later of them."""
    org = ORGANISATIONS.alias("o")
    starts = and_(org.c.valid_from > after, org.c.valid_from <= through)
    ends = and_(org.c.valid_to > after, org.c.valid_to <= through)
    number = literal(base, Integer) + func.row_number().over(order_by=org.c.sor_code)
    fields = case((starts, literal("valid_from,", String)), else_=literal("", String)).concat(
        case((ends, literal("valid_to,", String)), else_=literal("", String)))
    day = case((ends, org.c.valid_to), else_=org.c.valid_from)
    statement = select(
        literal(commit_id, Integer), number, org.c.sor_code, literal("took_effect", String),
        fields, false(), literal(recorded_at, ENTRIES.c.recorded_at.type), literal("tick", String),
        literal(reference, String), day, *[org.c[name] for name in STATE_COLUMNS],
    ).where(or_(starts, ends))
    return _named(statement)

"""What a feed entry is made of, as statements that run in the database.

An entry stores what happened (:data:`META_COLUMNS`: its number, the kind of change,
the fields the item shows changed, when, by what) and its **item** - the entry as the
API shows it, the organisation's state included, rendered once (``hierarchy.feed.items``).
It copies no column of the organisation's row beside the item: the item is the state
the feed showed, and the next entry is compared with it.

Each statement here is a ``SELECT ... FROM organisations`` (the columns the item is
rendered from, :data:`STATE_COLUMNS`) joined with the organisation's previous entry's
item (``previous``); ``hierarchy.changes`` runs it, and ``hierarchy.feed.items`` renders
each row's item and compares it with the previous one, field by field as the item shows
them - in Python, where each previous item is parsed once (the statements used to
compare ~24 JSON paths in SQL, each a parse of a stored JSON text on PostgreSQL). So
one rule serves every writer: the service's single changes, the import's thousands,
the tick.

The kinds (``hierarchy.feed.items.change_of``), first that applies: ``created`` (no
previous entry), ``moved`` (another parent), ``replaced`` (``replaced_by`` set or
changed to a non-empty list; a closing that names successors is a replacement),
``closed`` (``valid_to`` set), ``reopened`` (``valid_to`` cleared), else ``changed``;
and ``took_effect`` from the tick (its kind and fields are worked out here, in SQL: the
dates that took effect).

The fields (``hierarchy.feed.items.changed_fields``) are the item's (none for
``created``), in :data:`FIELD_ORDER`: the effective contact values and the two
addresses as the item shows them (an address's six keys, so key order in stored JSON
never matters), the lists as JSON values, the entity type by its code. ``version`` is
left out: it moves with every recorded change.

The statements here only build SQL; ``hierarchy.changes`` runs them and numbers the
entries (their ``commit_seq``), as it numbers versions.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
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
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import FromClause

from hierarchy.models import FeedEntry, Organisation, OrganisationVersion, table_of
from sorregistry.database import one_of

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

# The item's fields an entry names when they change, in the item's order.
FIELD_ORDER: tuple[str, ...] = (
    "name", "entity_type", "ownership", "cvr", "ydernummer", "shak", "gln", "p_number",
    "parent_sor_code", "institution_sor_code", "owner_sor_code", "address",
    "visiting_address", "phone", "fax", "email", "website", "inherited",
    "clinical_specialities", "replaces", "replaced_by", "first_valid_from", "valid_from",
    "valid_to",
)

# What an entry stores besides its item, in this order.
META_COLUMNS: tuple[str, ...] = (
    "commit_id", "commit_seq", "sor_code", "change", "changed_fields", "by_inheritance",
    "recorded_at", "source", "reference", "took_effect_on",
)
# The columns an entry's row is written with.
STORED_COLUMNS: tuple[str, ...] = (*META_COLUMNS, "item")
# The columns every entry statement selects, in this order: what is stored but the item
# (``change`` and ``changed_fields`` null where the previous entry decides them), the
# organisation's row to render it from, and the previous entry's item (null: none).
TARGET: tuple[str, ...] = (*META_COLUMNS, *STATE_COLUMNS, "previous")


# The JSON columns, selected as their text: decoded (by orjson) only to render the item.
JSON_COLUMNS = frozenset({"effective", "inherited", "clinical_specialities", "replaces",
                          "replaced_by"})


def _named(statement: Select[Any]) -> Select[Any]:
    """*statement*'s columns labelled as :data:`TARGET` (rows read by name), the JSON
    columns as text."""
    return statement.with_only_columns(
        *[(cast(column, Text) if name in JSON_COLUMNS else column).label(name)
          for column, name in zip(statement.selected_columns, TARGET, strict=True)],
        maintain_column_froms=True)


def _undecided() -> ColumnElement[str]:
    """``change`` or ``changed_fields`` left to the comparison with the previous item."""
    return cast(null(), String)


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
    commit_id: int | BindParameter[int], *, sor_code: str | BindParameter[str] | None = None,
    commit_seq: int | BindParameter[int] | None = None,
    import_run_id: int | None = None, seq_range: tuple[int, int] | None = None,
    seqs: list[int] | None = None, postgresql: bool = False,
) -> Select[Any]:
    """Entries for the versions recorded under commit *commit_id* (those of *sor_code*
    numbered *commit_seq*, or those of import run *import_run_id*, numbered within
    *seq_range* (first, last) or among *seqs* when given - an array on *postgresql*,
    ``sorregistry.database.one_of``): each shares its version's
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
        conditions.append(one_of(version.c.commit_seq, seqs, postgresql=postgresql))
    statement = (
        select(
            version.c.commit_id, version.c.commit_seq, new.c.sor_code, _undecided(),
            _undecided(), false(), version.c.recorded_at, version.c.source,
            version.c.reference, cast(null(), Date),
            *[new.c[name] for name in STATE_COLUMNS], old.c.item,
        )
        .select_from(joined.join(version, version.c.sor_code == new.c.sor_code))
        .where(*conditions)
        .order_by(version.c.commit_seq)
    )
    return _named(statement)


@cache
def one_version_entry() -> Select[Any]:
    """:func:`versioned_entries` of one version, its ``commit_id``, ``sor_code`` and
    ``commit_seq`` bound when it runs: built once, as the service's single changes (an
    approval, an edit) run it once each - building the statement cost ~1.7 ms of an
    approval, more than running it."""
    return versioned_entries(bindparam("commit_id", type_=Integer),
                             sor_code=bindparam("sor_code", type_=String),
                             commit_seq=bindparam("commit_seq", type_=Integer))


def inherited_entries(
    commit_id: int, codes: list[str], *, recorded_at: datetime, source: str,
    reference: str | None, postgresql: bool,
) -> Select[Any]:
    """Candidate entries for the units *codes* whose effective values changed with an
    ancestor's, in code order, unnumbered (``commit_seq`` null): ``hierarchy.changes``
    keeps those whose item shows a change and numbers them ``base + 1`` on."""
    new, old, joined = _with_previous()
    statement = (
        select(
            literal(commit_id, Integer), cast(null(), Integer), new.c.sor_code,
            literal("changed", String), _undecided(), true(),
            literal(recorded_at, ENTRIES.c.recorded_at.type),
            literal(source, String), literal(reference, String), cast(null(), Date),
            *[new.c[name] for name in STATE_COLUMNS], old.c.item,
        )
        .select_from(joined)
        .where(one_of(new.c.sor_code, codes, postgresql=postgresql))
        .order_by(new.c.sor_code)
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
        cast(null(), Text),
    ).where(or_(starts, ends))
    return _named(statement)

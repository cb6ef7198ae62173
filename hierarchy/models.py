"""The register's tables.

``organisations`` holds the current state of every entity, one row per SOR code,
and is what lookups read. ``organisation_versions`` keeps every state each entity
has had, so the register can be read as it stood at any moment and every change
traced to its source. ``shak_codes`` mirrors the SHAK register (the hospital and
department codes of the national classification, SKS) with its own history.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement, Label
from sqlalchemy.sql.functions import FunctionElement

from sorregistry.models import Base, BigIntKey, CodeString, JsonDocument, UTCDateTime, utcnow

LEVELS = ("IE", "SI", "OE")
OWNERSHIPS = ("statslig", "regional", "kommunal", "privat")
VERSION_SOURCES = ("import", "application", "staff")


def table_of(model: type[Base]) -> Table:
    """The Table of a mapped class, for Core statements (bulk writes, set-based rules).

    ``Model.__table__`` is typed as any FromClause; the metadata's entry is the same
    object, typed as the Table it is.
    """
    return Base.metadata.tables[model.__tablename__]


# An organisation's stamp is made of these columns: its rendered item is kept under it
# (hierarchy.items), a page read by key reads it (hierarchy.search.keyrows) - they are
# carried in the Mit CVR indexes, so such a page is read from the index alone (0025).
PAGE_STAMP = ("version", "content_hash", "derived_hash")


class _Stamp(FunctionElement[Any]):
    """One value for an organisation's (version, content_hash, derived_hash): read as one
    column instead of three (a Mit CVR page's 501 stamps: two 32-character strings a row
    fewer to send, decode and compare). PostgreSQL: a 64-bit hash of the two fingerprints
    seeded with the version (``hashtextextended``); elsewhere the three as text."""

    name = "organisation_stamp"
    inherit_cache = True


@compiles(_Stamp, "postgresql")
def _stamp_postgresql(element: _Stamp, compiler: SQLCompiler, **kw: Any) -> str:
    version, content, derived = (compiler.process(c, **kw) for c in element.clauses)
    return f"hashtextextended({content} || {derived}, {version})"


@compiles(_Stamp)
def _stamp_text(element: _Stamp, compiler: SQLCompiler, **kw: Any) -> str:
    version, content, derived = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({version} AS TEXT) || ':' || {content} || {derived})"


def organisation_stamp(columns: Any) -> Label[Any]:
    """The stamp of the rows of *columns* (the Organisation class, or a table's or a
    subquery's ``.c`` with its PAGE_STAMP columns), labelled ``stamp``."""
    parts: list[ColumnElement[Any]] = [getattr(columns, name) for name in PAGE_STAMP]
    return _Stamp(*parts).label("stamp")


class Organisation(Base):
    """One SOR entity as it stands now: an owner (IE), institution (SI) or unit (OE).

    Columns without a prefix are the entity's own values, exactly as recorded
    at the source. ``effective`` holds the values after inheritance from the
    parent (address, contact data, GLN), and ``inherited`` names those that came
    from an ancestor; the ``eff_`` columns repeat the effective values that
    lookups filter on. ``path``, ``owner_sor_code``, ``institution_sor_code``
    and ``ownership`` are derived from the tree so that lookups need no
    recursive queries.
    """

    __tablename__ = "organisations"

    sor_code: Mapped[str] = mapped_column(CodeString(18), primary_key=True)
    level: Mapped[str] = mapped_column(String(2))
    parent_sor_code: Mapped[str | None] = mapped_column(
        CodeString(18), ForeignKey("organisations.sor_code"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    entity_type: Mapped[str | None] = mapped_column(String(20), index=True)
    cvr: Mapped[str | None] = mapped_column(String(8))
    shak: Mapped[str | None] = mapped_column(CodeString(7), index=True)
    ydernummer: Mapped[str | None] = mapped_column(String(9), index=True)
    gln: Mapped[str | None] = mapped_column(String(13))
    gln_inherited: Mapped[bool] = mapped_column(Boolean, default=False)
    p_number: Mapped[str | None] = mapped_column(String(10))
    postal_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    visiting_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    activity_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    phone: Mapped[str | None] = mapped_column(String(40))
    fax: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(255))
    website: Mapped[str | None] = mapped_column(String(255))
    clinical_specialities: Mapped[list[dict[str, str]] | None] = mapped_column(JsonDocument)
    replaces: Mapped[list[str] | None] = mapped_column(JsonDocument)
    replaced_by: Mapped[list[str] | None] = mapped_column(JsonDocument)
    # Everything else the export carries (local code, pharmacy number,
    # reporting-level indicators, EDI details), kept so nothing is lost.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    first_valid_from: Mapped[date | None] = mapped_column(Date)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    source_updated_at: Mapped[date | None] = mapped_column(Date)

    # Derived from the tree and from inheritance.
    path: Mapped[str] = mapped_column(CodeString(400))
    depth: Mapped[int] = mapped_column(Integer)
    owner_sor_code: Mapped[str] = mapped_column(CodeString(18))
    institution_sor_code: Mapped[str | None] = mapped_column(CodeString(18))
    ownership: Mapped[str | None] = mapped_column(String(10), index=True)
    owner_cvr: Mapped[str | None] = mapped_column(String(8))
    name_search: Mapped[str] = mapped_column(CodeString(255))
    effective: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    inherited: Mapped[list[str]] = mapped_column(JsonDocument)
    eff_postal_code: Mapped[str | None] = mapped_column(String(10), index=True)
    eff_municipality_code: Mapped[str | None] = mapped_column(String(4))
    eff_region_code: Mapped[str | None] = mapped_column(String(4))

    # Book-keeping: which version is current, and fingerprints that let an
    # import tell a real change (a new version) from a change inherited from
    # an ancestor (the derived columns only).
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(32))
    derived_hash: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # "path LIKE 'prefix%'" is a whole subtree; name_search serves sorting
        # by name and prefix matches (both in collation "C").
        Index("ix_organisations_path", "path"),
        Index("ix_organisations_name_search", "name_search"),
        # An approval finds the new institution's owner (IE) by CVR or municipality.
        Index("ix_organisations_level_cvr", "level", "cvr"),
        Index("ix_organisations_level_municipality", "level", "eff_municipality_code"),
        # Mit CVR: an owner's units in the page's order, walked for a page without a sort
        # of the wide rows; the total counted from the index alone (migration 0024), and
        # the page read by key from it alone too: it carries the items' stamps
        # (hierarchy.search.keyrows; migration 0025).
        Index("ix_organisations_owner_cvr_name", "owner_cvr", "name_search", "sor_code",
              postgresql_include=["level", "valid_from", "valid_to", *PAGE_STAMP]),
        # Mit CVR - SI: the owner's institutions alone, in the same order.
        Index("ix_organisations_owner_cvr_si", "owner_cvr", "name_search", "sor_code",
              postgresql_include=["valid_from", "valid_to", *PAGE_STAMP],
              postgresql_where=text("level = 'SI'"), sqlite_where=text("level = 'SI'")),
    )

    def is_active_on(self, day: date) -> bool:
        started = self.valid_from is None or self.valid_from <= day
        return started and (self.valid_to is None or self.valid_to > day)


class OrganisationName(Base):
    """What a name search filters on, one narrow row (~90 bytes) per organisation.

    A substring search over ``organisations`` (about 1.3 kB a row) visits every
    match in the wide heap, for the page and again for the exact total; the
    same visits in this table cost a tenth (issue 3). It repeats columns of
    ``organisations`` exactly and is written with them, in the same transaction,
    by the rules of ``hierarchy.changes`` (``sync_names``), for the service's changes
    and the SOR import alike. On PostgreSQL a trigram index on ``name_search``
    answers ``LIKE '%x%'`` (migration 0004); SQLite searches names through its FTS5
    table on ``organisations`` instead.
    """

    __tablename__ = "organisation_names"

    sor_code: Mapped[str] = mapped_column(CodeString(18), primary_key=True)
    name_search: Mapped[str] = mapped_column(CodeString(255))
    level: Mapped[str] = mapped_column(String(2))
    ownership: Mapped[str | None] = mapped_column(String(10))
    owner_cvr: Mapped[str | None] = mapped_column(String(8))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        # A page in name order by walking the index, when matches are many.
        Index(
            "ix_organisation_names_name_search",
            "name_search",
            "sor_code",
            postgresql_include=["valid_from", "valid_to"],
        ),
    )


# The columns organisation_names copies from organisations (all of its columns).
NAME_COLUMNS = ("sor_code", "name_search", "level", "ownership", "owner_cvr", "valid_from",
                "valid_to")


class RegisterVersion(Base):
    """Changes whenever a transaction that changed the register commits.

    Lookups cache answers per worker under this value (``hierarchy.lookups``).
    ``version`` counts the commits that changed the register; ``stamp`` is random
    per change, so that a version number taken by a transaction that was rolled
    back, and then taken again, never names two states of the register.
    ``last_position`` is the last feed position handed out to a recorded change
    (``hierarchy.changes``), taken in the same statement, so in commit order.
    """

    __tablename__ = "register_version"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    stamp: Mapped[str] = mapped_column(String(32))
    last_position: Mapped[int] = mapped_column(BigInteger, default=0)


class RegisterCommit(Base):
    """One committed transaction that recorded changes, and the feed positions they took.

    ``hierarchy.changes`` makes the row when a transaction records its first change
    and fills it in as the transaction commits: its ``changes`` recorded changes hold
    the positions ``first_position`` .. ``first_position + changes - 1``, in the
    order they were recorded (``OrganisationVersion.commit_seq``). ``first_position``
    is NULL only inside the transaction that is recording; nobody else sees it so.
    ``request_id`` is the HTTP request that made the changes (its ``X-Request-Id``, as in
    the audit log and the request's log line), NULL for a command: a version or feed
    entry finds it through its ``commit_id``, one column per transaction rather than one
    per row an import COPYs.
    """

    __tablename__ = "register_commits"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # Unique: positions never repeat; the index also finds the commit holding a position.
    first_position: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(64))


class OrganisationVersion(Base):
    """One state of an organisation, valid in the register from ``recorded_at``
    until ``superseded_at`` (open while it is the current state).

    Written only by ``hierarchy.changes``. ``commit_id`` and ``commit_seq`` place it
    in the change feed (see :class:`RegisterCommit`); ``commit_id`` has no foreign key:
    the check would run for each of the 200,000 rows an import COPYs, for what the
    one writer guarantees by construction.
    """

    __tablename__ = "organisation_versions"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    sor_code: Mapped[str] = mapped_column(CodeString(18), ForeignKey("organisations.sor_code"))
    version: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(255))
    reference: Mapped[str | None] = mapped_column(String(255))
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    commit_id: Mapped[int] = mapped_column(BigInteger)
    commit_seq: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        # Serves every per-organisation read: history, the version as of a moment.
        UniqueConstraint("sor_code", "version"),
        # The versions of a window of feed positions: ranges of it (FHIR's _history).
        UniqueConstraint("commit_id", "commit_seq"),
    )


class ImportRun(Base):
    """One successful import of a file: what, when, by whom, with what result.

    A failed import leaves no row: it changes nothing at all.
    """

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(10))
    file_name: Mapped[str] = mapped_column(String(500))
    file_sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(30))
    snapshot_date: Mapped[date | None] = mapped_column(Date)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    problems: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDocument)


class ShakCode(Base):
    """One record of the SHAK register: a code with its text for a validity period.

    A code has one record per period in which its text or grouping was in
    force, so the same code appears several times with different dates.
    """

    __tablename__ = "shak_codes"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(CodeString(7))
    kind: Mapped[str] = mapped_column(String(10))  # hospital / department / section
    hospital: Mapped[str] = mapped_column(CodeString(4), index=True)
    record_type: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    changed: Mapped[date | None] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    text_search: Mapped[str] = mapped_column(CodeString(255))
    agrp: Mapped[str | None] = mapped_column(String(10))
    bgrp: Mapped[str | None] = mapped_column(String(10))
    cgrp: Mapped[str | None] = mapped_column(String(10))
    dgrp: Mapped[str | None] = mapped_column(String(10))
    egrp: Mapped[str | None] = mapped_column(String(10))
    dval: Mapped[str | None] = mapped_column(String(10))
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_runs.id"))

    __table_args__ = (
        UniqueConstraint("code", "valid_from", name="uq_shak_codes_code_valid_from"),
        Index("ix_shak_codes_code", "code"),
    )


class SorCodeCounter(Base):
    """The last item id the service allocated in the Danish SOR namespace.

    Allocation increments this one row (a row lock on PostgreSQL, the write
    lock on SQLite), so concurrent approvals never get the same code, and the
    counter only grows, so a code is never reused. Allocation starts at item
    90,000,000, clear of the item ids in the national register, and skips any
    code already in the register.
    """

    __tablename__ = "sor_code_counter"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_item: Mapped[int] = mapped_column(BigInteger)


class FeedEntry(Base):
    """One entry of the change feed: a change of an organisation, with its state after it.

    Written only by ``hierarchy.changes`` (see ``hierarchy.feed``). Placed in the feed as
    the versions are: ``commit_id`` and ``commit_seq`` under a :class:`RegisterCommit`,
    position ``first_position + commit_seq - 1``; an entry for a recorded version shares
    the version's number. ``change`` is ``created``, ``changed``, ``moved``, ``closed``,
    ``reopened``, ``replaced`` or ``took_effect``; ``by_inheritance`` marks a unit whose
    effective values changed with an ancestor's (no version of its own).
    ``changed_fields`` names the API item's fields that differ from the organisation's
    previous entry, each followed by a comma. ``item`` is the entry as the API shows it,
    the organisation as it stood after the change included, rendered once when it was
    recorded: what a page of the feed is made of, what the next entry is compared with,
    and the version FHIR's history shows (migration 0022 dropped the copy of the
    organisation's columns the entries held beside it).
    """

    __tablename__ = "feed_entries"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    commit_id: Mapped[int] = mapped_column(BigInteger)
    commit_seq: Mapped[int] = mapped_column(Integer)
    sor_code: Mapped[str] = mapped_column(CodeString(18))
    change: Mapped[str] = mapped_column(String(12))
    changed_fields: Mapped[str | None] = mapped_column(String(400))
    by_inheritance: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(255))
    took_effect_on: Mapped[date | None] = mapped_column(Date)
    # The entry as the API shows it less its position, rendered when it was recorded
    # (hierarchy.feed.items).
    item: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The feed is read in this order (a commit's entries by their number), and each
        # number is used once.
        UniqueConstraint("commit_id", "commit_seq"),
        # An organisation's latest entry: what the next one is compared with.
        Index("ix_feed_entries_sor_code_id", "sor_code", "id"),
    )


class FeedState(Base):
    """The feed's own settings, one row (``name = 'feed'``).

    ``cursor_key`` signs the feed's cursors (``hierarchy.feed.cursor``): made at random
    by the migration and kept with the register, so a cursor never expires - not when
    ``SOR_SECRET_KEY`` is rotated, not when the service moves host - and one of another
    register is refused. ``ticked_through`` is the last day whose dates taking effect
    are in the feed (``sorregistry tick``).
    """

    __tablename__ = "feed_state"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    cursor_key: Mapped[str] = mapped_column(String(64))
    ticked_through: Mapped[date] = mapped_column(Date)

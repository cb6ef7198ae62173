"""Recording a register change: the one module that knows how a change is written.

A change of an organisation's own values is recorded as a row of
``organisation_versions`` (a snapshot of its own values) that supersedes the row
before it; the narrow search rows (``organisation_names``) follow their organisations;
and the register is marked changed, so that its version moves when the transaction
commits. The register has two writers and both record through here: the service's
create / change / close, one change at a time through the session
(:func:`record_change`), and the SOR import, thousands at a time sent with COPY
(``hierarchy.import_writer``), which builds its rows with :meth:`Recording.version_row`
and applies :func:`supersede` and :func:`sync_names` - so the columns and the rules
are written once. This follows SQLAlchemy's ``versioned_history`` example
(``examples/versioned_history/history_meta.py``): one module owns how a version is
written, and its session hooks are installed on a chosen session class
(:func:`install`, from ``hierarchy.init_app``), not on every Session of the process.

**The register version.** Lookups cache answers per worker under the register's
version (``hierarchy.lookups``), so it must change with every committed change of
what lookups read: the organisations (and their narrow copy) and the SHAK register. A
session that writes one of these tables is marked; the mark bumps the version as the
last statement before COMMIT, in the same transaction. Bumping at commit rather than
at each write holds the version row's lock only for the commit: a long import does
not block approvals, and a transaction never waits for other rows while holding it,
so the bump cannot deadlock. Writes through the session are noticed by the hooks;
writes that bypass it (the import's COPY) call :func:`mark_register_changed`.

**Positions in commit order.** The change feed (the next issue) reads "after position
P" and must never miss nor repeat a change. A number taken when a row is inserted is
not commit order: with two transactions in flight the later insert can commit first,
and a poller that read it skips the earlier one for good. So a transaction numbers
its changes 1..n as it records them (``commit_seq``) under a ``register_commits`` row
of its own (``commit_id``), and as it commits, the statement that bumps the register
version - holding that row's lock until COMMIT - also takes n positions from the
counter beside it (``register_version.last_position``); the commit row keeps the first.
A change's position is ``first_position + commit_seq - 1`` (:data:`CHANGE_POSITION`).
Ranges are taken under one lock held to COMMIT, so they are ordered as the commits are
(on SQLite one writer at a time holds the database). The cost is one small row and one
UPDATE per transaction and two integers per version row, nothing per row at commit:
numbering 200,000 COPYed versions at commit would write each of them twice. Positions
are unique and increase in commit order; a change rolled back with a savepoint leaves
its number unused, so they need not be dense.

**The feed's entries** (``feed_entries``, see ``hierarchy.feed``) are numbered the same
way, here, by the same writers: a recorded version's entry shares its number; a unit
whose effective values changed with an ancestor's (:func:`record_inherited`) and an
organisation whose dates took effect (:func:`record_took_effect`) get entries, numbered
next, without a version. What an entry holds is ``hierarchy.feed.entries``'; every
statement that writes one runs here (:func:`_write_entries`): the entries' rows are
selected, each is rendered once as the API will show it (``hierarchy.feed.items``, so a
page of the feed is stored text joined) and they are inserted - by COPY on PostgreSQL,
an import's in batches of :data:`_ENTRY_BATCH`. One exception, for the import's cost: an
organisation the import inserts gets its ``created`` entry from the row the import sends
(:func:`created_entry`), written with that row by the import's writer - a first entry
compares with nothing, so no statement need read the row back (at 20,000 new
organisations that read and the second insert were ~1.5 s of a ~7 s import). On
PostgreSQL every commit that moves the register version also sends ``NOTIFY sor_feed``
with the last position (delivered at COMMIT), which wakes the feed's long-polling
readers and tells each worker its register version (``hierarchy.search.version_listener``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from typing import Any, TypedDict, TypeVar, cast

from flask import has_request_context, request
from sqlalchemy import (
    Column,
    MetaData,
    Table,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, scoped_session
from sqlalchemy.sql import Select
from sqlalchemy.types import NullType

from hierarchy.feed import entries as feed_entries
from hierarchy.feed import items as feed_items
from hierarchy.models import (
    NAME_COLUMNS,
    Organisation,
    OrganisationName,
    OrganisationVersion,
    RegisterCommit,
    RegisterVersion,
    ShakCode,
    table_of,
)
from hierarchy.records import snapshot_json
from sorregistry.database import DbSession, copy_rows, is_postgresql, made_session, one_of
from sorregistry.request_id import current_request_id

__all__ = [
    "CHANGE_POSITION",
    "FEED_CHANNEL",
    "VERSION_BUMPED",
    "REGISTER_VERSION_QUERY",
    "VERSION_COLUMNS",
    "VERSION_TABLE",
    "ENTRY_COLUMNS",
    "ENTRY_TABLE",
    "Recording",
    "VersionRow",
    "bump_register_version",
    "created_entry",
    "install",
    "is_installed",
    "mark_register_changed",
    "record_change",
    "record_import_entries",
    "record_inherited",
    "record_took_effect",
    "recording",
    "register_changed_in",
    "register_version",
    "remember_register_version",
    "supersede",
    "sync_names",
]

# Keys of session.info, kept per transaction.
REGISTER_CHANGED = "sor.register_changed"
_VERSION_READ = "sor.register_version"
# request.environ: the version remembered for the request's session before it was made
# (a lookup that reads directly makes none; see remember_register_version).
_VERSION_PENDING = "sor.register_version.pending"
_RECORDING = "sor.recording"

_REGISTER_TABLES = frozenset({"organisations", "organisation_names", "shak_codes"})
_REGISTER_MODELS = (Organisation, OrganisationName, ShakCode)
_CHUNK = 1000  # codes per statement: well inside SQLite's limit on bound parameters
_SUPERSEDE_CHUNK = 5000  # an import supersedes thousands: fewer, larger statements
_ENTRY_BATCH = 5000  # an import's feed entries rendered and sent per batch
# What created_entry's rows are written into, and their columns.
ENTRY_TABLE = feed_entries.ENTRIES
ENTRY_COLUMNS = feed_entries.STORED_COLUMNS
_S = TypeVar("_S", bound=Session)
# The PostgreSQL channel a commit that took feed positions notifies, with the last one.
FEED_CHANNEL = "sor_feed"
# Told the number of each register version this process's transactions take, before they
# commit (hierarchy.search.version_listener holds its in-memory version back until its
# notification has brought that number, or a moment has passed: a rollback).
VERSION_BUMPED: list[Callable[[int], None]] = []


class VersionRow(TypedDict):
    """One row of ``organisation_versions`` as both writers send it."""

    sor_code: str
    version: int
    recorded_at: datetime
    source: str
    actor: str
    reference: str | None
    import_run_id: int | None
    snapshot: str  # the canonical JSON of the own values (hierarchy.records.snapshot_json)
    commit_id: int
    commit_seq: int


VERSION_COLUMNS: tuple[str, ...] = tuple(VersionRow.__annotations__)

# organisation_versions as the rows are written: the snapshot arrives as its canonical
# JSON (the bytes the content hash covers) and is sent as is, by INSERT and by COPY alike.
# Untyped (NullType), the value goes without a cast: PostgreSQL reads the text as the
# column's json, SQLite stores it.
VERSION_TABLE = Table(
    OrganisationVersion.__tablename__,
    MetaData(),
    *[
        Column(c.name, NullType() if c.name == "snapshot" else c.type, primary_key=c.primary_key)
        for c in table_of(OrganisationVersion).columns
    ],
)

_COMMITS = table_of(RegisterCommit)
_REGISTER = table_of(RegisterVersion)

# A recorded change's place in the feed (needs organisation_versions joined with
# register_commits on commit_id).
CHANGE_POSITION = (
    RegisterCommit.first_position + OrganisationVersion.commit_seq - 1
).label("change_position")


# --- recording --------------------------------------------------------------------------


@dataclass(slots=True)
class Runs:
    """Numbers held as runs of consecutive ones: the versions a first import of 1,000,000
    entered with their rows are one run, not a set of a million integers (~60 MB)."""

    runs: list[list[int]] = field(default_factory=list)  # [first, last], in order

    def add(self, number: int) -> None:
        if self.runs and self.runs[-1][1] + 1 == number:
            self.runs[-1][1] = number
        else:
            self.runs.append([number, number])

    def __bool__(self) -> bool:
        return bool(self.runs)

    def missing(self, upto: int) -> Iterator[int]:
        """The numbers 1..*upto* not held, in order."""
        following = 1
        for first, last in sorted(self.runs):
            yield from range(following, first)
            following = max(following, last + 1)
        yield from range(following, upto + 1)


@dataclass(slots=True)
class Recording:
    """The changes one transaction records: its ``register_commits`` row, how many so far."""

    commit_id: int
    recorded: int = 0
    # The numbers of versions whose entries were made with them (created_entry), and
    # what those entries share.
    entered: Runs = field(default_factory=Runs)
    created: feed_items.Created | None = None

    def version_row(
        self,
        sor_code: str,
        version: int,
        snapshot: str,
        *,
        recorded_at: datetime,
        source: str,
        actor: str,
        reference: str | None,
        import_run_id: int | None = None,
    ) -> VersionRow:
        """The version row of one recorded change, numbered in this transaction."""
        self.recorded += 1
        return VersionRow(
            sor_code=sor_code,
            version=version,
            recorded_at=recorded_at,
            source=source,
            actor=actor,
            reference=reference,
            import_run_id=import_run_id,
            snapshot=snapshot,
            commit_id=self.commit_id,
            commit_seq=self.recorded,
        )


def recording(session: DbSession) -> Recording:
    """This transaction's recording; the first call makes its ``register_commits`` row.

    Refuses a session without the hooks (:func:`install`): its changes would never get
    a position, and the feed would miss them without a word.
    """
    plain = _plain(session)
    if not is_installed(plain):
        raise RuntimeError(
            "this session does not record register changes: use the app's db.session "
            "(hierarchy.changes.install)"
        )
    current: Recording | None = plain.info.get(_RECORDING)
    if current is None:
        commit_id: int = plain.execute(
            insert(_COMMITS).values(changes=0, request_id=current_request_id())
            .returning(_COMMITS.c.id)
        ).scalar_one()
        current = plain.info[_RECORDING] = Recording(commit_id)
    return current


def record_change(
    session: DbSession,
    organisation: Organisation,
    own: Mapping[str, Any],
    now: datetime,
    *,
    source: str,
    actor: str,
    reference: str | None,
    inherited_by: Iterable[str] = (),
) -> None:
    """Record a change of *organisation*'s own values *own*, made at *now*.

    Writes its version row (``organisation.version``), supersedes the one before,
    makes the narrow search rows of the organisation and of the units *inherited_by*
    (whose inherited values changed with it) equal to theirs, and marks the register
    changed. Call it after the organisation row holds the change.
    """
    plain = _plain(session)
    row = recording(plain).version_row(
        organisation.sor_code,
        organisation.version,
        snapshot_json(own).decode(),
        recorded_at=now,
        source=source,
        actor=actor,
        reference=reference,
    )
    plain.flush()  # the organisation row first: the version refers to it
    plain.execute(insert(VERSION_TABLE), [row])
    _write_entries(plain, feed_entries.one_version_entry(),
                   {key: row[key] for key in ("commit_id", "sor_code", "commit_seq")})
    supersede(plain, [organisation.sor_code], now)
    inherited = list(inherited_by)
    sync_names(plain, [organisation.sor_code, *inherited])
    record_inherited(plain, inherited, now, source=source, reference=reference)
    mark_register_changed(plain)


def record_inherited(
    target: DbSession | Connection,
    codes: Iterable[str],
    now: datetime,
    *,
    source: str,
    reference: str | None,
    recorded: Recording | None = None,
) -> int:
    """Feed entries for the units *codes* whose effective values changed with an
    ancestor's (their rows written already); those whose item shows no change get none.
    Returns how many were recorded. *recorded* is the transaction's recording (found from
    the session when *target* is one)."""
    current = recorded if recorded is not None else recording(_session_of(target))
    ordered = sorted(set(codes))
    count = 0
    postgresql = is_postgresql(target)
    for start in range(0, len(ordered), _CHUNK):
        count += _numbered(target, current, feed_entries.inherited_entries(
            current.commit_id, ordered[start : start + _CHUNK],
            recorded_at=now, source=source, reference=reference, postgresql=postgresql))
    return count


def created_entry(
    recorded: Recording, version: VersionRow, organisation: Mapping[str, Any],
    effective: Mapping[str, Any],
) -> tuple[feed_items.Created, bytes] | None:
    """The feed entry of an organisation the import inserts, made in the same pass from
    its first version *version* and the row it sends (*organisation*, JSON columns as
    text; *effective*: its effective values as the dict they were made from), to be
    written with them (``hierarchy.import_writer``): ``created``, as what the commit's
    created entries share (``hierarchy.feed.items.Created``) and its item rendered (as
    UTF-8). A first entry compares with nothing, so the row is all it needs - no statement
    reads the organisation back, and the rows go by COPY from the writer's thread while
    the files are parsed. None when the organisation names a successor: its item shows
    the chains' ends, read once the run's rows are written (:func:`record_import_entries`
    makes it then, as every other version's)."""
    if organisation["replaced_by"] not in (None, "null", "[]"):
        return None
    created = recorded.created
    if created is None or not created.shares(version):
        created = recorded.created = feed_items.Created(version)
    recorded.entered.add(version["commit_seq"])
    return created, created.item(version["sor_code"], organisation, effective)


def record_import_entries(
    connection: Connection,
    recorded: Recording,
    import_run_id: int,
    inherited: Iterable[str],
    now: datetime,
    reference: str,
) -> None:
    """The import's feed entries: one per version the run recorded that has none yet
    (:func:`created_entry`), from the rows the import wrote, in batches of its versions'
    numbers, then the units *inherited* changed (``derived``)."""
    versions, entered = recorded.recorded, recorded.entered
    if not entered:
        for first in range(1, versions + 1, _ENTRY_BATCH):
            _write_entries(connection, feed_entries.versioned_entries(
                recorded.commit_id, import_run_id=import_run_id,
                seq_range=(first, min(first + _ENTRY_BATCH - 1, versions))))
    else:  # the numbers left are scattered among those entered: named, a chunk at a time
        waiting = list(entered.missing(versions))
        postgresql = is_postgresql(connection)
        for start in range(0, len(waiting), _CHUNK):
            _write_entries(connection, feed_entries.versioned_entries(
                recorded.commit_id, import_run_id=import_run_id,
                seqs=waiting[start : start + _CHUNK], postgresql=postgresql))
    record_inherited(connection, inherited, now, source="import", reference=reference,
                     recorded=recorded)


def record_took_effect(session: DbSession, after: date, through: date, now: datetime) -> int:
    """``took_effect`` entries for the organisations whose ``valid_from`` or ``valid_to``
    falls in (*after*, *through*]; how many."""
    current = recording(session)
    return _numbered(session, current, feed_entries.took_effect_entries(
        current.commit_id, current.recorded, after, through, recorded_at=now,
        reference=f"tick:{through.isoformat()}"))


def _numbered(
    target: DbSession | Connection, recorded: Recording, statement: Select[Any]
) -> int:
    """Write the entries of a statement whose rows are numbered on from what *recorded*
    has recorded (by the statement, built with ``recorded.recorded`` as its base, or as
    they are rendered); count them in."""
    count = _write_entries(target, statement, base=recorded.recorded)
    recorded.recorded += count
    return count


def _write_entries(target: DbSession | Connection, statement: Select[Any],
                   parameters: Mapping[str, Any] | None = None, base: int = 0) -> int:
    """Insert the entries *statement* selects (``hierarchy.feed.entries``; *parameters*:
    the values of its bound parameters), each with its item rendered and compared with
    the one before (``hierarchy.feed.items``; rows with no number are numbered *base* + 1
    on); how many. The rows are read whole, so the inserts cannot change what the
    statement sees: callers bound its size."""
    connection = target if isinstance(target, Connection) else _plain(target).connection()
    rows = connection.execute(statement, parameters).all()
    if not rows:
        return 0
    stored = feed_items.render_items(connection, rows, date.today(), base)
    if not stored:
        return 0
    if connection.dialect.name == "postgresql":
        copy_rows(connection, feed_entries.ENTRIES.name, feed_entries.STORED_COLUMNS, stored)
    else:
        connection.execute(insert(feed_entries.ENTRIES), stored)
    return len(stored)


def _session_of(target: DbSession | Connection) -> DbSession:
    if isinstance(target, Connection):
        raise TypeError("pass the transaction's recording with a connection")
    return target


def supersede(target: DbSession | Connection, codes: Iterable[str], now: datetime) -> None:
    """End, as of *now*, the open versions of *codes* that a newer version follows.

    One rule for both writers, called after the new versions are written: a version
    stays open until a higher version of its organisation is recorded. The newer row
    is found in the (sor_code, version) index, no clock is compared.
    """
    versions = VERSION_TABLE
    newer = VERSION_TABLE.alias("newer")
    ordered = sorted(set(codes))
    postgresql = is_postgresql(target)
    for start in range(0, len(ordered), _SUPERSEDE_CHUNK):
        target.execute(
            update(versions)
            .where(
                one_of(versions.c.sor_code, ordered[start : start + _SUPERSEDE_CHUNK],
                       postgresql=postgresql),
                versions.c.superseded_at.is_(None),
                exists().where(
                    newer.c.sor_code == versions.c.sor_code,
                    newer.c.version > versions.c.version,
                ),
            )
            .values(superseded_at=now)
        )


def sync_names(target: DbSession | Connection, codes: Iterable[str]) -> None:
    """Make the narrow search rows of *codes* equal to their organisations, set-based.

    Called after the organisations are written (flushed), in the same transaction.
    Writes only the rows that differ, and adds those missing: most changes that reach
    many units (an inherited phone number) change none of the columns searched, and
    rewriting such a row would still maintain every index on it (the trigram index on
    PostgreSQL). A writer that inserts new organisations may send their narrow rows with
    them instead: the organisation row's ``NAME_COLUMNS`` are what this would copy.
    """
    names = table_of(OrganisationName)
    organisations = table_of(Organisation)
    copied = [name for name in NAME_COLUMNS if name != "sor_code"]
    ordered = sorted(set(codes))
    postgresql = is_postgresql(target)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        target.execute(
            update(names)
            .where(
                names.c.sor_code == organisations.c.sor_code,
                one_of(names.c.sor_code, chunk, postgresql=postgresql),
                or_(*[names.c[name].is_distinct_from(organisations.c[name]) for name in copied]),
            )
            .values({name: organisations.c[name] for name in copied})
        )
        target.execute(
            insert(names).from_select(
                list(NAME_COLUMNS),
                select(*[organisations.c[name] for name in NAME_COLUMNS]).where(
                    one_of(organisations.c.sor_code, chunk, postgresql=postgresql),
                    ~exists().where(names.c.sor_code == organisations.c.sor_code),
                ),
            )
        )


# --- the register version -----------------------------------------------------------------


def mark_register_changed(session: DbSession) -> None:
    """Note that this transaction changed what lookups read (bumped at commit)."""
    _plain(session).info[REGISTER_CHANGED] = True


def register_changed_in(session: DbSession) -> bool:
    """Whether this session's transaction holds register changes not yet committed
    (flushed, or still pending in the session)."""
    plain = made_session(session)
    if plain is None:  # the request made no session: nothing changed through it
        return False
    return bool(plain.info.get(REGISTER_CHANGED)) or _holds_register_objects(plain)


REGISTER_VERSION_QUERY = select(_REGISTER.c.version, _REGISTER.c.stamp).where(
    _REGISTER.c.name == "register"
)


def register_version(session: DbSession) -> tuple[int, str] | None:
    """The register's version when this transaction first asked (None: unknown, do not cache).

    Read once per transaction: what the transaction reads afterwards is of that
    version or newer, so answers filed under it are never staler than it. A version the
    request remembered before it made its session (:func:`remember_register_version`) is
    the answer while it makes none, and the made session's first one (read before it).
    """
    plain = made_session(session)
    if plain is not None and _VERSION_READ in plain.info:
        known: tuple[int, str] | None = plain.info[_VERSION_READ]
        return known
    pending = _pending_version()
    if pending is not _NOTHING:
        if plain is not None:  # made after it was read: its first transaction takes it
            plain.info[_VERSION_READ] = request.environ.pop(_VERSION_PENDING)
        return cast("tuple[int, str] | None", pending)
    plain = plain or _plain(session)
    row = plain.connection().execute(REGISTER_VERSION_QUERY).first()
    version = (row[0], row[1]) if row is not None else None
    plain.info[_VERSION_READ] = version
    return version


def remember_register_version(session: DbSession, version: tuple[int, str] | None) -> None:
    """Let this session's next transaction use a version read just before it began
    (read elsewhere, e.g. on the routes' own connection, before any of its data)."""
    plain = made_session(session)
    if plain is None:
        if has_request_context():  # kept in the request until it makes its session
            request.environ[_VERSION_PENDING] = version
            return
        plain = _plain(session)
    if not plain.in_transaction():
        plain.info[_VERSION_READ] = version


_NOTHING = object()


def _pending_version() -> object:
    """The version remembered in this request before its session was made, or _NOTHING."""
    if not has_request_context():
        return _NOTHING
    return request.environ.get(_VERSION_PENDING, _NOTHING)


def bump_register_version(session: DbSession, positions: int = 0) -> int:
    """Move the register version on and take *positions* feed positions; the last one.

    Locks the version row until COMMIT (PostgreSQL), so call it last.
    """
    plain = _plain(session)
    last, version = plain.execute(
        update(_REGISTER)
        .where(_REGISTER.c.name == "register")
        .values(
            version=_REGISTER.c.version + 1,
            stamp=secrets.token_hex(16),
            last_position=_REGISTER.c.last_position + positions,
        )
        .returning(_REGISTER.c.last_position, _REGISTER.c.version)
    ).one()
    if plain.connection().dialect.name == "postgresql":
        # Sent at COMMIT, after the change is visible: the feed's watchers and the
        # workers' register versions (hierarchy.search.version_listener) learn of it.
        plain.execute(select(func.pg_notify(FEED_CHANNEL, str(last))))
    for hook in VERSION_BUMPED:
        hook(int(version))
    return int(last)


def _finish(session: Session, recorded: Recording | None) -> None:
    """At commit: bump the version if the register changed, and number what was recorded."""
    changed = session.info.pop(REGISTER_CHANGED, False)
    if recorded is None or recorded.recorded == 0:
        if recorded is not None:
            session.execute(delete(_COMMITS).where(_COMMITS.c.id == recorded.commit_id))
        if changed:
            bump_register_version(session)
        return
    count = recorded.recorded
    last = bump_register_version(session, count)
    values = {"first_position": last - count + 1, "changes": count}
    updated = session.execute(
        update(_COMMITS)
        .where(_COMMITS.c.id == recorded.commit_id)
        .values(values)
        .returning(_COMMITS.c.id)
    ).first()
    if updated is None:
        # Its row was made inside a savepoint that was rolled back; changes recorded
        # after that still name it. Its id stays ours: the database never hands it out
        # again (a sequence on PostgreSQL; SQLite's one writer is this transaction).
        session.execute(insert(_COMMITS).values(id=recorded.commit_id,
                                                request_id=current_request_id(), **values))


# --- the hooks ------------------------------------------------------------------------------


def install(sessions: scoped_session[_S]) -> None:
    """Record register changes in the sessions *sessions* makes (the app's ``db.session``).

    The hooks go on the class those sessions are made of, Flask-SQLAlchemy's Session:
    a scoped session made later of the same class (the tests' fixture makes one per
    test) has them too, and a plain ``sqlalchemy.orm.Session`` made elsewhere in the
    process is left alone. Installing twice changes nothing.
    """
    # A sessionmaker makes its own subclass of the class it is given (so that events
    # can target one factory); the given class is the one every factory of it shares.
    session_class = sessions.session_factory.class_.__bases__[0]
    if session_class is Session:
        raise TypeError("refusing to hook every Session of the process; pass the app's")
    for name, hook in _HOOKS:
        if not event.contains(session_class, name, hook):
            event.listen(session_class, name, hook)


def is_installed(session: Session) -> bool:
    """Whether the hooks run in *session* (their class or a base class has them)."""
    return any(
        event.contains(cls, "before_commit", _before_commit)
        for cls in type(session).__mro__
        if issubclass(cls, Session) and cls is not Session
    )


def _note_register_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _REGISTER_TABLES:
            mark_register_changed(state.session)


def _note_register_flush(session: Session, _context: object, _instances: object) -> None:
    if not session.info.get(REGISTER_CHANGED) and _holds_register_objects(session):
        mark_register_changed(session)


def _before_commit(session: Session) -> None:
    # Also runs when a savepoint is released (SQLAlchemy calls it for nested commits):
    # what was recorded so far is numbered then, under the lock that is kept to COMMIT,
    # and later changes start a recording of their own.
    session.flush()
    _finish(session, session.info.pop(_RECORDING, None))


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for key in (REGISTER_CHANGED, _RECORDING, _VERSION_READ):
            session.info.pop(key, None)
        # A version the request remembered before its session was made labels a first
        # transaction only: once any has ended, it was not read before the next one's
        # data (that one may follow a commit of changes). The next reads its own.
        if has_request_context():
            request.environ.pop(_VERSION_PENDING, None)


_HOOKS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("do_orm_execute", _note_register_statement),
    ("before_flush", _note_register_flush),
    ("before_commit", _before_commit),
    ("after_transaction_end", _after_transaction_end),
)


def _holds_register_objects(session: Session) -> bool:
    if not session.identity_map and not session.new:  # nothing loaded or added (a lookup)
        return False
    return any(
        isinstance(obj, _REGISTER_MODELS)
        for obj in chain(session.new, session.dirty, session.deleted)
    )


def _plain(session: DbSession) -> Session:
    return session() if isinstance(session, scoped_session) else session

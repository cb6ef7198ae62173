"""One consistent snapshot of the register for an export, and the feed position it is at.

An export is read in one snapshot: on PostgreSQL a ``REPEATABLE READ READ ONLY``
transaction on a connection of its own (the request's or the command's session is left
alone), on SQLite one read transaction (WAL: writers go on meanwhile). The first
statement reads the register's last feed position, so the rows are exactly the register
at that position: a consumer that loads the export and then follows
``/api/v1/changes?after=<its cursor>`` misses nothing and sees nothing twice. Rows are
streamed in key order, a thousand at a time (PostgreSQL: a server-side cursor), so an
export's memory stays flat however large the register.

A session bound to one connection (the tests' rolled-back transaction) is read on that
connection, in the transaction it is in.

**All history** (``--all-history``, ``?all_history=1``): the snapshot's lines are then
every version of every organisation (:meth:`Snapshot.versions`, rows of
``organisation_versions``: its own values as recorded, ``snapshot``, with
``recorded_at`` / ``superseded_at`` - transaction time - and the version's own
``valid_from`` / ``valid_to`` - valid time), by SOR code and version, streamed the same
way; ``ExportInfo.versions`` counts them. One day's register (``on``) and all history
are different questions: asking both is refused (:class:`HistoryOnADay`).

The writers' interface (``hierarchy.export`` registers them):
``Writer = Callable[[Iterable[ExportRow], Write, ExportInfo], None]``, where an
:data:`ExportRow` is a row of ``organisations`` - every column by name, as the
attributes of :class:`hierarchy.models.Organisation` (JSON columns decoded, dates as
``date``) - and :data:`Write` takes bytes (a file's ``write``, or the HTTP stream's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection, Engine, RootTransaction

from hierarchy.feed.cursor import encode_cursor
from hierarchy.feed.reading import CURSOR_KEY, LAST_POSITION
from hierarchy.models import Organisation, OrganisationVersion, table_of
from hierarchy.service import active_on_clause
from hierarchy.successors import Successors, find_successors
from sorregistry import replicas
from sorregistry.database import DbSession
from sorregistry.errors import DomainError

# A row of organisations, every column by name (see the module's text).
ExportRow = Row[Any]
# Where a writer's bytes go.
Write = Callable[[bytes], object]
# The chain ends of organisations (code -> its replaced_by) in the snapshot, on its day.
SuccessorLookup = Callable[[Mapping[str, Sequence[str] | None]], Mapping[str, Successors]]
# The order rows come in: by SOR code, or by path (the tree depth first, every unit right
# after its parent: what nested formats need).
Order = Literal["code", "path"]
CHUNK_ROWS = 1000

_ORGANISATIONS = table_of(Organisation)
_VERSIONS = table_of(OrganisationVersion)
# The columns of a version line (Snapshot.versions), in the versions' key order.
VERSION_COLUMNS = ("sor_code", "version", "recorded_at", "superseded_at", "source",
                   "reference", "snapshot")


class HistoryOnADay(DomainError):
    """All history and one day's register asked at once (422)."""

    status = 422


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What an export is: its format, the feed position it was taken at and the cursor to
    follow the feed from, the day it shows (None: every organisation, closed and future
    ones too), whether history was asked for, how many organisations it holds, and when
    the snapshot was taken (UTC). The one description every writer is given."""

    format: str
    position: int
    cursor: str
    on: date | None
    all_history: bool
    count: int
    taken_at: datetime
    versions: int = 0  # with all_history: how many version lines
    # Where closed organisations went, read in the snapshot (None: a writer given rows
    # without a database, as the tests' are).
    successors: SuccessorLookup | None = None

    @property
    def snapshot_date(self) -> date:
        """The day the export shows: *on*, or the day the snapshot was taken."""
        return self.on or self.taken_at.date()


Writer = Callable[[Iterable[ExportRow], Write, ExportInfo], None]


class Snapshot:
    """An open snapshot: its :attr:`info`, its rows (read once), then :meth:`close`."""

    def __init__(self, connection: Connection, owned: bool, info: ExportInfo,
                 transaction: RootTransaction | None, on: date | None, order: Order) -> None:
        self.connection = connection
        self.info = info
        self._owned = owned
        self._transaction = transaction
        self._on = on
        self._order = order

    def rows(self) -> Iterator[ExportRow]:
        """The organisations, in the snapshot's order, fetched a chunk at a time."""
        statement = select(*_ORGANISATIONS.columns).order_by(
            _ORGANISATIONS.c.sor_code if self._order == "code" else _ORGANISATIONS.c.path)
        if self._on is not None:
            statement = statement.where(*active_on_clause(self._on))
        # Options on the statement, not the connection: a connection's options stay on it
        # (the tests' shared connection would stream every later statement).
        result = self.connection.execute(
            statement.execution_options(stream_results=True, yield_per=CHUNK_ROWS))
        try:
            yield from result
        finally:
            result.close()

    def versions(self) -> Iterator[ExportRow]:
        """Every version of every organisation (:data:`VERSION_COLUMNS`), by SOR code and
        version, fetched a chunk at a time."""
        statement = select(*[_VERSIONS.c[name] for name in VERSION_COLUMNS]).order_by(
            _VERSIONS.c.sor_code, _VERSIONS.c.version)
        result = self.connection.execute(
            statement.execution_options(stream_results=True, yield_per=CHUNK_ROWS))
        try:
            yield from result
        finally:
            result.close()

    def lines(self) -> Iterator[ExportRow]:
        """What the export holds: the versions with all history, else the organisations."""
        return self.versions() if self.info.all_history else self.rows()

    def close(self) -> None:
        """End the snapshot's transaction and give its connection back (idempotent)."""
        if not self._owned:
            return
        self._owned = False
        try:
            if self._transaction is not None and self._transaction.is_active:
                self._transaction.rollback()  # it only read
        finally:
            self.connection.close()


def open_snapshot(session: DbSession, *, format: str, order: Order, on: date | None = None,
                  all_history: bool = False) -> Snapshot:
    """Open a snapshot of the register as *session*'s database holds it now (in a
    request: a hot standby's, when ``sorregistry.replicas`` chooses one)."""
    if all_history and on is not None:
        raise HistoryOnADay("all history holds every version; a day's register only those "
                            "in force on it: ask for one or the other")
    bind = session.get_bind()
    if isinstance(bind, Engine):
        connection = replicas.connect(bind)
        try:
            if bind.dialect.name == "postgresql":
                connection = connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True)
            transaction = connection.begin()
            info = _info(connection, format, on, all_history)
        except BaseException:
            connection.close()
            raise
        return Snapshot(connection, True, info, transaction, on, order)
    connection = session.connection()
    return Snapshot(connection, False, _info(connection, format, on, all_history), None, on,
                    order)


def _with_successors(connection: Connection, info: ExportInfo) -> ExportInfo:
    day = info.snapshot_date

    def lookup(starts: Mapping[str, Sequence[str] | None]) -> Mapping[str, Successors]:
        return find_successors(connection, starts, day)

    return replace(info, successors=lookup)


def _info(connection: Connection, format: str, on: date | None,
          all_history: bool) -> ExportInfo:
    # The position first: it fixes the snapshot (REPEATABLE READ) that the rows are read in.
    position = int(connection.execute(LAST_POSITION).scalar_one())
    key = connection.execute(CURSOR_KEY).scalar_one()
    counted = select(func.count()).select_from(_ORGANISATIONS)
    if on is not None:
        counted = counted.where(*active_on_clause(on))
    count = int(connection.execute(counted).scalar_one())
    versions = int(connection.execute(
        select(func.count()).select_from(_VERSIONS)).scalar_one()) if all_history else 0
    return _with_successors(connection, ExportInfo(
        format=format, position=position, cursor=encode_cursor(position, bytes.fromhex(key)),
        on=on, all_history=all_history, count=count, taken_at=datetime.now(UTC),
        versions=versions))

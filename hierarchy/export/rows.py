"""What every export format is given: the register's rows in tree order, and the export's facts.

The writers (``sor_xml``, ``csv_format``) are pure: they take an iterable of register
rows (mappings with the ``organisations`` table's columns), an output and an
:class:`ExportInfo`, and know nothing of databases. :func:`iter_rows` is the one reader
they are given here: the rows in ``path`` order, which is the tree's pre-order (a parent
before its children, each subtree contiguous), read in chunks of a fixed size by keyset
on the ``path`` index, so memory stays flat in the register's size. Run it inside one
transaction (REPEATABLE READ on PostgreSQL) and every chunk reads the same snapshot.

:func:`snapshot` opens that transaction for a session and reads the feed position first,
so the rows are the register at that position; the formats' ``export_*`` functions
(session, output, ``on``, ``all_history``) use it, for a command or a route to call.
A format holds one state per organisation, so ``all_history`` is refused
(:class:`NoHistory`): the change feed and each organisation's history carry it.

:func:`feed_writer` makes a writer of the change feed's export registry
(``(rows, write, info)``: SQLAlchemy rows, a write function, an info naming ``position``,
``cursor`` and ``on``) out of a writer here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection, Engine

from hierarchy.models import Organisation, RegisterVersion, table_of
from sorregistry.database import DbSession
from sorregistry.errors import DomainError

if TYPE_CHECKING:
    from typing import TypeAlias

    from _typeshed import SupportsWrite

    # Where a writer puts its bytes: a binary file (anything with write) or a function.
    Output: TypeAlias = SupportsWrite[bytes] | Callable[[bytes], object]

# A register row as the writers read it: the organisations table's columns by name.
Row = Mapping[str, Any]

CHUNK_SIZE = 2000


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """The facts every export states about itself.

    ``feed_position`` is the last change-feed position the snapshot contains: a mirror
    seeded from the file follows the feed after it (``feed_cursor``, when the feed gives
    one) and misses nothing.
    """

    snapshot_date: date
    created_at: datetime
    feed_position: int
    feed_cursor: str | None = None


def write_function(out: Output) -> Callable[[bytes], object]:
    """The function that writes to *out*: its ``write``, or *out* itself."""
    write = getattr(out, "write", None)
    if write is not None:
        return write  # type: ignore[no-any-return]
    assert callable(out)
    return out


def iter_rows(
    source: Connection | DbSession, on: date | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[Row]:
    """The register's rows in tree order (by ``path``), *chunk_size* at a time.

    With *on*, only the organisations in force that day (begun, not yet closed).
    """
    organisations = table_of(Organisation)
    statement = select(organisations).order_by(organisations.c.path).limit(chunk_size)
    if on is not None:
        statement = statement.where(
            or_(organisations.c.valid_from.is_(None), organisations.c.valid_from <= on),
            or_(organisations.c.valid_to.is_(None), organisations.c.valid_to > on),
        )
    last: str | None = None
    while True:
        page = statement if last is None else statement.where(organisations.c.path > last)
        rows = cast("Sequence[Row]", source.execute(page).mappings().all())
        yield from rows
        if len(rows) < chunk_size:
            return
        last = rows[-1]["path"]


class NoHistory(DomainError):
    """``all_history`` asked of a format that holds one state per organisation."""

    status = 422


def refuse_history(format_name: str, all_history: bool) -> None:
    """Refuse *all_history* for *format_name*, before anything is written."""
    if all_history:
        raise NoHistory(
            f"the {format_name} format holds one state per organisation and no history; "
            "the change feed (/api/v1/changes) and each organisation's history carry it",
            field_errors={"all_history": ["not with this format"]})


@contextmanager
def snapshot(session: DbSession, on: date | None = None, chunk_size: int = CHUNK_SIZE
             ) -> Iterator[tuple[Iterator[Row], ExportInfo]]:
    """The register's rows (:func:`iter_rows`) and the export's facts, in one snapshot.

    On an engine, a connection of its own in one transaction (PostgreSQL: REPEATABLE
    READ, read only), rolled back at the end; a session bound to one connection (a
    test's) is read on it, in the transaction it is in. The feed position is read by
    the transaction's first statement, which fixes the snapshot.
    """
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        yield _opened(session.connection(), on, chunk_size)
        return
    with bind.connect() as connection:
        if bind.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin() as transaction:
            try:
                yield _opened(connection, on, chunk_size)
            finally:
                transaction.rollback()  # it only read


def _opened(connection: Connection, on: date | None, chunk_size: int
            ) -> tuple[Iterator[Row], ExportInfo]:
    position = connection.execute(
        select(RegisterVersion.last_position).where(RegisterVersion.name == "register")
    ).scalar()
    info = ExportInfo(snapshot_date=on or datetime.now(UTC).date(),
                      created_at=datetime.now(UTC), feed_position=int(position or 0))
    return iter_rows(connection, on, chunk_size), info


class FeedInfo(Protocol):
    """What the change feed's export registry tells a writer (``hierarchy.export``)."""

    @property
    def position(self) -> int: ...

    @property
    def cursor(self) -> str: ...

    @property
    def on(self) -> date | None: ...


def feed_writer(
    writer: Callable[[Iterable[Row], Output, ExportInfo], object],
) -> Callable[[Iterable[Any], Callable[[bytes], object], FeedInfo], None]:
    """*writer* as the feed's export registry calls a format: ``(rows, write, info)``,
    the rows SQLAlchemy ``Row`` objects (or mappings)."""

    def write_rows(rows: Iterable[Any], write: Callable[[bytes], object],
                   info: FeedInfo) -> None:
        now = datetime.now(UTC)
        writer((getattr(row, "_mapping", row) for row in rows), write,
               ExportInfo(snapshot_date=info.on or now.date(), created_at=now,
                          feed_position=info.position, feed_cursor=info.cursor))

    return write_rows

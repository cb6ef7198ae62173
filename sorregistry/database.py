"""Engine set-up that differs between SQLite and PostgreSQL."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, cast

import flask_sqlalchemy.session
import psycopg
from psycopg.pq import Format
from sqlalchemy import ColumnElement, Integer, String, any_, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, CursorResult, Engine, Result
from sqlalchemy.orm import QueryableAttribute, Session, scoped_session

from sorregistry import replicas

# What a service takes: a plain Session (a command, a test) or Flask-SQLAlchemy's scoped
# session ``db.session`` (its Session subclass makes the scoped type a different one).
DbSession = Session | scoped_session[flask_sqlalchemy.session.Session]

# Execution option: open the SQLite transaction with BEGIN IMMEDIATE (see begin_write).
SQLITE_BEGIN_IMMEDIATE = "sor_sqlite_begin_immediate"


def configure_engine(engine: Engine) -> None:
    """Per-dialect connection set-up; see the two helpers below."""
    if engine.dialect.name == "postgresql":
        _configure_postgresql(engine)
    _configure_sqlite(engine)


def _configure_postgresql(engine: Engine) -> None:
    """No parallel plans for the service's short queries.

    On a 2-core server PostgreSQL picks parallel sequential scans for counts
    that an index answers faster alone (measured: 190 ms -> 62 ms).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        prepare_postgresql_connection(dbapi_connection)


def prepare_postgresql_connection(dbapi_connection: Any) -> None:
    """The session settings of every connection the service makes to PostgreSQL (the
    engine's, and the lookups' own in ``sorregistry.reads``).

    The time zone is UTC by that name, whatever the server's default (often "Etc/UTC",
    or a local zone): the service keeps every time in UTC, and psycopg decodes a
    timestamptz in C only for a session in "UTC" - under any other name each value goes
    through Python's zoneinfo (501 rows of a page with ``updated_at``: 0.73 ms of CPU under
    "Etc/UTC", 0.35 ms under "UTC")."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SELECT set_config('max_parallel_workers_per_gather', '0', false), "
                       "set_config('TimeZone', 'UTC', false)")
    if not dbapi_connection.autocommit:
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave like a real transactional database.

    Python's sqlite3 module opens transactions lazily and not around DDL, so a
    failed import could leave a half-made temporary table behind. Taking over
    BEGIN ourselves gives one real transaction per unit of work. WAL lets the
    web server read while an import writes; foreign keys are off by default in
    SQLite and must be switched on per connection.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def begin_write(session: DbSession) -> None:
    """Start *session*'s transaction as the database's one writer on SQLite.

    A deferred SQLite transaction that reads and then writes fails at once
    ("database is locked", no busy wait) when another connection wrote in
    between; BEGIN IMMEDIATE takes the write lock first and waits for it
    (busy_timeout), so read-then-write units such as claiming outbox rows are
    serialised. No effect on PostgreSQL, which locks the rows themselves.
    """
    if isinstance(session, scoped_session):
        session = session()
    if session.in_transaction():
        if session.get_bind().dialect.name == "sqlite":
            # Begun already (by the caller, or the tests' savepoint): take the lock now
            # with a write that changes nothing (SQLite takes it at any UPDATE, whatever
            # its WHERE). A transaction that has not read yet then waits for the lock
            # (busy_timeout); one that has read fails at once ("database is locked") while
            # another writer holds it - SQLite does not wait to upgrade a read - so routes
            # end their reading transaction (commit) before they call the service.
            session.execute(text("UPDATE sor_code_counter SET name = name WHERE 0"))
        return
    session.connection(execution_options={SQLITE_BEGIN_IMMEDIATE: True})


@contextmanager
def write_step(session: DbSession) -> Iterator[Session]:
    """One unit of work that writes: end the read, take the write lock, run, commit.

    The request (or command) may have read in its transaction already - the
    bearer token, the logged-in person; that transaction ends first, so SQLite can
    take its write lock at once and concurrent writers queue for it (see
    :func:`begin_write`) instead of failing with "database is locked". The block runs
    in one transaction, committed when it ends; on any error it is rolled back and the
    error raised again, so a refusal leaves nothing behind. Services flush; this is
    where their caller commits::

        with write_step(db.session) as session:
            application = service.approve_application(session, actor, application_id)
    """
    plain = session() if isinstance(session, scoped_session) else session
    plain.commit()
    begin_write(plain)
    try:
        yield plain
    except BaseException:
        plain.rollback()
        raise
    plain.commit()
    replicas.note_write()  # the request reads its own write: the primary, from now on


Listed = ColumnElement[Any] | QueryableAttribute[Any]


def one_of(column: Listed, values: Iterable[Any], *, postgresql: bool) -> ColumnElement[bool]:
    """*column* equal to one of *values*: on PostgreSQL ``= ANY`` of one array parameter,
    elsewhere an (expanding) IN list. The bulk writers ask for thousands of codes at a
    time: an IN of 1,000 parameters is a statement of 1,000 placeholders that psycopg
    parses and converts again each time it runs (~12 ms of Python per 1,000 codes, against
    ~3 ms for the array), and an import asks it twice per batch."""
    return _one_of(column, None, list(values), postgresql)


def one_of_named(column: Listed, name: str, *, postgresql: bool) -> ColumnElement[bool]:
    """:func:`one_of` the list bound later as parameter *name*: for a statement built once
    and run with lists of any length (the same statement text on PostgreSQL)."""
    return _one_of(column, name, None, postgresql)


def _one_of(column: Listed, name: str | None, values: list[Any] | None,
            postgresql: bool) -> ColumnElement[bool]:
    # A named parameter gets no value here: one not bound when the statement runs is an
    # error, not a NULL.
    given: dict[str, Any] = {} if values is None else {"value": values}
    if postgresql:
        element = Integer() if isinstance(column.type, Integer) else String()
        return column == any_(bindparam(name, type_=ARRAY(element), **given))
    return column.in_(bindparam(name, expanding=True, **given))


def is_postgresql(target: DbSession | Connection) -> bool:
    """Whether *target* (a session or a connection) talks to PostgreSQL."""
    bind = target if isinstance(target, Connection) else session_bind(target)
    return bool(bind.dialect.name == "postgresql")


def made_session(session: DbSession) -> Session | None:
    """*session* itself, or the session behind the scoped proxy when its scope (the app
    context: a request) has made one; None when it has not - nothing was read, written or
    begun through it. A lookup that reads directly (``sorregistry.reads``) makes none: a
    session made and closed was ~35 us of a computed answer's own work."""
    if isinstance(session, scoped_session):
        registry = session.registry
        # Asked several times a lookup: when no scope has a session at all (a
        # ScopedRegistry's dict of them empty, as between a worker's writes), none here,
        # without computing this scope's key (the app context's id, through its proxy).
        made = getattr(registry, "registry", None)
        if type(made) is dict and not made:
            return None
        return session() if registry.has() else None
    return session


def session_bind(session: DbSession) -> Engine | Connection:
    """``session.get_bind()``, without making the request's session to ask it: a session
    not made yet would be bound to Flask-SQLAlchemy's default engine."""
    plain = made_session(session)
    if plain is not None:
        return plain.get_bind()
    owner = cast("scoped_session[Any]", session).session_factory.kw.get("db")
    engines = getattr(owner, "engines", None)  # Flask-SQLAlchemy's, for the current app
    if engines is not None and None in engines:
        return cast(Engine, engines[None])
    return session.get_bind()


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched. ``Session.execute`` is typed to return
    a plain ``Result``; for a DML statement it is the ``CursorResult`` that counts."""
    return cast("CursorResult[Any]", result).rowcount


def copy_rows(connection: Connection, table: str, columns: Sequence[str],
              rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert *rows* (their *columns*, by name) into *table* with PostgreSQL's COPY, in
    its text format formatted here (:func:`copy_text`): several times faster than
    psycopg's adaptation of each value, for the bulk writers whose Python side bounds
    them (the import, its feed entries)."""
    copy_data(connection, table, columns, copy_lines(columns, rows))


def copy_lines(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """*rows*' *columns* (by name) in COPY's text format, a line a row.

    Each line is made as if no value needed escaping - a text as it is, ``\\N`` for
    NULL, anything else by :func:`copy_text`, dates and times formatted once a batch -
    and checked once: a backslash beyond the NULLs' own, a tab beyond the separators, a
    newline or a carriage return means a value held one, and the line is made again value
    by value. Escaping is rare (a backslash in a name). A 200k import's rows (12M values)
    so took 0.79 of the time value by value did (side by side, the bytes equal): the
    import's writer thread formats them on the GIL its reading shares (1M organisations:
    ~60M values, ~70 s before)."""
    values_of = operator.itemgetter(*columns)
    one = len(columns) == 1
    separators = len(columns) - 1
    other = _texts_of_repeated_values()
    lines = []
    for row in rows:
        values = (values_of(row),) if one else values_of(row)
        line = "\t".join([value if type(value) is str else "\\N" if value is None
                          else other(value) for value in values])
        if (line.count("\\") != values.count(None) or line.count("\t") != separators
                or "\n" in line or "\r" in line):
            line = "\t".join([copy_text(value) for value in values])
        lines.append(line)
    lines.append("")  # the last line's newline
    return "\n".join(lines).encode()


def _texts_of_repeated_values() -> Callable[[object], str]:
    """:func:`copy_text` of a value that is not text, with the texts of dates and times
    kept for the values that come again: the import's rows share a few thousand dates and
    one timestamp (its own), each formatted in 0.8-1.6 us. A time is kept with its UTC
    offset, so two instants that compare equal in other zones are not taken for each
    other."""
    texts: dict[object, str] = {}

    def text_of(value: object) -> str:
        kind = type(value)
        if kind is date:
            key: object = value
        elif kind is datetime:
            key = (value, cast("datetime", value).utcoffset())
        else:
            return copy_text(value)
        text = texts.get(key)
        if text is None:
            text = texts[key] = copy_text(value)
        return text

    return text_of


def copy_data(connection: Connection, table: str, columns: Sequence[str],
              *chunks: bytes, binary: bool = False) -> None:
    """Send *chunks*, rows of *columns* in COPY's text format (:func:`copy_rows`) or, with
    *binary*, its binary format (:func:`copy_binary`), into *table*."""
    raw = connection.connection.driver_connection
    assert raw is not None
    options = " (FORMAT BINARY)" if binary else ""
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN{options}") as copy:
        for chunk in chunks:
            copy.write(chunk)


# COPY's binary format: a signature, its flags and the length of a header extension (none)
# before the rows, a field count of -1 after them.
COPY_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_BINARY_TRAILER = b"\xff\xff"
_NULL_FIELD = b"\xff\xff\xff\xff"


def copy_binary(connection: Connection, table: str, columns: Sequence[str],
                rows: Sequence[bytes]) -> None:
    """Send *rows* into *table*, each one row of *columns* in COPY's binary format: the
    number of fields (two bytes), then each field (:func:`binary_field`). Nothing in it is
    escaped or parsed as text: for rows of long text made in Python (the feed entries an
    import makes, ~1.2 KB each) the cheapest form for both sides."""
    copy_data(connection, table, columns, COPY_BINARY_HEADER, b"".join(rows),
              COPY_BINARY_TRAILER, binary=True)


def binary_field(value: object, type_name: str) -> bytes:
    """*value* as one field of COPY's binary format: its length (-1 for NULL), then its
    value as PostgreSQL's binary form of the type *type_name* (``int8``, ``varchar``,
    ``timestamptz``...), made by psycopg's own dumper for that type."""
    if value is None:
        return _NULL_FIELD
    dumper = psycopg.adapters.get_dumper_by_oid(psycopg.adapters.types[type_name].oid,
                                                Format.BINARY)
    dumped = dumper(type(value)).dump(value)
    assert dumped is not None  # None only for a None, handled above
    data = bytes(dumped)
    return len(data).to_bytes(4, "big") + data


def copy_text(value: object) -> str:
    """*value* in COPY's text format: \\N for NULL; backslash, tab, newline and carriage
    return escaped; booleans as t/f; dates and datetimes in ISO 8601 (with its offset)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Substring tests run in C; most values need no escaping at all.
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (value.replace("\\", "\\\\").replace("\t", "\\t")
                    .replace("\n", "\\n").replace("\r", "\\r"))
        return value
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    return str(value)

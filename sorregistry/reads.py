"""The lookups' reads: on PostgreSQL straight through psycopg, on a connection per thread.

A computed lookup is one to three short statements (about 0.5 ms of PostgreSQL's
time for a Privat list filtered by ydernummer); taken through the ORM session it
cost five times that: a pool checkout with its pre-ping round trip, BEGIN and
ROLLBACK, SQLAlchemy's statement cache key and result processing. A lookup reads
and never writes, so on PostgreSQL each worker thread keeps a connection of its
own in autocommit mode (every statement sees the latest committed register, as in
a READ COMMITTED transaction) and runs the lookups' statements on it:

* the statements are the same SQLAlchemy statements the session would run, built
  once per shape with named parameters (``hierarchy.search``, ``hierarchy.reporting``)
  and compiled once per process here, with PostgreSQL's own ``$n`` placeholders, for
  psycopg's raw cursor to send as they are; only their parameters vary per request;
* rows come back as named tuples (attribute access like SQLAlchemy's rows; made in C,
  :func:`named_rows`), or plain tuples for a caller that asks (a page's keys), JSON
  decoded by orjson;
* the connection is set up as the engine's are (``sorregistry.database``) and made
  again once when it broke (a server restart).

It serves only what a route allows (:func:`allow`: the request's session bound to
an engine, no transaction begun, no register change of its own); everything else -
SQLite, a session in a transaction, the tests' sessions bound to one connection,
the command line - runs the same statements through the session (``SessionReads``).
Setting ``SOR_FAST_READS=0`` turns it off.
"""

from __future__ import annotations

import atexit
import copy
import functools
import re
import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
import psycopg
from flask import Flask, current_app, has_request_context, request
from psycopg.rows import RowMaker, tuple_row
from psycopg.types.json import set_json_loads
from sqlalchemy import ARRAY, Select, String
from sqlalchemy.engine import Dialect, Engine

from sorregistry import replicas
from sorregistry.database import (
    DbSession,
    made_session,
    prepare_postgresql_connection,
    session_bind,
)

_FLAG = "sor_fast_reads"
_PRIMARY = "sor.fast_reads.primary"  # request.environ: the engine direct reads start from
_APP_PRIMARY = "sor_fast_reads_primary"  # app.extensions: that of a request without a session


# The reads' statements: SELECTs (a statement and its parameters).
Statement = Select[Any]
Batch = Sequence[tuple[Statement, Mapping[str, Any]]]
Connection = psycopg.Connection[Any]


class _Reads:
    """What the lookups ask: rows, one value, or several statements' rows at once."""

    def batch(self, statements: Batch, *, binary: bool = False,
              plain: bool = False) -> list[list[Any]]:  # pragma: no cover - abstract
        """Each statement's rows; *binary*: in PostgreSQL's binary format where read
        directly (a bytea comes as its bytes, not as hex twice its size; a page's keys'
        int8 stamps without their digits written and parsed, ~50 us less of the client's
        CPU for 501 rows); *plain*: as plain tuples, read by position only - for a
        caller of many rows whose columns it knows (a page's keys: a named tuple is made
        by a call per row, ~0.5 us, a plain one by psycopg's C alone)."""
        raise NotImplementedError

    def rows(self, statement: Statement, params: Mapping[str, Any], *,
             binary: bool = False, plain: bool = False) -> list[Any]:
        return self.batch([(statement, params)], binary=binary, plain=plain)[0]

    def scalar(self, statement: Statement, params: Mapping[str, Any]) -> Any:
        rows = self.rows(statement, params)
        return rows[0][0] if rows else None

    def scalar_and_rows(self, first: Statement, second: Statement, params: Mapping[str, Any],
                        *, binary: bool = False, plain: bool = False) -> tuple[Any, list[Any]]:
        """*first*'s value and *second*'s rows (a list's total and its page)."""
        counted, rows = self.batch([(first, params), (second, params)], binary=binary,
                                   plain=plain)
        return (counted[0][0] if counted else None), rows


class SessionReads(_Reads):
    """The statements through the ORM session (its transaction, its connection)."""

    def __init__(self, session: DbSession) -> None:
        self.session = session

    def batch(self, statements: Batch, *, binary: bool = False,
              plain: bool = False) -> list[list[Any]]:
        # Session.execute, not its connection's: it flushes the session's pending
        # changes first, so a lookup inside a transaction sees what it holds.
        batches = []
        for statement, params in statements:  # each one's rows read before the next runs
            result = self.session.execute(statement, dict(params))
            batches.append([tuple(row) for row in result] if plain else list(result))
        return batches


class _Compiled:
    """A statement compiled once for psycopg's raw cursor: PostgreSQL's own ``$n``
    placeholders (SQLAlchemy's ``numeric_dollar`` style, :func:`_positional`) as bytes,
    and the parameters' names in their order. psycopg then sends the text as it is;
    with ``%(name)s`` placeholders it converted the text on every execution - from a
    cache for a short statement, parsed again for one past 4 kB or 50 parameters (a
    resolve's UNION of three readings is 5 kB: ~90 us a request)."""

    __slots__ = ("statement", "sql", "names", "compiled", "processors", "slots")

    def __init__(self, statement: Statement, engine: Engine) -> None:
        compiled = statement.compile(dialect=_positional(engine.dialect))
        if compiled.has_out_parameters or "POSTCOMPILE" in compiled.string:
            raise ValueError("a statement for the fast reads has no expanding parameters")
        self.statement = statement  # keeps id(statement) unique while cached
        self.compiled = compiled
        self.sql = compiled.string.encode()
        self.names = tuple(compiled.positiontup or ())
        self.processors = compiled._bind_processors
        self.slots = _slots(compiled, self.names)

    def parameters(self, params: Mapping[str, Any]) -> list[Any]:
        if self.slots is not None:  # each value by its position, as construct_params finds it
            values = []
            for key, name, default, process in self.slots:
                if key in params:
                    value = params[key]
                elif name in params:
                    value = params[name]
                elif default is not _REQUIRED:
                    value = default
                else:  # SQLAlchemy's error for it
                    return self._constructed(params)
                values.append(value if process is None or value is None else process(value))
            return values
        return self._constructed(params)

    def _constructed(self, params: Mapping[str, Any]) -> list[Any]:
        values = self.compiled.construct_params(dict(params), _check=True)
        for name, process in self.processors.items():
            if name in values and values[name] is not None:
                values[name] = process(values[name])  # type: ignore[operator]
        return [values[name] for name in self.names]


_REQUIRED = object()


_Slot = tuple[str, str, Any, Callable[[Any], Any] | None]


def _slots(compiled: Any, names: tuple[str, ...]) -> tuple[_Slot, ...] | None:
    """Per position: (the bind's key, its name, its own value or _REQUIRED, the type's
    processor or None) - what ``construct_params`` looks up for it on every execution
    (~13 us for a list's page; ~15 us more for the codes of a type-ahead's stamps, an
    ARRAY whose processor copies the list) and :meth:`_Compiled._constructed` applies
    -, or None where it does more: values computed at execution (a callable), names
    escaped for the placeholders. A list of texts is sent as its array literal
    (:func:`array_text`)."""
    if compiled.escaped_bind_names:
        return None
    processors = compiled._bind_processors
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    slots = []
    for name in names:
        bind = by_name.get(name)
        if bind is None or bind.callable is not None:
            return None
        process = processors.get(name)
        if isinstance(bind.type, ARRAY) and isinstance(bind.type.item_type, String):
            process = array_text
        slots.append((bind.key, name, _REQUIRED if bind.required else bind.value, process))
    return tuple(slots)


_DIGITS_LIST = re.compile(r"[0-9]+(?:,[0-9]+)*")


def array_text(values: Iterable[str | None]) -> str:
    """A list of texts as PostgreSQL's array literal (``{a,b}``), for a ``$n::VARCHAR[]``
    parameter: psycopg dumps a list element by element in Python (a type-ahead's 20 codes
    ~55 us of the client's CPU a statement), a text as it is. Digits go bare (codes);
    anything else each element quoted, ``"`` and ``\\`` escaped, None as NULL."""
    items = [item if item is None or type(item) is str else str(item) for item in values]
    joined = ",".join(item if item is not None else "NULL" for item in items)
    if _DIGITS_LIST.fullmatch(joined):
        return "{" + joined + "}"
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' if item is not None
              else "NULL" for item in items)
    return "{" + ",".join(quoted) + "}"


def _positional(dialect: Dialect) -> Dialect:
    """*dialect* (as its engine initialised it: server version, features) compiling
    ``$n`` placeholders: a copy with the ``numeric_dollar`` parameter style, made once
    and kept on *dialect* (gone with its engine)."""
    positional: Dialect | None = dialect.__dict__.get(_POSITIONAL)
    if positional is None:
        positional = copy.copy(dialect)
        positional.paramstyle = "numeric_dollar"
        positional.positional = True
        positional.identifier_preparer = positional.preparer(positional)
        positional = dialect.__dict__.setdefault(_POSITIONAL, positional)
    return positional


_POSITIONAL = "_sor_positional"


class DirectReads(_Reads):
    """The statements on the thread's own autocommit psycopg connection (PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def on_standby(self) -> bool:
        """Whether these reads go to a hot standby (``sorregistry.replicas``)."""
        return replicas.on_standby(self.engine)

    def _compiled(self, statement: Statement) -> _Compiled:
        key = (id(self.engine.dialect), id(statement))
        compiled = _STATEMENTS.get(key)
        if compiled is None:
            if len(_STATEMENTS) >= _MAX_STATEMENTS:  # statements are built once per shape;
                _STATEMENTS.clear()  # this bounds a caller that builds them per request
            compiled = _STATEMENTS.setdefault(key, _Compiled(statement, self.engine))
        return compiled

    def batch(self, statements: Batch, *, binary: bool = False,
              plain: bool = False) -> list[list[Any]]:
        """Each statement's rows. Several go together in one round trip (libpq's pipeline
        mode), run in order in one implicit transaction (an error in one aborts those
        after it; the connection recovers); they read, so that changes nothing else.
        A standby out of reach leaves the request to the primary (``replicas``)."""
        try:
            return self._batch(statements, binary, plain)
        except _operational_errors(self.engine):
            primary = replicas.standby_failed(self.engine)
            if primary is None:
                raise
            self.engine = primary
            return self._batch(statements, binary, plain)

    def _batch(self, statements: Batch, binary: bool, plain: bool) -> list[list[Any]]:
        prepared = []
        for statement, params in statements:
            compiled = self._compiled(statement)
            prepared.append((compiled.sql, compiled.parameters(params)))
        for attempt in (1, 2):
            connection = _connection(self.engine, fresh=attempt == 2)
            try:
                if len(prepared) == 1:  # most lookups: one statement, the thread's cursor
                    cursor = _cursor(connection, plain)
                    cursor.execute(*prepared[0], binary=binary)
                    return [cursor.fetchall()]
                cursors = [psycopg.RawCursor(connection, row_factory=_ROW_FACTORY[plain])
                           for _ in prepared]
                try:
                    with connection.pipeline():
                        for cursor, (sql, values) in zip(cursors, prepared, strict=True):
                            cursor.execute(sql, values, binary=binary)
                    return [cursor.fetchall() for cursor in cursors]
                finally:
                    for cursor in cursors:
                        cursor.close()
            except _operational_errors(self.engine):
                if attempt == 2 or not (connection.closed or connection.broken):
                    raise  # a statement that failed (timeout, deadlock...): not retried
                _forget(connection)  # the connection broke (server restarted?): once more
        raise AssertionError("unreachable")


Reads = SessionReads | DirectReads

_STATEMENTS: dict[tuple[int, int], _Compiled] = {}
_MAX_STATEMENTS = 5000


@functools.lru_cache(maxsize=512)
def _row_type(names: tuple[bytes, ...]) -> type[tuple[Any, ...]]:
    return namedtuple("Row", [name.decode() for name in names], rename=True)


def named_rows(cursor: psycopg.Cursor[Any]) -> RowMaker[Any]:
    """psycopg's ``namedtuple_row``, each row made in C: that returns the class's
    ``_make``, a Python function called for every row (~1 us: half of fetching the 500
    rows of a Mit CVR page by key); ``tuple.__new__`` of the same class does it alone."""
    result = cursor.pgresult
    if result is None or not result.nfields:
        return tuple_row(cursor)
    names = tuple(result.fname(i) or b"?" for i in range(result.nfields))
    return cast("RowMaker[Any]", functools.partial(tuple.__new__, _row_type(names)))


_ROW_FACTORY: dict[bool, Callable[[psycopg.Cursor[Any]], RowMaker[Any]]] = {
    False: named_rows, True: tuple_row}


def _operational_errors(engine: Engine) -> type[Exception]:
    return engine.dialect.loaded_dbapi.OperationalError


def _direct_engine(session: DbSession) -> Engine | None:
    """The engine the fast reads of *session* use when they can serve it: PostgreSQL,
    bound to an engine (not to one connection), switched on. In a request that is the
    engine ``sorregistry.replicas.route`` chose: a hot standby, or the primary."""
    if not has_request_context():
        return _postgresql_engine(session)
    # Asked a few times a request (allow, then each reads()): the session's bind and the
    # setting are looked up once (some 8 microseconds each time otherwise).
    environ = request.environ
    if _PRIMARY not in environ:
        environ[_PRIMARY] = _request_primary(session)
    primary: Engine | None = environ[_PRIMARY]
    return None if primary is None else replicas.route(primary)


def _request_primary(session: DbSession) -> Engine | None:
    """The engine a request's direct reads start from. For a request that has made no
    session (a lookup) it is the app's default engine, the same for every request: kept
    on the app, found once."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if made_session(session) is not None:
        return _fast_reads_engine(app, session)
    if _APP_PRIMARY not in app.extensions:
        app.extensions[_APP_PRIMARY] = _fast_reads_engine(app, session)
    kept: Engine | None = app.extensions[_APP_PRIMARY]
    return kept


def _fast_reads_engine(app: Flask, session: DbSession) -> Engine | None:
    return _postgresql_engine(session) if app.config.get("FAST_READS", True) else None


def _postgresql_engine(session: DbSession) -> Engine | None:
    bind = session_bind(session)
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        return bind
    return None


def allow(session: DbSession) -> bool:
    """Let this request's lookups read directly (see the module's text), if they can:
    *session* has not begun a transaction (so holds no change of its own). A route
    calls it before it computes an answer; returns whether they will."""
    allowed = _untouched(session) and _direct_engine(session) is not None
    request.environ[_FLAG] = allowed  # the request's own (g can outlive a request)
    return allowed


def _untouched(session: DbSession) -> bool:
    """No transaction begun and nothing pending: nothing of its own a direct read would
    miss (a request that has made no session yet has none)."""
    plain = made_session(session)
    if plain is None:
        return True
    # Only objects the session holds can be dirty or deleted: with none (a lookup's
    # session, never used) those two are not asked (each makes a set of its objects).
    return not (plain.in_transaction() or plain.new
                or (plain.identity_map and (plain.dirty or plain.deleted)))


def reads(session: DbSession) -> Reads:
    """How this request's lookups read: directly when :func:`allow` let them and *session*
    is still untouched, else through *session*."""
    if has_request_context():
        environ = request.environ
        if environ.get(_FLAG) and _untouched(session):
            # allow() found the engine they start from (_direct_engine): the one routed to
            # now, as a read that failed on a standby may have changed it.
            primary: Engine | None = environ.get(_PRIMARY)
            if primary is not None:
                return DirectReads(replicas.route(primary))
    return SessionReads(session)


def direct(session: DbSession) -> DirectReads | None:
    """Reads on the thread's own connection for *session*'s database, when it is
    PostgreSQL bound to an engine; None otherwise. For reads that want no transaction
    whatever the request's state (the register version, read before any answer)."""
    engine = _direct_engine(session)
    return DirectReads(engine) if engine is not None else None


# --- the connections ------------------------------------------------------------------------

_local = threading.local()
_keys: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
# Every thread's, to close them at exit. Weak: a thread that ends drops its connection
# (in its threading.local) and the driver closes it when collected; a server that
# makes a thread per request leaks nothing.
_all: weakref.WeakSet[Connection] = weakref.WeakSet()
_all_lock = threading.Lock()


def connect_autocommit(engine: Engine | None) -> Connection:
    """A new autocommit connection to *engine*'s database, made the engine's own way (its
    URL, connect_args, do_connect hooks) but outside its pool: for a thread that keeps
    it (a LISTEN). Raises the driver's OperationalError when *engine* is gone (None)."""
    if engine is None:
        raise psycopg.OperationalError("the app's engine is gone")
    creator = cast("Callable[[], Connection]", engine.pool._creator)
    connection = creator()
    connection.autocommit = True
    return connection


def _connection(engine: Engine, fresh: bool = False) -> Connection:
    """The calling thread's connection to *engine*'s database (made on first use)."""
    connections: dict[str, Connection] = _local.__dict__.setdefault("connections", {})
    key = _keys.get(engine)
    if key is None:  # the database's URL (rendering it costs more than the lookup's Python)
        key = _keys.setdefault(engine, engine.url.render_as_string(hide_password=False))
    connection = connections.get(key)
    if connection is not None and not fresh and not connection.closed:
        return connection
    if connection is not None:
        _forget(connection)
    # The engine's own way to connect: its URL, connect_args and do_connect hooks.
    creator = cast("Callable[[], Connection]", engine.pool._creator)
    connection = creator()
    connection.autocommit = True
    set_json_loads(orjson.loads, connection)
    prepare_postgresql_connection(connection)
    connections[key] = connection
    with _all_lock:
        _all.add(connection)
    return connection


def _cursor(connection: Connection, plain: bool) -> psycopg.RawCursor[Any]:
    """The calling thread's cursor on its *connection* making named (or *plain*) rows,
    made once: a cursor made for each statement set up its adapters and loaders again
    (~15 us of a one-statement lookup). It keeps its last result until the next
    statement (one per thread and kind of rows)."""
    cursors: dict[tuple[int, bool], psycopg.RawCursor[Any]] = _local.__dict__.setdefault(
        "cursors", {})
    key = (id(connection), plain)
    cursor = cursors.get(key)
    if cursor is None or cursor.connection is not connection or cursor.closed:
        cursor = cursors[key] = psycopg.RawCursor(connection, row_factory=_ROW_FACTORY[plain])
    return cursor


def _forget(connection: Connection) -> None:
    connections: dict[str, Connection] = _local.__dict__.get("connections", {})
    for key, value in list(connections.items()):
        if value is connection:
            del connections[key]
    cursors = _local.__dict__.get("cursors", {})
    for plain in (False, True):  # its cursors (_cursor)
        cursors.pop((id(connection), plain), None)
    with _all_lock:
        _all.discard(connection)
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone anyway
        pass


def open_connections() -> int:
    """How many threads' connections are open now (a figure of ``sorregistry.metrics``)."""
    with _all_lock:
        return sum(1 for connection in _all if not connection.closed)


@atexit.register
def close_connections() -> None:
    """Close every thread's connection (at exit; tests call it before dropping a database)."""
    with _all_lock:
        connections = list(_all)
        _all.clear()
    for connection in connections:
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass
    _local.__dict__.clear()

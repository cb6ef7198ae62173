"""Rate-limit counters in the database, counted per worker and written in batches.

The ``sordb://`` storage of :mod:`limits` (registered by importing this module) serves
the sliding window counter, the strategy :mod:`sorregistry.ratelimit` uses: a limit of
*L* per *T* seconds counts hits in clock-aligned windows of *T* seconds - one row per
bucket and window in ``rate_limits`` - and a hit is allowed while
``previous window x the share of it still in the last T seconds + this window`` stays
within *L*. Every worker shares the rows, so the limits hold across workers and hosts.

**A database round trip per request would cost the lookups** (they answer in 2-3 ms,
a round trip to PostgreSQL is 0.2-0.5 ms), so a worker counts its own hits in memory
and writes them to the database only now and then: when it has *batch* unwritten hits
of a bucket, when its view of the bucket is older than ``sync_seconds``, and at the
first hit of each window (to learn what the other workers counted). The write is one
statement - an upsert that adds the worker's count and returns the window's total and
the previous window's - on the storage's own connection, never the request's session:
a reading request is not made a writer by it. Refusals write nothing: a client far over
its limit costs no database work at all.

**Large limits are written in the background.** When a limit's batch is the full
*sync_hits* (a limit of at least ``BATCH_SHARE x sync_hits``: the API's 1,200 a minute),
a request never waits for the write: at half a batch (or a stale or new window) it asks
the worker's writer thread to write, and goes on. Only when the writer lags a whole batch
behind does a request write itself, so the overshoot below holds as it is. Before, every
50th request of a client waited one round trip (a few milliseconds with the window's
lock held: the lookups' p98). Small limits (the logins, the anonymous) write in the
request as before: they are exact, and rare.

**Overshoot.** *batch* is ``min(sync_hits, limit // 20)``, at least 1. Once the
database's count reaches the limit, each worker learns it at its next write, at the
latest *batch* hits later; so at most ``workers x batch`` hits beyond the limit are
allowed in a window - with the defaults (batch 50, 2 workers) 100 beyond 1,200 a minute
(8 %); a limit under 40 (the logins) writes every hit and is exact but for the hits
arriving during one round trip.

**Failing open.** If the database cannot be reached, or is locked beyond a short
timeout (SQLite during an import), the worker keeps counting in memory - so each worker
still limits on its own - logs it (once a minute), leaves the database alone for
``PAUSE_SECONDS`` and writes what it counted when the database is back. A request is
never refused, nor held up for long, because the counters cannot be written.

Old windows are deleted as a side job of the writes (``SWEEP_SECONDS``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from limits.storage import SlidingWindowCounterSupport, Storage
from sqlalchemy import create_engine, delete, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from sorregistry.database import configure_engine
from sorregistry.ratelimit_counters import (
    DriverCall,
    RateCounter,
    add_hits_driver_call,
    bucket_name,
)

log = logging.getLogger(__name__)

SCHEME = "sordb"
# A batch is at most this share of the limit (limit // 20: 5 % per worker).
BATCH_SHARE = 20
PAUSE_SECONDS = 5.0
SWEEP_SECONDS = 600.0
LOG_EVERY_SECONDS = 60.0
# How long the storage's own connections wait: a busy database makes it fail open, not slow.
TIMEOUT_MS = 500


@dataclass(slots=True)
class _Window:
    """What this worker knows of one bucket's current window."""

    start: int
    length: int = 1  # seconds
    previous: int = 0  # hits in the window before, as last known
    synced: int = 0  # the database's total at the last write (this worker's hits included)
    pending: int = 0  # hits this worker counted and has not written yet
    synced_at: float = -math.inf  # time.monotonic() of the last write
    # The previous window's unwritten hits (start, hits), written with the next write.
    carried: tuple[int, int] | None = None
    # Hits the background writer is writing now (their window's start, hits).
    in_flight: tuple[int, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        flying = self.in_flight[1] if self.in_flight and self.in_flight[0] == self.start else 0
        return self.synced + self.pending + flying

    @property
    def unwritten(self) -> int:
        """This window's hits the database does not hold yet (in flight included)."""
        return self.count - self.synced


class DatabaseStorage(Storage, SlidingWindowCounterSupport):
    """The ``sordb://`` storage: counters in the service's database (see the module).

    Options (``storage_options`` of the limiter): ``url``, the database's SQLAlchemy URL;
    ``sync_hits`` and ``sync_seconds``, how often a worker writes a bucket's count.
    """

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        url = options.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError("the sordb:// storage needs the database's URL (option url)")
        self.url = url
        self.sync_hits = max(1, int(options.get("sync_hits", 50)))
        self.sync_seconds = float(options.get("sync_seconds", 5.0))
        self._engine: Engine | None = None
        self._engine_pid = 0
        self._windows: dict[str, _Window] = {}
        self._guard = threading.Lock()
        self._paused_until = 0.0
        self._logged_at = -math.inf
        self._swept_at = time.monotonic()
        # The background writer (large limits): the buckets due, and its thread.
        self._due: dict[str, int] = {}  # key -> its window's length
        self._wake = threading.Condition(self._guard)
        self._writer: threading.Thread | None = None
        self._writer_pid = 0
        self._writing = False  # the writer holds buckets taken from _due
        self._stopping = False

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    # --- the sliding window counter -------------------------------------------------------

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int,
                                     amount: int = 1) -> bool:
        """Allow *amount* hits of *key* if the weighted count stays within *limit*."""
        if amount > limit:
            return False
        now = time.time()
        window = self._window(key)
        with window.lock:
            self._roll(window, now, expiry)
            if self._weighted(window, now, expiry) + amount > limit:
                return False  # refusals are not counted, and cost no write
            window.pending += amount
            batch = max(1, min(self.sync_hits, limit // BATCH_SHARE))
            stale = time.monotonic() - window.synced_at >= self.sync_seconds
            if batch < self.sync_hits:  # a small limit: written here, exact
                if window.pending >= batch or stale:
                    self._write(key, window, expiry)
            elif window.unwritten >= batch:  # the writer lags a batch behind
                self._write(key, window, expiry)
            elif window.pending >= (batch + 1) // 2 or (stale and window.in_flight is None):
                self._ask_writer(key, expiry)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """(previous window's hits, its weight left in seconds, this window's hits, seconds
        until this window's count stops mattering), as this worker knows them."""
        now = time.time()
        window = self._window(key)
        with window.lock:
            self._roll(window, now, expiry)
            previous_ttl = self._previous_ttl(now, expiry) if window.previous else 0.0
            current_ttl = (1 - (now / expiry) % 1) * expiry + expiry
            return window.previous, previous_ttl, window.count, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        self.clear(key)

    # --- the fixed-window interface, answered from the same counters ----------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count *amount* hits of *key* in the current window; this worker's estimate of the
        window's total (the fixed-window strategy's question)."""
        window = self._window(key)
        with window.lock:
            self._roll(window, time.time(), expiry)
            window.pending += amount
            if (window.pending >= self.sync_hits
                    or time.monotonic() - window.synced_at >= self.sync_seconds):
                self._write(key, window, expiry)
            return window.count

    def get(self, key: str) -> int:
        window = self._windows.get(key)
        return 0 if window is None else window.count

    def get_expiry(self, key: str) -> float:
        """When the current window of *key* ends (seconds since the epoch)."""
        window = self._windows.get(key)
        return time.time() if window is None else float(window.start + window.length)

    # --- housekeeping ---------------------------------------------------------------------

    def check(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def clear(self, key: str) -> None:
        """Forget *key*'s counts, here and in the database."""
        with self._guard:
            self._windows.pop(key, None)
        with self.engine.begin() as connection:
            connection.execute(delete(RateCounter).where(RateCounter.bucket == bucket_name(key)))

    def reset(self) -> int | None:
        """Forget every count; how many rows the database held."""
        with self._guard:
            self._windows.clear()
        with self.engine.begin() as connection:
            return connection.execute(delete(RateCounter)).rowcount

    def close(self) -> None:
        """Stop the writer thread and close the storage's connections (a test's end; a
        worker's exit closes them)."""
        writer = self._writer
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout=5)
        self._writer = None
        with self._guard:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @property
    def engine(self) -> Engine:
        """The storage's own engine, made in the process that uses it (after a fork)."""
        with self._guard:
            if self._engine is None or self._engine_pid != os.getpid():
                self._engine = _own_engine(self.url)
                self._engine_pid = os.getpid()
            return self._engine

    # --- inside ---------------------------------------------------------------------------

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            with self._guard:
                window = self._windows.setdefault(key, _Window(start=0))
        return window

    def _roll(self, window: _Window, now: float, expiry: int) -> None:
        """Move *window* on to the window *now* falls in (call with its lock held)."""
        start = int(now // expiry) * expiry
        if window.start == start:
            return
        if window.start == start - expiry:
            window.previous = window.count
            if window.pending:
                window.carried = (window.start, window.pending)
        else:
            window.previous, window.carried = 0, None
        window.start, window.length, window.synced, window.pending = start, expiry, 0, 0
        window.synced_at = -math.inf  # the first hit of a window asks the database

    @staticmethod
    def _previous_ttl(now: float, expiry: int) -> float:
        return (1 - ((now - expiry) / expiry) % 1) * expiry

    def _weighted(self, window: _Window, now: float, expiry: int) -> int:
        previous = window.previous * self._previous_ttl(now, expiry) / expiry
        return math.floor(previous + window.count)

    def _write(self, key: str, window: _Window, expiry: int) -> None:
        """Add this worker's unwritten hits to the database and learn the totals (with the
        window's lock held: the bucket's other requests in this worker wait one round
        trip). Fails open: on any database error the hits stay counted here."""
        amount, carried = window.pending, window.carried
        written = self._add(key, window.start, expiry, amount, carried)
        if written is None:
            return
        window.pending -= amount
        window.carried = None
        self._learn(window, *written)

    def _add(self, key: str, start: int, expiry: int, amount: int,
             carried: tuple[int, int] | None) -> tuple[int, int | None] | None:
        """Add *amount* hits to *key*'s window at *start* (and the *carried* hits of the
        one before) in one short transaction: (the window's total, the previous window's),
        or None when the database cannot be written (paused, or failed: logged)."""
        if time.monotonic() < self._paused_until:
            return None
        engine = self.engine
        dialect = engine.dialect
        calls = [add_hits_driver_call(dialect, key, carried[0], expiry, carried[1])
                 ] if carried is not None else []
        calls.append(add_hits_driver_call(dialect, key, start, expiry, amount))
        # The driver's own errors too: a statement on a driver connection raises them as they are.
        failures: tuple[type[Exception], ...] = (SQLAlchemyError, dialect.loaded_dbapi.Error)
        try:
            if dialect.name == "postgresql" and not self._sweep_due():
                total, previous = self._add_directly(engine, calls)
            else:
                with engine.begin() as connection:
                    for call in calls[:-1]:
                        connection.exec_driver_sql(*call)
                    total, previous = connection.exec_driver_sql(*calls[-1]).one()
                    self._sweep(connection)
        except failures as exc:
            self._fail(exc)
            return None
        return int(total), None if previous is None else int(previous)

    @staticmethod
    def _add_directly(engine: Engine, calls: list[DriverCall]) -> tuple[Any, Any]:
        """The statements on a pooled driver connection (PostgreSQL, autocommit: each
        statement commits): a third of the CPU time of the same through SQLAlchemy's
        Connection (~100 against ~280 microseconds a write, measured), which the writer
        thread otherwise takes from the requests of its worker. A connection that failed
        is dropped from the pool."""
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                for sql, parameters in calls:
                    cursor.execute(sql, parameters)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except BaseException:
            connection.invalidate()
            raise
        finally:
            connection.close()
        if row is None:
            raise AssertionError("the upsert returns the window's totals")
        return row[0], row[1]

    @staticmethod
    def _learn(window: _Window, total: int, previous: int | None) -> None:
        """What a write of this window told (with its lock held). Totals only grow within a
        window; a background write may answer after a newer one did."""
        window.synced = max(window.synced, total)
        if previous is not None:
            window.previous = max(window.previous, previous)
        window.synced_at = time.monotonic()

    # --- the background writer ------------------------------------------------------------

    def _ask_writer(self, key: str, expiry: int) -> None:
        """Have the writer thread write *key*'s hits soon (the request goes on)."""
        with self._wake:
            if self._writer is None or self._writer_pid != os.getpid():
                self._writer = threading.Thread(target=self._write_in_background,
                                                name="sor-ratelimit-writer", daemon=True)
                self._writer_pid = os.getpid()
                self._stopping = False
                self._writer.start()
            self._due[key] = expiry
            self._wake.notify()

    def _write_in_background(self) -> None:
        while True:
            with self._wake:
                while not self._due and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                due, self._due, self._writing = self._due, {}, True
            try:
                for key, expiry in due.items():
                    self._write_due(key, expiry)
            finally:
                with self._wake:
                    self._writing = False
                    self._wake.notify_all()  # flush() waits for it

    def _write_due(self, key: str, expiry: int) -> None:
        """Write what *key*'s window holds unwritten, without its lock held during the
        round trip: requests of the bucket go on counting meanwhile."""
        window = self._windows.get(key)
        if window is None:
            return
        with window.lock:
            if window.in_flight is not None:
                return  # already being written
            start, amount, carried = window.start, window.pending, window.carried
            window.pending, window.carried = 0, None
            window.in_flight = (start, amount)
        written = self._add(key, start, expiry, amount, carried)
        with window.lock:
            window.in_flight = None
            if window.start == start:
                if written is None:  # not written: counted here still, written later
                    window.pending += amount
                    window.carried = window.carried or carried
                else:
                    self._learn(window, *written)
            elif written is None and window.carried is None and amount:
                window.carried = (start, amount)  # the window rolled on meanwhile
            elif written is not None and window.start == start + expiry:
                window.previous = max(window.previous, written[0])

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the writer thread has written what it was asked to (a test's or a
        worker's end); whether it did within *timeout* seconds."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._due and not self._writing,
                                       timeout)

    def _sweep_due(self) -> bool:
        return time.monotonic() - self._swept_at >= SWEEP_SECONDS

    def _sweep(self, connection: Connection) -> None:
        """Now and then: delete the windows that no longer count, here and there."""
        if not self._sweep_due():
            return
        self._swept_at = time.monotonic()
        now = int(time.time())
        connection.execute(delete(RateCounter).where(RateCounter.expires_at < now))
        with self._guard:
            for key in [key for key, window in self._windows.items()
                        if window.start + 2 * window.length < now]:
                del self._windows[key]

    def _fail(self, error: Exception) -> None:
        self._paused_until = time.monotonic() + PAUSE_SECONDS
        if time.monotonic() - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = time.monotonic()
            log.warning("rate limits: the counters cannot be written (%s); each worker limits "
                        "on its own counts for now", str(error).strip().splitlines()[0])


def _own_engine(url: str) -> Engine:
    """An engine apart from the app's: a few connections, short timeouts; autocommit on
    PostgreSQL (one statement, one round trip), a short transaction on SQLite. No ping
    before each write (a round trip more): a connection that died with its server fails
    one write, which pauses the writes for PAUSE_SECONDS (failing open, as above), and
    SQLAlchemy drops the pool's dead connections."""
    if url.startswith("postgresql"):
        return create_engine(
            url, pool_size=4, max_overflow=4, pool_timeout=TIMEOUT_MS / 1000,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 2,
                          "options": f"-c statement_timeout={TIMEOUT_MS} "
                                     f"-c lock_timeout={TIMEOUT_MS}"})
    engine = create_engine(url)
    configure_engine(engine)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _short_wait(dbapi_connection: Any, _record: Any) -> None:
            # After configure_engine's own listener: wait briefly for the write lock.
            dbapi_connection.execute(f"PRAGMA busy_timeout = {TIMEOUT_MS}")
    return engine

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

import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from limits.storage import SlidingWindowCounterSupport, Storage
from sqlalchemy import BigInteger, Index, String, create_engine, delete, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, aliased, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

from sorregistry.database import DbSession, configure_engine
from sorregistry.models import Base

log = logging.getLogger(__name__)

SCHEME = "sordb"
# A batch is at most this share of the limit (limit // 20: 5 % per worker).
BATCH_SHARE = 20
PAUSE_SECONDS = 5.0
SWEEP_SECONDS = 600.0
LOG_EVERY_SECONDS = 60.0
# Buckets longer than this (a 254-character email in a login key) are stored as a digest.
BUCKET_LENGTH = 200
# How long the storage's own connections wait: a busy database makes it fail open, not slow.
TIMEOUT_MS = 500


class RateCounter(Base):
    """Hits of one bucket (a limit and whom it counts) in one clock-aligned window."""

    __tablename__ = "rate_limits"
    __table_args__ = (Index("ix_rate_limits_expires_at", "expires_at"),)

    bucket: Mapped[str] = mapped_column(String(BUCKET_LENGTH), primary_key=True)
    # The window's start, in seconds since the epoch (a multiple of its length).
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                              autoincrement=False)
    hits: Mapped[int] = mapped_column(BigInteger)
    # When the row is of no more use (the end of the window after it), epoch seconds.
    expires_at: Mapped[int] = mapped_column(BigInteger)


def bucket_name(key: str) -> str:
    """*key* as stored: itself, or a digest when it is too long for the column."""
    if len(key) <= BUCKET_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def add_hits_statement(dialect: str, key: str, window_start: int, expiry: int,
                       amount: int) -> ReturningInsert[int, int | None]:
    """The upsert that adds *amount* hits to a window and returns its total and the
    previous window's (None when that has no row)."""
    bucket = bucket_name(key)
    previous = aliased(RateCounter, name="previous")
    previous_hits = (select(previous.hits)
                     .where(previous.bucket == bucket,
                            previous.window_start == window_start - expiry)
                     .scalar_subquery())
    if dialect == "postgresql":
        statement: postgresql.Insert | sqlite.Insert = postgresql.insert(RateCounter)
    elif dialect == "sqlite":
        statement = sqlite.insert(RateCounter)
    else:
        raise ValueError(f"rate limits in the database need PostgreSQL or SQLite, not {dialect}")
    statement = statement.values(bucket=bucket, window_start=window_start, hits=amount,
                                 expires_at=window_start + 2 * expiry)
    upsert = statement.on_conflict_do_update(
        index_elements=[RateCounter.bucket, RateCounter.window_start],
        set_={"hits": RateCounter.hits + statement.excluded.hits})
    returning: ReturningInsert[int, int | None] = upsert.returning(
        RateCounter.hits, previous_hits)
    return returning


def add_hits(session: DbSession, key: str, window_start: int,
             expiry: int, amount: int = 1) -> int:
    """Add *amount* hits to *key*'s window in *session*'s transaction; the window's total.

    For counts that must commit or roll back with the caller's work (the mail intake's
    per-sender count); the request path uses :class:`DatabaseStorage`.
    """
    dialect = session.get_bind().dialect.name
    total, _previous = session.execute(add_hits_statement(dialect, key, window_start, expiry,
                                                          amount)).one()
    return total


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
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        return self.synced + self.pending


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
            if (window.pending >= batch
                    or time.monotonic() - window.synced_at >= self.sync_seconds):
                self._write(key, window, expiry)
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
        """Close the storage's connections (a test's end; a worker's exit closes them)."""
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
        if time.monotonic() < self._paused_until:
            return
        amount, carried = window.pending, window.carried
        try:
            with self.engine.begin() as connection:
                if carried is not None:
                    connection.execute(add_hits_statement(
                        connection.dialect.name, key, carried[0], expiry, carried[1]))
                total, previous = connection.execute(add_hits_statement(
                    connection.dialect.name, key, window.start, expiry, amount)).one()
                self._sweep(connection)
        except SQLAlchemyError as exc:
            self._fail(exc)
            return
        window.pending -= amount
        window.carried = None
        window.synced = int(total)
        if previous is not None:
            window.previous = max(window.previous, int(previous))
        window.synced_at = time.monotonic()

    def _sweep(self, connection: Connection) -> None:
        """Now and then: delete the windows that no longer count, here and there."""
        if time.monotonic() - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = time.monotonic()
        now = int(time.time())
        connection.execute(delete(RateCounter).where(RateCounter.expires_at < now))
        with self._guard:
            for key in [key for key, window in self._windows.items()
                        if window.start + 2 * window.length < now]:
                del self._windows[key]

    def _fail(self, error: SQLAlchemyError) -> None:
        self._paused_until = time.monotonic() + PAUSE_SECONDS
        if time.monotonic() - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = time.monotonic()
            log.warning("rate limits: the counters cannot be written (%s); each worker limits "
                        "on its own counts for now", str(error).strip().splitlines()[0])


def _own_engine(url: str) -> Engine:
    """An engine apart from the app's: a few connections, short timeouts; autocommit on
    PostgreSQL (one statement, one round trip), a short transaction on SQLite."""
    if url.startswith("postgresql"):
        return create_engine(
            url, pool_size=4, max_overflow=4, pool_timeout=TIMEOUT_MS / 1000,
            pool_pre_ping=True, isolation_level="AUTOCOMMIT",
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

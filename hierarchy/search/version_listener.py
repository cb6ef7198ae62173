"""The register version kept in memory per worker, told by the database: no round trip
per request.

Every answer the lookups cache is filed under the register version
(:mod:`hierarchy.search.versions`), so each request used to read it - one round trip to
PostgreSQL, about a tenth of a cached lookup's time and a fifth of the service's own
work on a computed one. On PostgreSQL every commit that moves the version sends
``NOTIFY sor_feed`` (``hierarchy.changes``), delivered at COMMIT; a thread of each worker
process ``LISTEN``\\ s on it with a connection of its own and reads the version again at
each notification, and once a second besides (a change made outside the service - a
restore, a hand-made UPDATE - is seen within that second). A request takes the version
from memory when:

- the listener is connected and has read the version after its ``LISTEN`` (so nothing
  committed after that read can pass unnoticed): the version it holds was committed
  before the request begins, and what the request then reads is of that version or
  newer - the same rule as a version read in the request's own transaction;
- the request reads the primary (a lagging standby's data must be filed under the
  standby's own version: :class:`~hierarchy.search.versions.RegisterDataVersion` reads
  that one as before);
- no transaction of this process has taken a newer version that the listener has not
  yet seen (``hierarchy.changes.VERSION_BUMPED`` tells it before the COMMIT): a client's
  next request to the worker that approved its application sees the approval. Another
  worker learns of it within the notification's delivery, a millisecond or so on one
  host; a client that must read its own write across workers sends ``X-SOR-LSN``
  (:mod:`sorregistry.replicas`), which reads the version from the database.

Otherwise - SQLite, a lost connection, a version held back - the request reads the
version from the database as before. The thread starts with the first request and ends
a minute after the last one; on a lost connection it reconnects and reads again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from hierarchy.changes import FEED_CHANNEL, VERSION_BUMPED
from sorregistry import reads
from sorregistry.logs import Outage

LOG = logging.getLogger(__name__)
REFRESH_SECONDS = 1.0  # the version read again without a notification
LINGER_SECONDS = 60.0  # how long the thread outlives the last request that asked
HOLD_SECONDS = 2.0  # how long a version this process took may be awaited (a rollback)
_VERSION_SQL = "SELECT version, stamp FROM register_version WHERE name = 'register'"

Version = tuple[int, str]


class VersionListener:
    """The primary's register version for one engine in one process (see the module)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self._lock = threading.Lock()
        self._version: Version | None = None  # None: not known now (use the database)
        self._thread: threading.Thread | None = None
        self._used_at = time.monotonic()
        self._held_back = 0  # a version number this process took and the thread awaits
        self._held_until = 0.0
        self._stop = threading.Event()

    def current(self) -> Version | None:
        """The version, or None when the request must read it from the database."""
        now = time.monotonic()
        self._used_at = now
        if self._thread is None:
            self._start()
            return None
        version = self._version
        if version is None or (version[0] < self._held_back and now < self._held_until):
            return None
        return version

    def took(self, number: int) -> None:
        """A transaction of this process takes version *number* (not yet committed)."""
        with self._lock:
            self._held_back = max(self._held_back, number)
            self._held_until = time.monotonic() + HOLD_SECONDS

    def close(self, wait: float = REFRESH_SECONDS + 1) -> None:
        """End the thread (a test's end, an app disposed), waiting up to *wait* seconds for
        it; the next use starts it again. A thread still busy then (a connection attempt
        takes up to its connect_timeout) ends when the attempt does: the stop stays set
        until a new thread starts."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(wait)

    def _wanted(self) -> bool:
        return (not self._stop.is_set() and self._engine() is not None
                and time.monotonic() - self._used_at < LINGER_SECONDS)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._listen, daemon=True,
                                                name="sor-version-listener")
                self._thread.start()

    def _connect(self) -> psycopg.Connection[Any]:
        return reads.connect_autocommit(self._engine())

    def _read(self, connection: psycopg.Connection[Any]) -> None:
        row = connection.execute(_VERSION_SQL).fetchone()
        self._version = (int(row[0]), str(row[1])) if row else None

    def _listen(self) -> None:
        backoff = 0.1
        outage = Outage(LOG, "the register version's listener")  # requests read it meanwhile
        while self._wanted():
            try:
                connection = self._connect()
            except psycopg.Error as error:
                outage.failed(error)
            else:
                try:
                    connection.execute(f"LISTEN {FEED_CHANNEL}")
                    self._read(connection)
                    outage.ended()  # connected and listening: retries start quick again
                    backoff = 0.1
                    while self._wanted():
                        for _note in connection.notifies(timeout=REFRESH_SECONDS,
                                                         stop_after=1):
                            pass  # several at once: one read of the version serves them all
                        self._read(connection)
                except psycopg.Error as error:
                    outage.failed(error, "lost its connection")
                finally:
                    self._version = None
                    connection.close()
            # Every failure waits: a server that takes connections but refuses the LISTEN
            # (a standby in recovery) is not asked again at once, in a loop.
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
        with self._lock:
            self._thread = None


_LISTENERS: weakref.WeakKeyDictionary[Engine, VersionListener] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def _forked() -> None:
    """In a forked child (a gunicorn worker): none of the parent's listeners - their
    threads did not come along - and a lock no thread of the parent may hold."""
    global _GUARD  # noqa: PLW0603 - the child's own
    _GUARD = threading.Lock()
    _LISTENERS.clear()


os.register_at_fork(after_in_child=_forked)


def listener_for(engine: Engine) -> VersionListener:
    """This process's listener for *engine*'s database (made on first use; a forked
    worker makes its own: threads do not survive a fork). Asked on every lookup: the
    one found is returned without the lock."""
    listener = _LISTENERS.get(engine)
    if listener is not None:
        return listener
    with _GUARD:
        listener = _LISTENERS.get(engine)
        if listener is None:
            listener = _LISTENERS[engine] = VersionListener(engine)
        return listener


def close_all() -> None:
    """End every listener's thread of this process (tests; a worker's exit needs nothing:
    the threads are daemons)."""
    with _GUARD:
        listeners = list(_LISTENERS.values())
    for listener in listeners:
        listener.close()


def _took(number: int) -> None:
    """Hold back every listener of this process until it has seen *number*."""
    with _GUARD:  # a worker thread may be adding a listener meanwhile
        listeners = list(_LISTENERS.values())
    for listener in listeners:
        listener.took(number)


VERSION_BUMPED.append(_took)

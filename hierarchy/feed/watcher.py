"""Waking long-polling readers when the feed moves: one watcher per worker process and
database.

A request that asks the feed to wait (``wait=``) and finds nothing new waits on the
watcher's ``threading.Condition`` until the register's last position passes the one
it read, or its time is up - holding no database connection or transaction meanwhile
(the route ends its transaction first). The watcher learns of new positions:

- **PostgreSQL**: a thread of its own ``LISTEN``\\ s on ``sor_feed`` (one connection per
  worker process, however many requests wait); every commit that takes positions sends
  ``NOTIFY sor_feed, '<last position>'`` as it commits (``hierarchy.changes``), so a
  waiting request wakes within a round trip of the commit. The thread starts with the
  first waiting request and ends a minute after the last one (a mirror polling again
  finds it running); on a lost connection it reconnects and reads the position again,
  so nothing notified meanwhile is missed.
- **SQLite** (no notifications): the thread reads ``register_version.last_position``
  every 50 ms, only while a request waits.

The position is read after ``LISTEN`` (and on SQLite at once): a commit between a
request's read and its wait is seen either way, and the request reads its page again.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from hierarchy.changes import FEED_CHANNEL
from hierarchy.feed.reading import LAST_POSITION
from sorregistry import reads
from sorregistry.logs import Outage

LOG = logging.getLogger(__name__)
POLL_SECONDS = 0.05  # SQLite: how often the position is read while someone waits
LINGER_SECONDS = 60.0  # PostgreSQL: how long the LISTEN connection outlives its waiters
_LAST_POSITION_SQL = "SELECT last_position FROM register_version WHERE name = 'register'"


class Watcher:
    """Knows the register's last feed position while requests wait for it to move."""

    def __init__(self, engine: Engine) -> None:
        # Weak: the process's map of watchers must not keep a disposed app's engine alive.
        self._engine = weakref.ref(engine)
        self.postgres = engine.dialect.name == "postgresql"
        self._condition = threading.Condition()
        self._latest: int | None = None  # None: not known (no thread running)
        self._waiters = 0
        self._thread: threading.Thread | None = None

    def wait_beyond(self, position: int, timeout: float) -> bool:
        """Wait until the last position passes *position* (True), or *timeout* seconds."""
        with self._condition:
            self._waiters += 1
            self._start()
            try:
                return self._condition.wait_for(
                    lambda: self._latest is not None and self._latest > position, timeout)
            finally:
                self._waiters -= 1

    @property
    def running(self) -> bool:
        with self._condition:
            return self._thread is not None

    def _start(self) -> None:
        if self._thread is None:
            run = self._listen if self.postgres else self._poll
            self._thread = threading.Thread(target=run, name="sor-feed-watcher", daemon=True)
            self._thread.start()

    def _publish(self, last: int) -> None:
        with self._condition:
            if self._latest is None or last > self._latest:
                self._latest = last
                self._condition.notify_all()

    def _stop_if(self, stop: bool) -> bool:
        """Under the lock: if *stop* (and no one waits), forget the position and end."""
        with self._condition:
            if stop and self._waiters == 0:
                self._thread = None
                self._latest = None
                return True
            return False

    # --- SQLite -------------------------------------------------------------------------

    def _poll(self) -> None:
        outage = Outage(LOG, "the feed's watcher")
        while not self._stop_if(True):
            engine = self._engine()
            if engine is None:
                return
            try:
                with engine.connect() as connection:
                    last = connection.execute(LAST_POSITION).scalar()
            except Exception as error:  # noqa: BLE001 - a busy or lost database: again soon
                outage.failed(error, "could not read the position")
            else:
                outage.ended()
                self._publish(int(last or 0))
            time.sleep(POLL_SECONDS)

    # --- PostgreSQL ---------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        return reads.connect_autocommit(self._engine())

    def _listen(self) -> None:
        backoff = 0.1
        idle_since: float | None = None
        outage = Outage(LOG, "the feed's watcher")
        while True:
            try:
                connection = self._connect()
            except psycopg.Error as error:
                outage.failed(error)
            else:
                try:
                    connection.execute(f"LISTEN {FEED_CHANNEL}")
                    row = connection.execute(_LAST_POSITION_SQL).fetchone()
                    self._publish(int(row[0]) if row else 0)
                    outage.ended()  # connected and listening: retries start quick again
                    backoff = 0.1
                    while True:
                        for note in connection.notifies(timeout=1.0):
                            self._publish(int(note.payload))
                        now = time.monotonic()
                        with self._condition:
                            waiting = self._waiters > 0
                        idle_since = None if waiting else (idle_since or now)
                        if self._stop_if(idle_since is not None
                                         and now - idle_since >= LINGER_SECONDS):
                            return
                except psycopg.Error as error:
                    outage.failed(error, "lost its connection")
                finally:
                    connection.close()
            if self._stop_if(True):
                return
            # Every failure waits: a server that takes connections but refuses the LISTEN
            # (a standby in recovery) is not asked again at once, in a loop.
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


_WATCHERS: weakref.WeakKeyDictionary[Engine, Watcher] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def watcher_for(engine: Engine) -> Watcher:
    """The process's watcher of *engine*'s database (made on first use)."""
    with _LOCK:
        watcher = _WATCHERS.get(engine)
        if watcher is None:
            watcher = _WATCHERS[engine] = Watcher(engine)
        return watcher

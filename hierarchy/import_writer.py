"""How the SOR import's rows reach the database: batched, and on PostgreSQL by COPY in a thread.

What the rows are is decided elsewhere: ``hierarchy.import_classify`` makes the
organisation rows, ``hierarchy.changes`` the version rows and the rules (superseding,
the narrow search rows). This module only carries them, the fastest way per back end:
on PostgreSQL COPY in batches from a second thread while the main thread parses
(:class:`_Background`), the changed rows staged in a temporary table and applied
with one UPDATE; on SQLite batched executemany.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Column, MetaData, Table, Text, bindparam, insert, update
from sqlalchemy.engine import Connection

from hierarchy import changes
from hierarchy.feed.items import Created
from hierarchy.models import NAME_COLUMNS, Organisation, OrganisationName, table_of
from hierarchy.records import DERIVED_FIELDS, OWN_FIELDS
from sorregistry.database import copy_binary, copy_rows

BATCH_SIZE = 5000
T = TypeVar("T")

# Organisation columns holding JSON documents: the rows carry them serialised (json_text).
JSON_COLUMNS = frozenset(
    {
        "postal_address",
        "visiting_address",
        "activity_address",
        "clinical_specialities",
        "replaces",
        "replaced_by",
        "attributes",
        "effective",
        "inherited",
    }
)
DATA_COLUMNS: tuple[str, ...] = (
    "sor_code",
    *OWN_FIELDS,
    *DERIVED_FIELDS,
    "version",
    "content_hash",
    "derived_hash",
)
INSERT_COLUMNS = (*DATA_COLUMNS, "created_at", "updated_at")
UPDATE_COLUMNS = (*DATA_COLUMNS, "updated_at")

# An organisation row as the import sends it: column name -> value (JSON columns as text).
Row = dict[str, Any]
Rows = Sequence[Mapping[str, object]]  # organisation rows or hierarchy.changes.VersionRow


def json_text(value: object) -> str | None:
    """A JSON column's value as the rows carry it (sorted keys, like the snapshots)."""
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@contextmanager
def process_wide_switch_interval(seconds: float) -> Iterator[None]:
    """Shorten the interpreter's thread switch interval for the WHOLE PROCESS while the
    block runs (``sys.setswitchinterval`` has no narrower scope: every thread of the
    process, web workers' included, switches as often meanwhile).

    The writer thread gives up the GIL at every socket write; with the default 5 ms
    interval it then waits behind the parsing thread (the "convoy effect") and the two
    stop overlapping. Never lengthens it; restores the previous value when the block
    ends, also on error.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class _Background:
    """One thread that runs the database writes while the main thread parses.

    On PostgreSQL the server does its share of the work (parsing COPY data,
    maintaining indexes) while the thread waits on the socket without the
    GIL, so parsing and loading overlap on two cores. The queue is short, so
    memory stays bounded; jobs run in order; the first error stops the rest
    and is raised in the main thread.
    """

    def __init__(self) -> None:
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sor-import-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is None:
                try:
                    job()
                except BaseException as exc:  # handed to the main thread
                    self.error = exc
            elif isinstance(job, _Ask):
                job.answer.set_exception(self.error)  # nobody waits for ever

    def submit(self, job: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put(job)

    def stop(self) -> None:
        """Wait for every job; raise the first error, if any."""
        self.jobs.put(None)
        self.thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class _Ask(Generic[T]):
    """A read run in the writer's turn on the connection; its answer is a Future."""

    def __init__(self, question: Callable[[], T]) -> None:
        self.question = question
        self.answer: Future[T] = Future()

    def __call__(self) -> None:
        try:
            self.answer.set_result(self.question())
        except BaseException as exc:
            self.answer.set_exception(exc)
            raise


class ImportWriter:
    """Buffers the import's writes and sends them in batches, the fastest way per back end."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now
        self.postgres = connection.dialect.name == "postgresql"
        self.background: _Background | None = None
        self.inserts: list[Row] = []
        self.updates: list[Row] = []
        self.versions: list[changes.VersionRow] = []
        # Feed entries (hierarchy.changes.created_entry): rows (SQLite), or their rows in
        # COPY's binary format, made as they come (PostgreSQL).
        self.entries: list[dict[str, Any]] = []
        self.entry_rows: list[bytes] = []
        self.superseded: list[str] = []
        self.updated: list[str] = []  # codes whose narrow search rows follow at finish
        metadata = MetaData()
        # Same tables, JSON columns as text: the values arrive serialised.
        self.organisations = _textual_copy(table_of(Organisation), metadata)
        # New organisations' narrow search rows go with them: the same rows' NAME_COLUMNS.
        self.names = _textual_copy(table_of(OrganisationName), metadata)
        if self.postgres:
            self.stage = Table(
                "import_changed",
                metadata,
                *[
                    Column(c.name, c.type)
                    for c in table_of(Organisation).columns
                    if c.name in UPDATE_COLUMNS
                ],
                prefixes=["TEMPORARY"],
            )
            self.stage.create(connection)

    def insert(self, row: Row) -> None:
        self.inserts.append(row)
        if len(self.inserts) >= BATCH_SIZE:
            self.flush()

    def update(self, row: Row) -> None:
        self.updates.append(row)
        self.updated.append(row["sor_code"])
        if len(self.updates) >= BATCH_SIZE:
            self.flush()

    def version(self, row: changes.VersionRow) -> None:
        self.versions.append(row)
        if row["version"] > 1:
            self.superseded.append(row["sor_code"])
        if len(self.versions) >= BATCH_SIZE:
            self.flush()

    def entry(self, version: changes.VersionRow, created: Created, item: bytes) -> None:
        """The feed entry of *version* (its organisation's first), sent with the batch
        (after the version): what it shares with its commit's entries, *created*, and its
        *item* (``hierarchy.changes.created_entry``). On PostgreSQL its COPY row is made
        now, on the caller's thread: the writer's thread is the one that waits for the
        server, and with an entry for every organisation of a first import the rows made
        there held the server up (and the batches queued behind it)."""
        if self.postgres:
            self.entry_rows.append(
                created.copy_row(version["commit_seq"], version["sor_code"], item))
        else:
            self.entries.append(created.row(version["commit_seq"], version["sor_code"], item))

    def ask(self, question: Callable[[], T]) -> Future[T]:
        """Run *question* on the connection; its answer.

        In the background (PostgreSQL) it waits its turn behind the batches sent before
        it while the caller goes on; otherwise it runs now. The connection is never used
        by two threads. Rows still buffered here are not sent first: ask nothing their
        writing would change."""
        job = _Ask(question)
        if self.background is not None:
            self.background.submit(job)
        else:
            job()
        return job.answer

    @contextmanager
    def in_background(self) -> Iterator[None]:
        """Send batches from a second thread while the block runs (PostgreSQL).

        The thread is done when the block ends, also on error: the connection must
        be idle before the caller can roll back.
        """
        if self.postgres:
            self.background = _Background()
        try:
            yield
        finally:
            background, self.background = self.background, None
            if background is not None:
                background.stop()

    def flush(self) -> None:
        """Send the buffered rows. New organisations go first: versions refer to them."""
        inserts, updates, versions = self.inserts, self.updates, self.versions
        entries, entry_rows = self.entries, self.entry_rows
        self.inserts, self.updates, self.versions, self.entries = [], [], [], []
        self.entry_rows = []
        if not (inserts or updates or versions or entries or entry_rows):
            return

        def write() -> None:
            if inserts:
                self._insert(self.organisations, INSERT_COLUMNS, inserts)
                self._insert(self.names, NAME_COLUMNS, inserts)
            if updates:
                if self.postgres:
                    copy_rows(self.connection, "import_changed", UPDATE_COLUMNS, updates)
                else:
                    self._update_sqlite(updates)
            if versions:
                self._insert(changes.VERSION_TABLE, changes.VERSION_COLUMNS, versions)
            if entry_rows:
                copy_binary(self.connection, changes.ENTRY_TABLE.name, changes.ENTRY_COLUMNS,
                            entry_rows)
            if entries:
                self._insert(changes.ENTRY_TABLE, changes.ENTRY_COLUMNS, entries)

        if self.background is not None:
            self.background.submit(write)
        else:
            write()

    def finish(self) -> None:
        """Apply the staged updates, then the rules that follow them (hierarchy.changes)."""
        self.flush()
        if self.postgres:
            stage = self.stage
            target = self.organisations
            self.connection.execute(
                update(target)
                .where(target.c.sor_code == stage.c.sor_code)
                .values({name: stage.c[name] for name in UPDATE_COLUMNS if name != "sor_code"})
            )
            self.stage.drop(self.connection)
        changes.sync_names(self.connection, self.updated)
        changes.supersede(self.connection, self.superseded, self.now)
        self.updated, self.superseded = [], []

    def _insert(self, table: Table, columns: tuple[str, ...], rows: Rows) -> None:
        if self.postgres:
            copy_rows(self.connection, table.name, columns, rows)
        else:
            self.connection.execute(insert(table), rows)

    def _update_sqlite(self, rows: list[Row]) -> None:
        table = self.organisations
        statement = (
            update(table)
            .where(table.c.sor_code == bindparam("_sor_code"))
            .values({name: bindparam(name) for name in UPDATE_COLUMNS if name != "sor_code"})
        )
        self.connection.execute(statement, [dict(row, _sor_code=row["sor_code"]) for row in rows])


def _textual_copy(table: Table, metadata: MetaData) -> Table:
    columns = [
        Column(c.name, Text() if c.name in JSON_COLUMNS else c.type) for c in table.columns
    ]
    return Table(table.name, metadata, *columns)

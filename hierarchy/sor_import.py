"""Import of the national SOR XML export into the register.

The file is streamed once, and each entity is classified as it arrives by
comparing its fingerprints with those the register holds (loaded once, a few
bytes per entity):

- **new**: inserted (PostgreSQL: COPY in batches; SQLite: batched inserts),
  with its first version;
- **changed** (its own values differ): updated, and a new version recorded;
- **derived** (only what it inherits or its place in the tree differs, e.g.
  its owner's phone number changed): updated without a new version;
- **unchanged**: nothing is written at all, so re-importing an unchanged
  export is cheaper than the first import.

Entities the register holds but the export does not are then closed (never
deleted). Everything happens inside one savepoint: a file that cannot be read
to its end raises :class:`SorFileError` and leaves the register as it was.
"""

from __future__ import annotations

import hashlib
import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from sqlalchemy import Column, MetaData, Table, Text, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from hierarchy.models import (
    LEVELS,
    NAME_COLUMNS,
    ImportRun,
    Organisation,
    OrganisationName,
    OrganisationVersion,
)
from hierarchy.records import (
    DERIVED_FIELDS,
    OWN_FIELDS,
    Placement,
    derive,
    derived_fingerprint,
    digest,
    own_values_from_snapshot,
    placement_of,
    snapshot_json,
)
from hierarchy.service import mark_register_changed
from hierarchy.sor_xml import SorEntity, SorFileError, SorHeader, read_sor_export
from sorregistry.models import utcnow

Scope = Literal["owners", "full", "none"]
BATCH_SIZE = 5000
MAX_REPORTED_PROBLEMS = 1000

__all__ = ["ImportResult", "SorFileError", "import_sor_file", "import_sor_files"]

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
VERSION_COLUMNS = (
    "sor_code",
    "version",
    "recorded_at",
    "source",
    "actor",
    "reference",
    "import_run_id",
    "snapshot",
)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class ImportResult:
    """What one import did, per level, and what it refused."""

    file_names: list[str]
    format: str = ""
    snapshot_date: date | None = None
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    problem_count: int = 0
    run_ids: list[int] = field(default_factory=list)

    def count(self, level: str, action: str) -> int:
        return self.counts.get(level, Counter())[action]

    def add(self, level: str, action: str, n: int = 1) -> None:
        self.counts.setdefault(level, Counter())[action] += n

    @property
    def total(self) -> int:
        return sum(
            sum(c[a] for a in ("new", "changed", "derived", "unchanged"))
            for c in self.counts.values()
        )

    def summary(self) -> str:
        lines = [
            f"Imported {', '.join(self.file_names)} ({self.format}"
            + (f", snapshot {self.snapshot_date.isoformat()}" if self.snapshot_date else "")
            + ")"
        ]
        header = f"{'level':<6}{'total':>9}{'new':>9}{'changed':>9}{'inherited':>10}"
        header += f"{'unchanged':>10}{'closed':>9}{'skipped':>9}"
        lines.append(header)
        for level in LEVELS:
            c = self.counts.get(level, Counter())
            total = c["new"] + c["changed"] + c["derived"] + c["unchanged"]
            lines.append(
                f"{level:<6}{total:>9}{c['new']:>9}{c['changed']:>9}{c['derived']:>10}"
                f"{c['unchanged']:>10}{c['closed']:>9}{c['skipped']:>9}"
            )
        if self.problem_count:
            lines.append(f"{self.problem_count} entities skipped:")
            for problem in self.problems[:20]:
                lines.append(
                    f"  line {problem['line']}: {problem['sor_code'] or '?'}: "
                    + "; ".join(problem["problems"])
                )
            if self.problem_count > 20:
                lines.append(f"  ... and {self.problem_count - 20} more")
        return "\n".join(lines)


@dataclass(slots=True)
class _Known:
    """What the register holds about one SOR code, enough to classify an incoming entity."""

    content_hash: str
    derived_hash: str
    version: int
    owner_sor_code: str
    level: str
    is_open: bool


class _HashingReader:
    """Reads a binary file, hashing and reporting progress as it goes."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self.sha256.update(chunk)
        if self._progress is not None and chunk:
            self._progress(len(chunk))
        return chunk


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


class _Writer:
    """Buffers the import's writes and sends them in batches, the fastest way per back end."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now
        self.postgres = connection.dialect.name == "postgresql"
        self.background: _Background | None = None
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []
        self.superseded: list[str] = []
        metadata = MetaData()
        # Same tables, JSON columns as text: the values arrive serialised.
        self.organisations = _textual_copy(Organisation.__table__, metadata)
        self.version_table = _textual_copy(OrganisationVersion.__table__, metadata)
        # The narrow search rows are written with their organisations: COPY (or
        # executemany) of the same rows, updates from the same stage, closes alike.
        self.names = _textual_copy(OrganisationName.__table__, metadata)
        if self.postgres:
            self.stage = Table(
                "import_changed",
                metadata,
                *[
                    Column(c.name, c.type)
                    for c in Organisation.__table__.columns
                    if c.name in UPDATE_COLUMNS
                ],
                prefixes=["TEMPORARY"],
            )
            self.stage.create(connection)

    def insert(self, row: dict[str, Any]) -> None:
        self.inserts.append(row)
        if len(self.inserts) >= BATCH_SIZE:
            self.flush()

    def update(self, row: dict[str, Any]) -> None:
        self.updates.append(row)
        if len(self.updates) >= BATCH_SIZE:
            self.flush()

    def version(self, row: dict[str, Any], supersede: bool) -> None:
        self.versions.append(row)
        if supersede:
            self.superseded.append(row["sor_code"])
        if len(self.versions) >= BATCH_SIZE:
            self.flush()

    def start_background(self) -> None:
        if self.postgres:
            self.background = _Background()

    def stop_background(self) -> None:
        """Wait for the background writes; afterwards writes are synchronous again."""
        if self.background is not None:
            background, self.background = self.background, None
            background.stop()

    def flush(self) -> None:
        """Send the buffered rows. New organisations go first: versions refer to them."""
        inserts, updates, versions = self.inserts, self.updates, self.versions
        self.inserts, self.updates, self.versions = [], [], []
        if not (inserts or updates or versions):
            return

        def write() -> None:
            if inserts:
                self._insert(self.organisations, INSERT_COLUMNS, inserts)
                self._insert(self.names, NAME_COLUMNS, inserts)
            if updates:
                if self.postgres:
                    self._copy("import_changed", UPDATE_COLUMNS, updates)
                else:
                    self._update_sqlite(updates)
            if versions:
                self._insert(self.version_table, VERSION_COLUMNS, versions)

        if self.background is not None:
            self.background.submit(write)
        else:
            write()

    def finish(self) -> None:
        """Apply the staged updates and mark the versions the import superseded."""
        self.flush()
        self.stop_background()
        if self.postgres:
            stage = self.stage
            target = self.organisations
            self.connection.execute(
                update(target)
                .where(target.c.sor_code == stage.c.sor_code)
                .values({name: stage.c[name] for name in UPDATE_COLUMNS if name != "sor_code"})
            )
            names = self.names
            self.connection.execute(
                update(names)
                .where(names.c.sor_code == stage.c.sor_code)
                .values({name: stage.c[name] for name in NAME_COLUMNS if name != "sor_code"})
            )
            self.stage.drop(self.connection)
        versions = self.version_table
        for start in range(0, len(self.superseded), BATCH_SIZE):
            chunk = self.superseded[start : start + BATCH_SIZE]
            # The new versions are already in, recorded at self.now: what is
            # open and older is what they supersede.
            self.connection.execute(
                update(versions)
                .where(
                    versions.c.sor_code.in_(chunk),
                    versions.c.superseded_at.is_(None),
                    versions.c.recorded_at < self.now,
                )
                .values(superseded_at=self.now)
            )
        self.superseded = []

    def _insert(self, table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        if self.postgres:
            self._copy(table.name, columns, rows)
        else:
            self.connection.execute(insert(table), rows)

    def _copy(self, table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        raw = self.connection.connection.driver_connection
        assert raw is not None
        data = "".join(
            "\t".join([_copy_text(row[name]) for name in columns]) + "\n" for row in rows
        ).encode()
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                copy.write(data)

    def _update_sqlite(self, rows: list[dict[str, Any]]) -> None:
        table = self.organisations
        statement = (
            update(table)
            .where(table.c.sor_code == bindparam("_sor_code"))
            .values({name: bindparam(name) for name in UPDATE_COLUMNS if name != "sor_code"})
        )
        rows = [dict(row, _sor_code=row["sor_code"]) for row in rows]
        self.connection.execute(statement, rows)
        names = self.names
        self.connection.execute(
            update(names)
            .where(names.c.sor_code == bindparam("_sor_code"))
            .values({name: bindparam(name) for name in NAME_COLUMNS if name != "sor_code"}),
            rows,
        )


# PostgreSQL's COPY text format: tab-separated, \N for NULL, and backslash,
# tab, newline and carriage return escaped. Formatting rows here is several
# times faster than psycopg's per-value adaptation, and the import is
# bound by the Python side.
def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        # Substring tests run in C; most values need no escaping at all.
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, date):  # datetime included: ISO 8601 with its offset
        return value.isoformat()
    return str(value)


def _textual_copy(table: Table, metadata: MetaData) -> Table:
    columns = [
        Column(c.name, Text() if c.name in JSON_COLUMNS or c.name == "snapshot" else c.type)
        for c in table.columns
    ]
    return Table(table.name, metadata, *columns)


def import_sor_files(
    session: Session,
    paths: Iterable[str | os.PathLike[str]],
    *,
    actor: str,
    scope: Scope = "owners",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import several export files as one export, within the caller's transaction.

    ``scope`` says which entities missing from the files are closed: ``owners``
    (the default) closes what is missing under the owners the files contain,
    ``full`` closes everything the files do not contain (the files are the
    whole register), ``none`` closes nothing. All or nothing: on any error the
    register is left as it was.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise SorFileError("no file given")
    savepoint = session.begin_nested()
    try:
        result = _import(session, paths, actor, scope, strict, progress)
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return result


def import_sor_file(
    session: Session, path: str | os.PathLike[str], *, actor: str, **options: Any
) -> ImportResult:
    return import_sor_files(session, [path], actor=actor, **options)


def _import(
    session: Session,
    paths: list[Path],
    actor: str,
    scope: Scope,
    strict: bool,
    progress: Callable[[int], None] | None,
) -> ImportResult:
    now = utcnow()
    connection = session.connection()
    result = ImportResult(file_names=[p.name for p in paths])
    run = ImportRun(
        kind="sor",
        file_name=", ".join(str(p) for p in paths)[:500],
        file_sha256="",
        format="",
        full=scope == "full",
        actor=actor,
        started_at=now,
        finished_at=now,
        counts={},
    )
    session.add(run)
    session.flush()
    result.run_ids.append(run.id)
    stream = _Stream(
        writer=_Writer(connection, now),
        known=_load_known(connection),
        result=result,
        now=now,
        actor=actor,
        reference=f"import-run:{run.id}",
        run_id=run.id,
    )
    stream.writer.start_background()
    # The writer thread gives up the GIL at every socket write; with the
    # default 5 ms switch interval it then waits behind the parsing thread
    # (the "convoy effect") and the two stop overlapping.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, 0.0002))
    try:
        for path in paths:
            stream.read(path, strict, progress)
        stream.writer.flush()
    finally:
        # Never leave the thread using the connection: on an error the
        # caller rolls back, and the connection must be idle for that.
        stream.writer.stop_background()
        sys.setswitchinterval(switch_interval)

    problems = stream.problems
    if strict and problems:
        first = problems[0]
        raise SorFileError(
            f"{len(problems)} invalid entities (strict import); first: "
            f"{first['sor_code'] or '?'}: {'; '.join(first['problems'])}",
            first["line"],
        )
    headers = stream.headers
    result.format = "+".join(sorted({h.format for h in headers}))
    snapshot_dates = [h.snapshot_date for h in headers if h.snapshot_date]
    result.snapshot_date = max(snapshot_dates) if snapshot_dates else None
    result.problems = problems[:MAX_REPORTED_PROBLEMS]
    result.problem_count = len(problems)
    for problem in problems:
        result.add(problem["level"], "skipped")

    if scope != "none":
        missing = [
            code
            for code, entry in stream.known.items()
            if entry.is_open
            and code not in stream.seen
            and code not in stream.skipped
            and (scope == "full" or entry.owner_sor_code in stream.owners_in_file)
        ]
        _close(connection, stream, missing, result.snapshot_date or now.date())
    stream.writer.finish()

    digests = stream.digests
    run.file_sha256 = (
        digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    )
    run.format = result.format
    run.snapshot_date = result.snapshot_date
    run.problems = result.problems or None
    run.finished_at = utcnow()
    run.counts = {level: dict(counter) for level, counter in result.counts.items()}
    session.flush()
    if any(
        counter[action]
        for counter in result.counts.values()
        for action in ("new", "changed", "derived", "closed")
    ):
        # Written through the connection (COPY), unseen by the session's events.
        mark_register_changed(session)
    if stream.writer.postgres and result.total > 10000:
        # Fresh statistics, so that the first lookups after a big load plan well.
        connection.exec_driver_sql("ANALYZE organisations")
    return result


@dataclass
class _Stream:
    """The state of one import while the files stream through it."""

    writer: _Writer
    known: dict[str, _Known]
    result: ImportResult
    now: datetime
    actor: str
    reference: str
    run_id: int
    seen: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    owners_in_file: set[str] = field(default_factory=set)
    problems: list[dict[str, Any]] = field(default_factory=list)
    headers: list[SorHeader] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    def version(self, sor_code: str, version: int, snapshot_json: str, note: str = "") -> None:
        self.writer.version(
            {
                "sor_code": sor_code,
                "version": version,
                "recorded_at": self.now,
                "source": "import",
                "actor": self.actor,
                "reference": self.reference + note,
                "import_run_id": self.run_id,
                "snapshot": snapshot_json,
            },
            supersede=version > 1,
        )

    def read(
        self, path: Path, strict: bool, progress: Callable[[int], None] | None
    ) -> None:
        writer, known, now = self.writer, self.known, self.now
        with open(path, "rb") as raw:
            reader = _HashingReader(raw, progress)
            entities = read_sor_export(reader, self.headers)
            rows = _rows(entities, path.name, self.seen, self.skipped, self.problems, strict)
            for row, snapshot_json in rows:
                sor_code = row["sor_code"]
                level = row["level"]
                if level == "IE":
                    self.owners_in_file.add(sor_code)
                before = known.get(sor_code)
                if before is None:
                    action = "new"
                    row["version"] = 1
                    row["created_at"] = row["updated_at"] = now
                    writer.insert(row)
                    self.version(sor_code, 1, snapshot_json)
                elif before.content_hash != row["content_hash"]:
                    action = "changed"
                    row["version"] = before.version + 1
                    row["updated_at"] = now
                    writer.update(row)
                    self.version(sor_code, row["version"], snapshot_json)
                elif before.derived_hash != row["derived_hash"]:
                    action = "derived"
                    row["version"] = before.version
                    row["updated_at"] = now
                    writer.update(row)
                else:
                    action = "unchanged"
                self.result.add(level, action)
            self.digests.append(reader.sha256.hexdigest())

def _load_known(connection: Connection) -> dict[str, _Known]:
    org = Organisation.__table__
    rows = connection.execute(
        select(
            org.c.sor_code,
            org.c.content_hash,
            org.c.derived_hash,
            org.c.version,
            org.c.owner_sor_code,
            org.c.level,
            org.c.valid_to,
        ).execution_options(yield_per=20000)
    )
    return {
        code: _Known(content, derived, version, owner, level, valid_to is None)
        for code, content, derived, version, owner, level, valid_to in rows
    }


def _rows(
    entities: Iterator[SorEntity],
    file_name: str,
    seen: set[str],
    skipped: set[str],
    problems: list[dict[str, Any]],
    strict: bool,
) -> Iterator[tuple[dict[str, Any], str]]:
    """Turn the file's entities into register rows, computing what the tree gives each."""
    ancestors: list[Placement] = []
    for entity in entities:
        entity_problems = list(entity.problems)
        parent_code = entity.parent_sor_code
        if entity.level == "IE":
            ancestors.clear()
        else:
            while ancestors and ancestors[-1].sor_code != parent_code:
                ancestors.pop()
            if not parent_code or parent_code in skipped or not ancestors:
                entity_problems.append("its parent was skipped")
        if entity.sor_code and not entity_problems and entity.sor_code in seen:
            raise SorFileError(
                f"SOR code {entity.sor_code} appears twice in the export ({file_name})",
                entity.line,
            )
        if entity_problems:
            if entity.sor_code:
                skipped.add(entity.sor_code)
            problems.append(
                {
                    "file": file_name,
                    "line": entity.line,
                    "sor_code": entity.sor_code,
                    "level": entity.level,
                    "problems": entity_problems,
                }
            )
            if strict and len(problems) >= 20:
                break
            continue
        sor_code = entity.sor_code
        assert sor_code is not None
        seen.add(sor_code)
        own = {name: getattr(entity, name) for name in OWN_FIELDS}
        own_json = snapshot_json(own)
        derived = derive(own, sor_code, ancestors[-1] if ancestors else None)
        ancestors.append(placement_of(sor_code, entity.level, derived))
        row = {"sor_code": sor_code, **own, **derived}
        for name in JSON_COLUMNS:
            row[name] = _json(row[name])
        row["content_hash"] = digest(own_json)
        row["derived_hash"] = derived_fingerprint(derived)
        yield row, own_json.decode()


def _close(connection: Connection, stream: _Stream, missing: list[str], close_date: date) -> None:
    """Close the *missing* entities as of *close_date*: a new version each, nothing deleted."""
    versions = OrganisationVersion.__table__
    organisations = Organisation.__table__
    names = OrganisationName.__table__
    for start in range(0, len(missing), 1000):
        chunk = missing[start : start + 1000]
        current = connection.execute(
            select(versions.c.sor_code, versions.c.snapshot).where(
                versions.c.sor_code.in_(chunk), versions.c.superseded_at.is_(None)
            )
        ).all()
        for sor_code, snapshot in current:
            entry = stream.known[sor_code]
            closing_day = close_date
            valid_from = snapshot.get("valid_from")
            if valid_from and date.fromisoformat(valid_from) > closing_day:
                closing_day = date.fromisoformat(valid_from)
            new_snapshot = dict(snapshot, valid_to=closing_day.isoformat())
            new_json = snapshot_json(own_values_from_snapshot(new_snapshot))
            connection.execute(
                update(organisations)
                .where(organisations.c.sor_code == sor_code)
                .values(
                    valid_to=closing_day,
                    version=entry.version + 1,
                    content_hash=digest(new_json),
                    updated_at=stream.now,
                )
            )
            connection.execute(
                update(names).where(names.c.sor_code == sor_code).values(valid_to=closing_day)
            )
            stream.version(
                sor_code,
                entry.version + 1,
                new_json.decode(),
                note=" (absent from the export: closed)",
            )
            stream.result.add(entry.level, "closed")

"""Import of the national SOR XML export into the register.

The file is streamed once, and each entity is classified by comparing its
fingerprints with those the register holds, fetched a batch at a time: the import
holds one batch, not something for every entity of the register
(``import_read``):

- **new**: inserted (PostgreSQL: COPY in batches; SQLite: batched inserts),
  with its first version;
- **changed** (its own values differ): updated, and a new version recorded;
- **derived** (only what it inherits or its place in the tree differs, e.g.
  its owner's phone number changed): updated without a new version;
- **unchanged**: nothing is written at all, so re-importing an unchanged
  export is cheaper than the first import.

A replacement link the files give on one side only is filled in on the other
(``import_links``): rows are completed as they stream, and the sides that only the
whole files settle are written as versions at the end.

Entities the register holds but the export does not are then closed (never
deleted). Everything happens inside one savepoint: a file that cannot be read
to its end raises :class:`SorFileError` and leaves the register as it was.

This module is the public API and the order of the steps; each step is a module of
its own: ``import_classify`` (rows and their classification), ``import_writer`` (how
rows reach the database), ``import_read`` (the codes read, and what the register
holds of them, in the database), ``import_close`` (closing what the files leave out),
``import_links`` (both sides of replacement links), and
``hierarchy.changes`` for what every recorded change is made of (versions, the narrow
search rows, feed positions, the register version).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from hierarchy import changes
from hierarchy.import_classify import Problem, classify, register_rows
from hierarchy.import_close import MassWithdrawalError, close_missing, refuse_mass_withdrawal
from hierarchy.import_links import Links, fill_in, load_links
from hierarchy.import_read import Known, ReadCodes, Scope, Taken
from hierarchy.import_writer import ImportWriter, Row, process_wide_switch_interval
from hierarchy.models import LEVELS, ImportRun
from hierarchy.records import EFFECTIVE_VALUES
from hierarchy.sor_xml import SorFileError, SorHeader, read_sor_export
from sorregistry.database import DbSession
from sorregistry.models import utcnow

MAX_REPORTED_PROBLEMS = 1000
# Rows classified together: one look-up of their codes in the register per batch.
LOOKUP_BATCH = 2000
# How many batches' look-ups are asked ahead of the batch being classified. A batch's
# look-up waits in the writer's queue behind the rows written before it was asked; with
# one ahead, the writer had one batch's classifying to write the last 5,000 rows
# (import_writer.BATCH_SIZE), and often took longer (the parser waited ~1 s of a 200k
# import, ~1.5 s with the feed's entries). Two ahead give it twice that, for one more
# batch of rows held (~2,000 rows, a few MB). The look-ups stay correct asked early: a
# batch's codes are in no batch before it (ReadCodes.take refuses a code read twice),
# so no row written meanwhile is one they read.
LOOKAHEAD = 2

__all__ = ["ImportResult", "MassWithdrawalError", "Scope", "SorFileError", "import_sor_file",
           "import_sor_files"]


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
        # Once per row read: no Counter made (setdefault's default) when the level has one.
        counts = self.counts.get(level)
        if counts is None:
            counts = self.counts[level] = Counter()
        counts[action] += n

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
        linked = sum(c["linked"] for c in self.counts.values())
        if linked:
            lines.append(f"{linked} organisations had the other side of a replacement "
                         "filled in or taken away")
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


def import_sor_files(
    session: DbSession,
    paths: Iterable[str | os.PathLike[str]],
    *,
    actor: str,
    scope: Scope = "owners",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    max_withdrawal_share: float | None = None,
) -> ImportResult:
    """Import several export files as one export, within the caller's transaction.

    ``scope`` says which entities missing from the files are closed: ``owners``
    (the default) closes what is missing under the owners the files contain,
    ``full`` closes everything the files do not contain (the files are the
    whole register), ``none`` closes nothing. All or nothing: on any error the
    register is left as it was. With *max_withdrawal_share*, a ``full`` import whose
    files hold no entity, or that would close more than that share of the open
    entities, is refused (:class:`MassWithdrawalError`).
    """
    files = [Path(p) for p in paths]
    if not files:
        raise SorFileError("no file given")
    savepoint = session.begin_nested()
    try:
        result = _import(session, files, actor, scope, strict, progress, max_withdrawal_share)
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return result


def import_sor_file(
    session: DbSession, path: str | os.PathLike[str], *, actor: str, **options: Any
) -> ImportResult:
    return import_sor_files(session, [path], actor=actor, **options)


def _import(
    session: DbSession,
    paths: list[Path],
    actor: str,
    scope: Scope,
    strict: bool,
    progress: Callable[[int], None] | None,
    max_withdrawal_share: float | None,
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
    links = Links(load_links(connection))
    read_codes = ReadCodes(connection)
    # What a full import may withdraw is a share of what was open before it.
    held_open = read_codes.open_count() if scope == "full" else 0
    stream = _Stream(
        writer=ImportWriter(connection, now),
        links=links,
        recording=changes.recording(session),  # before the writer's thread uses the connection
        read_codes=read_codes,
        result=result,
        now=now,
        actor=actor,
        reference=f"import-run:{run.id}",
        run_id=run.id,
    )
    with stream.writer.in_background(), process_wide_switch_interval(0.0002):
        for path in paths:
            stream.read(path, strict, progress)
        stream.writer.flush()

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

    missing = read_codes.missing(scope, stream.skipped)
    if scope == "full":
        refuse_mass_withdrawal(
            withdrawn=len(missing),
            held=held_open,
            received=read_codes.count + len(stream.skipped),
            share=max_withdrawal_share,
            what="open entities",
        )
    close_date = result.snapshot_date or now.date()
    for closed in close_missing(connection, missing, close_date, now):
        stream.version(closed.sor_code, closed.version, closed.snapshot,
                       note=" (absent from the export: closed)")
        result.add(closed.level, "closed")
    stream.writer.finish()
    corrections = links.corrections(read_codes.read_and_registered)
    read_codes.drop()
    for filled in fill_in(connection, corrections, now, stream.version_row):
        result.add(filled.level, "linked")
    # After fill_in: its versions are the run's too (same commit), so they get entries.
    changes.record_import_entries(connection, stream.recording, run.id, stream.derived, now,
                                  stream.reference)

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
        for action in ("new", "changed", "derived", "closed", "linked")
    ):
        # Written through the connection (COPY), unseen by the session's hooks.
        changes.mark_register_changed(session)
    if stream.writer.postgres and result.total > 10000:
        # Fresh statistics, so that the first lookups after a big load plan well.
        connection.exec_driver_sql("ANALYZE organisations")
    return result


@dataclass
class _Stream:
    """The state of one import while the files stream through it."""

    writer: ImportWriter
    links: Links
    recording: changes.Recording
    read_codes: ReadCodes
    result: ImportResult
    now: datetime
    actor: str
    reference: str
    run_id: int
    skipped: set[str] = field(default_factory=set)  # entities with problems: few
    derived: list[str] = field(default_factory=list)  # only what they inherit changed
    problems: list[Problem] = field(default_factory=list)
    headers: list[SorHeader] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    def version(self, sor_code: str, version: int, snapshot: str, note: str = "") -> None:
        """Record a new version of *sor_code* (its own values' canonical JSON *snapshot*)."""
        self.writer.version(self.version_row(sor_code, version, snapshot, note))

    def version_row(self, sor_code: str, version: int, snapshot: str,
                    note: str = " (replacement filled in)") -> changes.VersionRow:
        """The version row of a change this import records."""
        return self.recording.version_row(
            sor_code,
            version,
            snapshot,
            recorded_at=self.now,
            source="import",
            actor=self.actor,
            reference=self.reference + note,
            import_run_id=self.run_id,
        )

    def read(self, path: Path, strict: bool, progress: Callable[[int], None] | None) -> None:
        """Stream *path*'s rows: completed links, then classified and written a batch at a
        time. The look-ups of the next batches run (on PostgreSQL, in the writer's thread)
        while one is classified (:data:`LOOKAHEAD`)."""
        with open(path, "rb") as raw:
            reader = _HashingReader(raw, progress)
            entities = read_sor_export(reader, self.headers)
            rows = register_rows(entities, path.name, self.skipped, self.problems, strict)
            batch: list[_Read] = []
            asked: deque[_Asked] = deque()
            for read, read_snapshot, line in rows:
                row, snapshot = self.links.complete(read, read_snapshot)
                batch.append((row, snapshot, line))
                if len(batch) >= LOOKUP_BATCH:
                    self._next(asked, batch, path.name)
                    batch = []
            self._next(asked, batch, path.name)
            while asked:
                self._classify(asked.popleft(), path.name)
            self.digests.append(reader.sha256.hexdigest())

    def _next(self, asked: deque[_Asked], batch: list[_Read], file_name: str) -> None:
        """Ask for *batch*'s fingerprints; then, with more than :data:`LOOKAHEAD` batches
        asked, classify the oldest."""
        if batch:
            codes = [(row["sor_code"], row["level"]) for row, _, _ in batch]
            asked.append((batch, self.writer.ask(lambda: self.read_codes.take(codes))))
        if len(asked) > LOOKAHEAD:
            self._classify(asked.popleft(), file_name)

    def _classify(self, asked: _Asked, file_name: str) -> None:
        """Classify and write the rows of a batch, once its fingerprints are in."""
        rows, answer = asked
        taken = answer.result()
        if taken.twice is not None:
            line = max(line for row, _, line in rows if row["sor_code"] == taken.twice)
            raise SorFileError(
                f"SOR code {taken.twice} appears twice in the export ({file_name})", line
            )
        known = taken.known
        for row, snapshot, _ in rows:
            self._write(row, snapshot, known.get(row["sor_code"]))

    def _write(self, row: Row, snapshot: str, before: Known | None) -> None:
        writer, now = self.writer, self.now
        sor_code = row["sor_code"]
        # Not a column: taken off before the row is queued for the writer's thread.
        effective = row.pop(EFFECTIVE_VALUES)
        action = classify(before, row)
        if action == "new":
            row["version"] = 1
            row["created_at"] = row["updated_at"] = now
            writer.insert(row)
            version = self.version_row(sor_code, 1, snapshot, "")
            writer.version(version)
            made = changes.created_entry(self.recording, version, row, effective)
            if made is not None:
                writer.entry(version, *made)
        elif action == "changed":
            assert before is not None
            row["version"] = before.version + 1
            row["updated_at"] = now
            writer.update(row)
            self.version(sor_code, row["version"], snapshot)
        elif action == "derived":
            assert before is not None
            row["version"] = before.version  # only inherited values moved
            row["updated_at"] = now
            writer.update(row)
            self.derived.append(sor_code)
        self.result.add(row["level"], action)


# A row read from the files: the register row, its snapshot, its line.
_Read = tuple[Row, str, int]
# A batch of rows and the answer to its look-up of fingerprints (ReadCodes.take).
_Asked = tuple[list[_Read], Future[Taken]]

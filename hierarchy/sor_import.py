"""Import of the national SOR XML export into the register.

The file is streamed into a temporary staging table, then merged into the
register with a handful of set-based statements, all in one transaction:

1. every entity of the file goes to ``import_stage`` with its own values,
   derived values and two fingerprints (PostgreSQL: COPY; SQLite: batched
   inserts), the file being read only once and never held in memory;
2. each staged row is classified as new, changed (own values differ: a new
   version), derived (only inherited values differ: no new version) or
   unchanged, by comparing fingerprints with the register;
3. new rows are inserted, changed and derived rows updated, versions
   written, and entities missing from the export closed (never deleted).

A file that cannot be read raises :class:`SorFileError` before step 2, and the
caller rolls back: the register is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    exists,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from hierarchy.models import ImportRun, Organisation, OrganisationVersion
from hierarchy.records import (
    DERIVED_FIELDS,
    OWN_FIELDS,
    Placement,
    derive,
    derived_fingerprint,
    fingerprint,
    placement_of,
    snapshot_of,
    to_json,
)
from hierarchy.sor_xml import SorEntity, SorFileError, SorHeader, read_sor_export
from sorregistry.models import JsonDocument, UTCDateTime, utcnow

Scope = Literal["owners", "full", "none"]
BATCH_SIZE = 5000
MAX_REPORTED_PROBLEMS = 1000

__all__ = ["ImportResult", "SorFileError", "import_sor_file", "import_sor_files"]

_JSON_COLUMNS = {
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


def _stage_table() -> Table:
    """A temporary table shaped like ``organisations`` plus the import's bookkeeping."""
    metadata = MetaData()
    columns = []
    for column in Organisation.__table__.columns:
        if column.name in ("created_at", "updated_at"):
            continue
        column_type = column.type
        if column.name in _JSON_COLUMNS:
            column_type = JsonDocument
        columns.append(Column(column.name, column_type, primary_key=column.primary_key))
    columns += [
        Column("snapshot", JsonDocument),
        Column("line", Integer),
        Column("action", String(10)),
    ]
    return Table("import_stage", metadata, *columns, prefixes=["TEMPORARY"])


STAGE_COLUMNS = [
    "sor_code",
    *OWN_FIELDS,
    *DERIVED_FIELDS,
    "version",
    "content_hash",
    "derived_hash",
    "snapshot",
    "line",
]
ORGANISATION_DATA_COLUMNS = [
    "sor_code",
    *OWN_FIELDS,
    *DERIVED_FIELDS,
    "version",
    "content_hash",
    "derived_hash",
]


@dataclass
class ImportResult:
    """What one import did, per level, and what it refused."""

    file_names: list[str]
    format: str
    snapshot_date: date | None
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    problem_count: int = 0
    run_ids: list[int] = field(default_factory=list)

    def count(self, level: str, action: str) -> int:
        return self.counts.get(level, Counter())[action]

    @property
    def total(self) -> int:
        return sum(sum(c[a] for a in ("new", "changed", "derived", "unchanged"))
                   for c in self.counts.values())

    def summary(self) -> str:
        lines = [
            f"Imported {', '.join(self.file_names)} ({self.format}"
            + (f", snapshot {self.snapshot_date.isoformat()}" if self.snapshot_date else "")
            + ")"
        ]
        header = f"{'level':<6}{'total':>9}{'new':>9}{'changed':>9}{'inherited':>10}"
        header += f"{'unchanged':>10}{'closed':>9}{'skipped':>9}"
        lines.append(header)
        for level in ("IE", "SI", "OE"):
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


class _HashingReader:
    """Reads a binary file, hashing and counting as it goes."""

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
    session: Session,
    paths: Iterable[str | os.PathLike[str]],
    *,
    actor: str,
    scope: Scope = "owners",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    partial: bool | None = None,
) -> ImportResult:
    """Import several export files as one export, in the caller's transaction.

    ``scope`` says which entities missing from the files are closed: ``owners``
    (the default) closes what is missing under the owners the files contain,
    ``full`` closes everything the files do not contain (the files are the
    whole register), ``none`` closes nothing.
    """
    if partial:
        scope = "none"
    paths = [Path(p) for p in paths]
    if not paths:
        raise SorFileError("no file given")
    # A savepoint makes the import all-or-nothing even inside a larger
    # transaction: on any error the register is as it was before the call.
    savepoint = session.begin_nested()
    try:
        connection = session.connection()
        stage = _stage_table()
        stage.create(connection)
        headers: list[SorHeader] = []
        problems: list[dict[str, Any]] = []
        shas: list[str] = []
        skipped: set[str] = set()
        seen: set[str] = set()
        for path in paths:
            with open(path, "rb") as raw:
                reader = _HashingReader(raw, progress)
                file_headers: list[SorHeader] = []
                entities = read_sor_export(reader, file_headers)
                rows = _staged_rows(entities, path.name, seen, skipped, problems, strict)
                _load_stage(connection, stage, rows)
                headers.extend(file_headers)
                shas.append(reader.sha256.hexdigest())
        if strict and problems:
            first = problems[0]
            raise SorFileError(
                f"{len(problems)} invalid entities (strict import); first: "
                f"{first['sor_code'] or '?'}: {'; '.join(first['problems'])}",
                first["line"],
            )
        formats = sorted({h.format for h in headers})
        snapshot_dates = [h.snapshot_date for h in headers if h.snapshot_date]
        result = ImportResult(
            file_names=[p.name for p in paths],
            format="+".join(formats),
            snapshot_date=max(snapshot_dates) if snapshot_dates else None,
            problems=problems[:MAX_REPORTED_PROBLEMS],
            problem_count=len(problems),
        )
        _merge(session, connection, stage, result, actor, scope, skipped, shas, paths)
        stage.drop(connection)
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return result


def import_sor_file(
    session: Session, path: str | os.PathLike[str], *, actor: str, **options: Any
) -> ImportResult:
    return import_sor_files(session, [path], actor=actor, **options)


def _staged_rows(
    entities: Iterator[SorEntity],
    file_name: str,
    seen: set[str],
    skipped: set[str],
    problems: list[dict[str, Any]],
    strict: bool,
) -> Iterator[dict[str, Any]]:
    """Turn the file's entities into stage rows, computing what the tree gives each."""
    ancestors: list[Placement] = []
    for entity in entities:
        entity_problems = list(entity.problems)
        parent_code = entity.parent_sor_code
        if entity.level == "IE":
            ancestors.clear()
        else:
            while ancestors and ancestors[-1].sor_code != parent_code:
                ancestors.pop()
        if parent_code is not None and (parent_code == "" or parent_code in skipped):
            entity_problems.append("its parent was skipped")
        elif parent_code is not None and not ancestors:
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
        snapshot = snapshot_of(own)
        parent = ancestors[-1] if ancestors else None
        derived = derive(own, sor_code, parent)
        ancestors.append(placement_of(sor_code, entity.level, derived))
        row = {"sor_code": sor_code, **own, **derived}
        row["version"] = None
        row["content_hash"] = fingerprint(snapshot)
        row["derived_hash"] = derived_fingerprint(derived)
        row["snapshot"] = snapshot
        row["line"] = entity.line
        yield row


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _load_stage(connection: Connection, stage: Table, rows: Iterator[dict[str, Any]]) -> None:
    if connection.dialect.name == "postgresql":
        _copy_stage(connection, rows)
        return
    statement = insert(stage)
    for batch in _batches(rows, BATCH_SIZE):
        connection.execute(statement, batch)


def _copy_stage(connection: Connection, rows: Iterator[dict[str, Any]]) -> None:
    """PostgreSQL: stream the rows into the stage with COPY, the fastest way in."""
    raw = connection.connection.driver_connection
    assert raw is not None
    columns = ", ".join(STAGE_COLUMNS)
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY import_stage ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        to_json(row[name])
                        if name in _JSON_COLUMNS or name == "snapshot"
                        else row[name]
                        for name in STAGE_COLUMNS
                    ]
                )


def _merge(
    session: Session,
    connection: Connection,
    stage: Table,
    result: ImportResult,
    actor: str,
    scope: Scope,
    skipped: set[str],
    shas: list[str],
    paths: list[Path],
) -> None:
    now = utcnow()
    org = Organisation.__table__
    versions = OrganisationVersion.__table__
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE import_stage"))

    # 1. Classify every staged row against the register.
    connection.execute(
        update(stage)
        .where(~exists().where(org.c.sor_code == stage.c.sor_code))
        .values(action="new", version=1)
    )
    connection.execute(
        update(stage)
        .where(
            org.c.sor_code == stage.c.sor_code,
            org.c.content_hash != stage.c.content_hash,
        )
        .values(action="changed", version=org.c.version + 1)
    )
    connection.execute(
        update(stage)
        .where(
            org.c.sor_code == stage.c.sor_code,
            stage.c.action.is_(None),
            org.c.derived_hash != stage.c.derived_hash,
        )
        .values(action="derived", version=org.c.version)
    )

    run = ImportRun(
        kind="sor",
        file_name=", ".join(str(p) for p in paths)[:500],
        file_sha256=shas[0] if len(shas) == 1 else _combined_digest(shas),
        format=result.format,
        snapshot_date=result.snapshot_date,
        full=scope == "full",
        actor=actor,
        started_at=now,
        finished_at=now,
        counts={},
        problems=result.problems or None,
    )
    session.add(run)
    session.flush()
    result.run_ids.append(run.id)
    reference = f"import-run:{run.id}"

    # 2. Apply: insert the new, update the changed, record versions.
    data_columns = ORGANISATION_DATA_COLUMNS
    connection.execute(
        insert(org).from_select(
            [*data_columns, "created_at", "updated_at"],
            select(
                *[stage.c[name] for name in data_columns],
                _timestamp(now).label("created_at"),
                _timestamp(now).label("updated_at"),
            ).where(stage.c.action == "new"),
        )
    )
    connection.execute(
        update(org)
        .where(org.c.sor_code == stage.c.sor_code, stage.c.action.in_(("changed", "derived")))
        .values(
            {name: stage.c[name] for name in data_columns if name != "sor_code"}
            | {"updated_at": now}
        )
    )
    changed = select(stage.c.sor_code).where(stage.c.action == "changed")
    connection.execute(
        update(versions)
        .where(versions.c.superseded_at.is_(None), versions.c.sor_code.in_(changed))
        .values(superseded_at=now)
    )
    connection.execute(
        insert(versions).from_select(
            [
                "sor_code",
                "version",
                "recorded_at",
                "source",
                "actor",
                "reference",
                "import_run_id",
                "snapshot",
            ],
            select(
                stage.c.sor_code,
                stage.c.version,
                _timestamp(now),
                text("'import'"),
                _literal(actor),
                _literal(reference),
                _literal_int(run.id),
                stage.c.snapshot,
            ).where(stage.c.action.in_(("new", "changed"))),
        )
    )

    for level, action, count in connection.execute(
        select(stage.c.level, stage.c.action, text("count(*)")).group_by(
            stage.c.level, stage.c.action
        )
    ):
        result.counts.setdefault(level, Counter())[action or "unchanged"] += count
    for problem in result.problems:
        result.counts.setdefault(problem["level"], Counter())["skipped"] += 1

    # 3. Close what the export no longer holds.
    if scope != "none":
        close_date = result.snapshot_date or now.date()
        _close_missing(session, connection, stage, scope, skipped, close_date, now, actor,
                       reference, run.id, result)

    run.finished_at = utcnow()
    run.counts = {level: dict(counter) for level, counter in result.counts.items()}
    session.flush()
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE organisations"))


def _combined_digest(digests: list[str]) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _timestamp(now: datetime) -> Any:
    return literal(now, UTCDateTime())


def _literal(value: str) -> Any:
    return literal(value, String())


def _literal_int(value: int) -> Any:
    return literal(value, Integer())


def _close_missing(
    session: Session,
    connection: Connection,
    stage: Table,
    scope: Scope,
    skipped: set[str],
    close_date: date,
    now: datetime,
    actor: str,
    reference: str,
    run_id: int,
    result: ImportResult,
) -> None:
    org = Organisation.__table__
    versions = OrganisationVersion.__table__
    conditions = [
        org.c.valid_to.is_(None),
        ~exists().where(stage.c.sor_code == org.c.sor_code),
    ]
    if scope == "owners":
        conditions.append(
            org.c.owner_sor_code.in_(select(stage.c.sor_code).where(stage.c.level == "IE"))
        )
    missing = connection.execute(
        select(org.c.sor_code, org.c.level, org.c.version, versions.c.snapshot)
        .join(
            versions,
            and_(versions.c.sor_code == org.c.sor_code, versions.c.superseded_at.is_(None)),
        )
        .where(*conditions)
    ).all()
    for sor_code, level, version, snapshot in missing:
        if sor_code in skipped:
            continue
        closing_day = close_date
        valid_from = snapshot.get("valid_from")
        if valid_from and date.fromisoformat(valid_from) > closing_day:
            closing_day = date.fromisoformat(valid_from)
        new_snapshot = dict(snapshot, valid_to=closing_day.isoformat())
        connection.execute(
            update(org)
            .where(org.c.sor_code == sor_code)
            .values(
                valid_to=closing_day,
                version=version + 1,
                content_hash=fingerprint(new_snapshot),
                updated_at=now,
            )
        )
        connection.execute(
            update(versions)
            .where(versions.c.sor_code == sor_code, versions.c.superseded_at.is_(None))
            .values(superseded_at=now)
        )
        connection.execute(
            insert(versions).values(
                sor_code=sor_code,
                version=version + 1,
                recorded_at=now,
                source="import",
                actor=actor,
                reference=f"{reference} (absent from the export: closed)",
                import_run_id=run_id,
                snapshot=new_snapshot,
            )
        )
        result.counts.setdefault(level, Counter())["closed"] += 1

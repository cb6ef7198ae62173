"""Import of the SHAK register (``SHAKCOMPLETE.TXT``) into ``shak_codes``.

The file is the complete register with every code's history, so an import
replaces the table's content in one transaction and reports what differed:
records added, changed (same code and start date, other text or grouping) and
withdrawn. An empty file, or one that would withdraw more than a share of the
register, is refused unless the caller allows it (``import_close.refuse_mass_withdrawal``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from hierarchy.import_close import MassWithdrawalError, refuse_mass_withdrawal
from hierarchy.models import ImportRun, ShakCode
from hierarchy.shak_format import ShakFormatError, ShakRecord, parse_shak
from hierarchy.text import fold
from sorregistry.database import DbSession
from sorregistry.models import utcnow

__all__ = ["MassWithdrawalError", "ShakImportResult", "import_shak_file"]

_COMPARED = ("record_type", "valid_to", "changed", "text", "agrp", "bgrp", "cgrp", "dgrp",
             "egrp", "dval")


@dataclass
class ShakImportResult:
    file_name: str
    records: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    added: int = 0
    changed: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    run_id: int | None = None

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts.items()))
        return (
            f"Imported {self.file_name}: {self.records} SHAK records ({kinds}); "
            f"added {self.added}, changed {self.changed}, unchanged {self.unchanged}, "
            f"withdrawn {self.withdrawn}"
        )


def _row(record: ShakRecord) -> dict[str, Any]:
    return {
        "code": record.code,
        "kind": record.kind,
        "hospital": record.code[:4],
        "record_type": record.record_type,
        "valid_from": record.valid_from,
        "valid_to": record.valid_to,
        "changed": record.changed,
        "text": record.text,
        "text_search": fold(record.text),
        "agrp": record.agrp,
        "bgrp": record.bgrp,
        "cgrp": record.cgrp,
        "dgrp": record.dgrp,
        "egrp": record.egrp,
        "dval": record.dval,
    }


def _unique_rows(records: Iterable[ShakRecord]) -> list[dict[str, Any]]:
    """The rows of *records*; a code has at most one record per start date."""
    first_lines: dict[tuple[str, date], int] = {}
    rows = []
    for record in records:
        key = (record.code, record.valid_from)
        first = first_lines.setdefault(key, record.line)
        if first != record.line:
            raise ShakFormatError(
                record.line,
                f"SHAK code {record.code} has a second record starting "
                f"{record.valid_from.isoformat()} (the first is on line {first})",
            )
        rows.append(_row(record))
    return rows


def import_shak_file(
    session: DbSession,
    path: str | os.PathLike[str],
    *,
    actor: str,
    max_withdrawal_share: float | None = None,
) -> ShakImportResult:
    """Replace the SHAK register with the content of *path*, in the caller's transaction.

    All or nothing: on any error the SHAK register is left as it was. With
    *max_withdrawal_share*, an empty file, or one that would withdraw more than that
    share of the records held, is refused (:class:`MassWithdrawalError`).
    """
    with session.begin_nested():
        return _import_shak(session, Path(path), actor, max_withdrawal_share)


def _import_shak(
    session: DbSession, path: Path, actor: str, max_withdrawal_share: float | None
) -> ShakImportResult:
    started = utcnow()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read())
        handle.seek(0)
        rows = _unique_rows(parse_shak(handle))
    result = ShakImportResult(file_name=path.name, records=len(rows))
    for row in rows:
        result.counts[row["kind"]] = result.counts.get(row["kind"], 0) + 1

    existing = {
        (row.code, row.valid_from): tuple(getattr(row, name) for name in _COMPARED)
        for row in session.execute(select(ShakCode)).scalars()
    }
    held = len(existing)
    for row in rows:
        before = existing.pop((row["code"], row["valid_from"]), None)
        if before is None:
            result.added += 1
        elif before != tuple(row[name] for name in _COMPARED):
            result.changed += 1
        else:
            result.unchanged += 1
    result.withdrawn = len(existing)
    refuse_mass_withdrawal(withdrawn=result.withdrawn, held=held, received=result.records,
                           share=max_withdrawal_share, what="SHAK records")

    run = ImportRun(
        kind="shak",
        file_name=str(path)[:500],
        file_sha256=digest.hexdigest(),
        format="shak-fixed-width",
        snapshot_date=None,
        full=True,
        actor=actor,
        started_at=started,
        finished_at=utcnow(),
        counts={
            "records": result.records,
            "added": result.added,
            "changed": result.changed,
            "unchanged": result.unchanged,
            "withdrawn": result.withdrawn,
            **result.counts,
        },
        problems=None,
    )
    session.add(run)
    session.flush()
    result.run_id = run.id
    session.execute(delete(ShakCode))
    for start in range(0, len(rows), 5000):
        batch = [dict(row, import_run_id=run.id) for row in rows[start : start + 5000]]
        session.execute(insert(ShakCode), batch)
    session.flush()
    return result

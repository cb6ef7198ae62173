"""What one SOR import has read, kept in the database instead of the import's memory.

A re-import compares every entity of the files with what the register holds. Held in
Python - a dictionary of every organisation's fingerprints, a set of every code read -
that costs a couple of hundred bytes per entity of the register: 722 MB at a million
entities. Here the comparison goes by batches of the file's order instead:

- :meth:`ReadCodes.take` notes a batch of codes as read (a temporary table,
  ``import_read``, one row per code with its level) and answers the fingerprints the
  register holds for them (:class:`Known`, by the primary key), so memory holds one
  batch, whatever the size of the register;
- a code read twice is found by the same table (:attr:`Taken.twice`), as the set of
  codes read used to find it;
- what the files leave out (:meth:`ReadCodes.missing`) and which codes were read or are
  registered (:meth:`ReadCodes.read_and_registered`, for the replacement links) are
  queries against the register and the table, answered in chunks.

The table lives in the import's transaction (PostgreSQL drops it at commit; the
import's savepoint takes it away on error) and is dropped by :meth:`ReadCodes.drop`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Column, MetaData, String, Table, and_, exists, func, insert, select
from sqlalchemy.engine import Connection

from hierarchy.models import Organisation, table_of
from sorregistry.database import one_of

_CHUNK = 1000

Scope = Literal["owners", "full", "none"]


@dataclass(slots=True)
class Known:
    """What the register holds about one SOR code, enough to classify an incoming entity."""

    content_hash: str
    derived_hash: str
    version: int
    owner_sor_code: str
    level: str
    is_open: bool


@dataclass(frozen=True, slots=True)
class Missing:
    """An open organisation the files leave out: its level and current version."""

    sor_code: str
    level: str
    version: int


@dataclass(slots=True)
class Taken:
    """A batch's answer: the register's fingerprints of its codes, or the first code
    read before (*twice*: in an earlier batch or in this one; nothing of it was noted)."""

    known: dict[str, Known]
    twice: str | None = None


class ReadCodes:
    """The codes one import has read, in a temporary table of its connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.count = 0
        self.table = Table(
            "import_read",
            MetaData(),
            Column("sor_code", table_of(Organisation).c.sor_code.type, primary_key=True),
            Column("level", String(2), nullable=False),
            prefixes=["TEMPORARY"],
        )
        self.table.create(connection)
        self._organisations = table_of(Organisation)

    def take(self, codes: Sequence[tuple[str, str]]) -> Taken:
        """Note *codes* (code, level) as read; the register's fingerprints of those it
        holds, unless one of them was read before."""
        batch: dict[str, str] = {}
        for code, level in codes:
            if code in batch:
                return Taken({}, code)
            batch[code] = level
        names = list(batch)
        read = self.table
        again = self.connection.execute(
            select(read.c.sor_code)
            .where(one_of(read.c.sor_code, names, postgresql=self.postgres)).limit(1)
        ).scalar()
        if again is not None:
            return Taken({}, again)
        self._insert(batch)
        self.count += len(batch)
        org = self._organisations
        rows = self.connection.execute(
            select(
                org.c.sor_code,
                org.c.content_hash,
                org.c.derived_hash,
                org.c.version,
                org.c.owner_sor_code,
                org.c.level,
                org.c.valid_to,
            ).where(one_of(org.c.sor_code, names, postgresql=self.postgres))
        )
        return Taken({
            code: Known(content, derived, version, owner, level, valid_to is None)
            for code, content, derived, version, owner, level, valid_to in rows
        })

    def _insert(self, batch: dict[str, str]) -> None:
        if not self.postgres:
            self.connection.execute(
                insert(self.table), [{"sor_code": c, "level": lv} for c, lv in batch.items()]
            )
            return
        raw = self.connection.connection.driver_connection
        assert raw is not None
        # SOR codes and levels are digits and letters: nothing to escape in COPY's text.
        data = "".join(f"{code}\t{level}\n" for code, level in batch.items()).encode()
        with raw.cursor() as cursor:
            with cursor.copy("COPY import_read (sor_code, level) FROM STDIN") as copy:
                copy.write(data)

    def open_count(self) -> int:
        """How many open organisations the register holds (call it before the rows)."""
        org = self._organisations
        return int(
            self.connection.execute(
                select(func.count()).select_from(org).where(org.c.valid_to.is_(None))
            ).scalar_one()
        )

    def missing(self, scope: Scope, skipped: Collection[str]) -> list[Missing]:
        """The open organisations the files leave out, within *scope* (``owners``: those
        under an owner the files contain; ``full``: all), less the *skipped* codes.

        The rows read are written already, so an organisation not read is as the
        register held it before the import."""
        if scope == "none":
            return []
        if self.postgres:
            # A temporary table has no statistics until asked: plan the join on its size.
            self.connection.exec_driver_sql("ANALYZE import_read")
        org, read = self._organisations, self.table
        unread = ~exists().where(read.c.sor_code == org.c.sor_code)
        condition = and_(org.c.valid_to.is_(None), unread)
        if scope == "owners":
            owners = select(read.c.sor_code).where(read.c.level == "IE")
            condition = and_(condition, org.c.owner_sor_code.in_(owners))
        rows = self.connection.execute(
            select(org.c.sor_code, org.c.level, org.c.version)
            .where(condition)
            .order_by(org.c.sor_code)
        )
        return [Missing(code, level, version) for code, level, version in rows
                if code not in skipped]

    def read_and_registered(self, codes: Iterable[str]) -> tuple[set[str], set[str]]:
        """Of *codes*: those read from the files, and those the register holds now."""
        read, org = self.table, self._organisations
        was_read: set[str] = set()
        registered: set[str] = set()
        for chunk in _chunks(sorted(set(codes))):
            was_read.update(self.connection.execute(
                select(read.c.sor_code)
                .where(one_of(read.c.sor_code, chunk, postgresql=self.postgres))).scalars())
            registered.update(self.connection.execute(
                select(org.c.sor_code)
                .where(one_of(org.c.sor_code, chunk, postgresql=self.postgres))).scalars())
        return was_read, registered

    def drop(self) -> None:
        self.table.drop(self.connection)


def _chunks(codes: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(codes), _CHUNK):
        yield codes[start:start + _CHUNK]

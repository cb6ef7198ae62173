"""What every export format is given: the register's rows in tree order, and the export's facts.

The writers (``sor_xml``, ``csv_format``) are pure: they take an iterable of register
rows (mappings with the ``organisations`` table's columns), an output and an
:class:`ExportInfo`, and know nothing of databases. :func:`iter_rows` is the one reader
they are given here: the rows in ``path`` order, which is the tree's pre-order (a parent
before its children, each subtree contiguous), read in chunks of a fixed size by keyset
on the ``path`` index, so memory stays flat in the register's size. Run it inside one
transaction (REPEATABLE READ on PostgreSQL) and every chunk reads the same snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from hierarchy.models import Organisation, table_of
from sorregistry.database import DbSession

if TYPE_CHECKING:
    from typing import TypeAlias

    from _typeshed import SupportsWrite

    # Where a writer puts its bytes: a binary file (anything with write) or a function.
    Output: TypeAlias = SupportsWrite[bytes] | Callable[[bytes], object]

# A register row as the writers read it: the organisations table's columns by name.
Row = Mapping[str, Any]

CHUNK_SIZE = 2000


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """The facts every export states about itself.

    ``feed_position`` is the last change-feed position the snapshot contains: a mirror
    seeded from the file follows the feed after it (``feed_cursor``, when the feed gives
    one) and misses nothing.
    """

    snapshot_date: date
    created_at: datetime
    feed_position: int
    feed_cursor: str | None = None


def write_function(out: Output) -> Callable[[bytes], object]:
    """The function that writes to *out*: its ``write``, or *out* itself."""
    write = getattr(out, "write", None)
    if write is not None:
        return write  # type: ignore[no-any-return]
    assert callable(out)
    return out


def iter_rows(
    source: Connection | DbSession, on: date | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[Row]:
    """The register's rows in tree order (by ``path``), *chunk_size* at a time.

    With *on*, only the organisations in force that day (begun, not yet closed).
    """
    organisations = table_of(Organisation)
    statement = select(organisations).order_by(organisations.c.path).limit(chunk_size)
    if on is not None:
        statement = statement.where(
            or_(organisations.c.valid_from.is_(None), organisations.c.valid_from <= on),
            or_(organisations.c.valid_to.is_(None), organisations.c.valid_to > on),
        )
    last: str | None = None
    while True:
        page = statement if last is None else statement.where(organisations.c.path > last)
        rows = cast("Sequence[Row]", source.execute(page).mappings().all())
        yield from rows
        if len(rows) < chunk_size:
            return
        last = rows[-1]["path"]

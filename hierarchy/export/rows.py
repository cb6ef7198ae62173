"""What the SOR XML and CSV writers share: rows as mappings, and where their bytes go.

Those writers are pure: they take register rows (mappings with the ``organisations``
table's columns), an output and the snapshot's
:class:`~hierarchy.export.snapshot.ExportInfo` (the feed position and cursor, the day,
when it was taken), and know nothing of databases. The rows come from the export's one
snapshot (:func:`hierarchy.export.snapshot.open_snapshot`, in ``path`` order: a parent
before its units), as SQLAlchemy rows; :func:`mappings` gives their mapping view, so the
writers index columns by name whatever hands them the rows (the tests give plain dicts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from _typeshed import SupportsWrite

    # Where a writer puts its bytes: a binary file (anything with write) or a function.
    Output: TypeAlias = SupportsWrite[bytes] | Callable[[bytes], object]

# A register row as the writers read it: the organisations table's columns by name.
Row = Mapping[str, Any]


def mappings(rows: Iterable[Any]) -> Iterator[Row]:
    """*rows* as mappings: a SQLAlchemy row's ``_mapping``, a mapping as it is."""
    for row in rows:
        yield getattr(row, "_mapping", row)


def write_function(out: Output) -> Callable[[bytes], object]:
    """The function that writes to *out*: its ``write``, or *out* itself."""
    write = getattr(out, "write", None)
    if write is not None:
        return write  # type: ignore[no-any-return]
    assert callable(out)
    return out

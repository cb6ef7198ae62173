"""Helpers every package's commands share: failing with one line, tables, the role option.

A command that fails undoes its changes and says why in one line on stderr (exit 1),
never with a traceback: the operator reads a sentence, a script reads the status.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click

from sorregistry.extensions import db
from sorregistry.security import ROLES

T = TypeVar("T")
# bulk_work: the youngest generation collected every this many allocations (Python: 700).
BULK_GC_THRESHOLD = 20_000


def fail(reason: str | BaseException) -> NoReturn:
    """Undo the command's changes, say why on stderr and exit 1."""
    db.session.rollback()
    click.echo(f"Error: {reason}", err=True)
    sys.exit(1)


def format_time(moment: datetime | None) -> str:
    """A timestamp for a table: to the minute, in UTC like the database, ``-`` when unset."""
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print aligned columns of plain text: no borders or colour, so that a listing
    reads the same in a terminal, a pasted ticket and a log."""
    lines = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def echo_listing(items: Sequence[T], *, show_all: bool, shown_by_default: Callable[[T], bool],
                 headers: Sequence[str], row: Callable[[T], Sequence[str]], nothing: str,
                 hidden: str) -> None:
    """A table of *items*, those not *shown_by_default* (revoked, inactive) only with
    ``--all``, and a line saying how many were left out."""
    shown = list(items) if show_all else [item for item in items if shown_by_default(item)]
    if shown:
        echo_table(headers, [row(item) for item in shown])
    else:
        click.echo(nothing)
    left_out = len(items) - len(shown)
    if left_out:
        click.echo(f"({left_out} {hidden} not shown; --all lists them.)")


# --role, the same for API clients (create-client) and people (create-user).
ROLE_OPTION: Callable[[Any], Any] = click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice(list(ROLES)),
    help="Repeatable: " + ", ".join(ROLES) + ".")


def warn(line: str) -> None:
    """A line on stderr: a worker's notes and errors, apart from its summaries."""
    click.echo(line, err=True)


def worker_options(items: str, batch_help: str, interval: float,
                   loop_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of a queue worker's command (the outbox's, the webhooks'): ``--limit``,
    ``--batch``, ``--worker``, ``--loop``, ``--interval`` (*interval* seconds by default),
    passed as ``limit``, ``batch``, ``name``, ``loop``, ``interval``."""
    options = [
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help=f"Try at most this many {items} in this run (default: all that "
                          "are due)."),
        click.option("--batch", type=click.IntRange(min=1, max=500), default=10,
                     show_default=True, help=batch_help),
        click.option("--worker", "name", default=None,
                     help=f"This worker's name on the {items} (default: host:pid)."),
        click.option("--loop", is_flag=True, help=loop_help),
        click.option("--interval", type=click.FloatRange(min=0.1), default=interval,
                     show_default=True, help="Seconds between rounds with --loop."),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@contextmanager
def bulk_work() -> Iterator[None]:
    """For a command that streams a whole register through one process (an import): the
    cyclic garbage collector kept to what the work makes. The objects made before it -
    the app, its modules, SQLAlchemy's metadata - are frozen (``gc.freeze``: no
    collection walks them; garbage among them collected first), and the youngest
    generation is collected every 20,000 allocations instead of 700. A 1M import made
    ~4,300 young, ~390 middle and 35 full collections, ~12 s of its ~270 s, each full one
    walking every object of the process; its rows are freed by their reference counts,
    not by the collector. Restored when the block ends (a process that had frozen objects
    itself, a web worker, keeps them frozen)."""
    frozen_before = gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], BULK_GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not frozen_before:
            gc.unfreeze()

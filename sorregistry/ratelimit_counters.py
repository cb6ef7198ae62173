"""The rate-limit counters' table and the one statement that adds hits to it.

One row per bucket (a limit and whom it counts) and clock-aligned window; the upsert adds
hits and returns the window's total and the previous window's. Used by the request path's
storage (:mod:`sorregistry.ratelimit_storage`, which counts in memory and writes now and
then) and by the mail intake's per-sender count (:func:`add_hits`, in the caller's
transaction).
"""

from __future__ import annotations

import functools
import hashlib

from sqlalchemy import BigInteger, Index, String, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, aliased, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

from sorregistry.database import DbSession
from sorregistry.models import Base

# Buckets longer than this (a 254-character email in a login key) are stored as a digest.
BUCKET_LENGTH = 200


class RateCounter(Base):
    """Hits of one bucket (a limit and whom it counts) in one clock-aligned window."""

    __tablename__ = "rate_limits"
    __table_args__ = (Index("ix_rate_limits_expires_at", "expires_at"),)

    bucket: Mapped[str] = mapped_column(String(BUCKET_LENGTH), primary_key=True)
    # The window's start, in seconds since the epoch (a multiple of its length).
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                              autoincrement=False)
    hits: Mapped[int] = mapped_column(BigInteger)
    # When the row is of no more use (the end of the window after it), epoch seconds.
    expires_at: Mapped[int] = mapped_column(BigInteger)


def bucket_name(key: str) -> str:
    """*key* as stored: itself, or a digest when it is too long for the column."""
    if len(key) <= BUCKET_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@functools.cache
def add_hits_statement(dialect: str) -> ReturningInsert[int, int | None]:
    """The upsert that adds ``:hits`` hits to the window ``(:bucket, :window_start)`` and
    returns its total and the previous window's (``:previous_start``; None when that has
    no row); its parameters come from :func:`add_hits_parameters`.

    Built once per dialect: building it is ~0.8 ms of SQLAlchemy's work (an upsert with a
    subquery), more than the round trip it makes."""
    previous = aliased(RateCounter, name="previous")
    previous_hits = (select(previous.hits)
                     .where(previous.bucket == bindparam("bucket"),
                            previous.window_start == bindparam("previous_start"))
                     .scalar_subquery())
    if dialect == "postgresql":
        statement: postgresql.Insert | sqlite.Insert = postgresql.insert(RateCounter)
    elif dialect == "sqlite":
        statement = sqlite.insert(RateCounter)
    else:
        raise ValueError(f"rate limits in the database need PostgreSQL or SQLite, not {dialect}")
    statement = statement.values(bucket=bindparam("bucket"),
                                 window_start=bindparam("window_start"),
                                 hits=bindparam("hits"), expires_at=bindparam("expires_at"))
    upsert = statement.on_conflict_do_update(
        index_elements=[RateCounter.bucket, RateCounter.window_start],
        set_={"hits": RateCounter.hits + statement.excluded.hits})
    returning: ReturningInsert[int, int | None] = upsert.returning(
        RateCounter.hits, previous_hits)
    return returning


@functools.cache
def _driver_sql(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    compiled = add_hits_statement(dialect.name).compile(dialect=dialect)
    order = compiled.positiontup
    return str(compiled), None if order is None else tuple(order)


# A statement in the driver's own style and its parameters.
DriverCall = tuple[str, dict[str, str | int] | tuple[str | int, ...]]


def add_hits_driver_call(dialect: Dialect, key: str, window_start: int, expiry: int,
                         amount: int) -> DriverCall:
    """:func:`add_hits_statement` compiled once for *dialect*, and its parameters in the
    driver's style: for ``Connection.exec_driver_sql``, which skips SQLAlchemy's per-call
    statement work (half of the CPU time of a write on the request path's storage)."""
    sql, order = _driver_sql(dialect)
    parameters = add_hits_parameters(key, window_start, expiry, amount)
    return sql, parameters if order is None else tuple(parameters[name] for name in order)


def add_hits_parameters(key: str, window_start: int, expiry: int,
                        amount: int) -> dict[str, str | int]:
    """The parameters of :func:`add_hits_statement` for *amount* hits of *key*."""
    return {"bucket": bucket_name(key), "window_start": window_start,
            "previous_start": window_start - expiry, "hits": amount,
            "expires_at": window_start + 2 * expiry}


def add_hits(session: DbSession, key: str, window_start: int,
             expiry: int, amount: int = 1) -> int:
    """Add *amount* hits to *key*'s window in *session*'s transaction; the window's total.

    For counts that must commit or roll back with the caller's work (the mail intake's
    per-sender count); the request path uses :class:`DatabaseStorage`.
    """
    dialect = session.get_bind().dialect.name
    total, _previous = session.execute(
        add_hits_statement(dialect),
        add_hits_parameters(key, window_start, expiry, amount)).one()
    return total

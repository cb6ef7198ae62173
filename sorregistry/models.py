"""The declarative base shared by every package's models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so that migrations can name what they alter (and
# Alembic's batch mode can rebuild SQLite tables).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

def CodeString(length: int) -> String:
    """A code or search key compared byte by byte: collation "C" on PostgreSQL.

    SQLite compares bytes already. With the same collation both back ends sort
    alike, and PostgreSQL's ordinary B-tree indexes serve ``LIKE 'prefix%'``.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# A 64-bit key on PostgreSQL; SQLite only auto-increments INTEGER PRIMARY KEY.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")

# JSON documents, stored as text on every back end: the register reads them
# whole and filters on ordinary columns, and text is the fastest to load.
JsonDocument = JSON()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC on every back end.

    SQLite has no time zone type: values come back naive, so they are tagged
    as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

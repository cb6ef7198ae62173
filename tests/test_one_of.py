"""``sorregistry.database.one_of``: a column equal to one of many values, as the bulk
writers and the batch reads ask it - the same rows as an IN list on both back ends, and on
PostgreSQL one array parameter however many values there are."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.dialects import postgresql

from sorregistry.database import is_postgresql, one_of

_TABLE = Table("one_of_probe", MetaData(), Column("code", String(18), primary_key=True),
               Column("n", Integer))
CODES = [f"{i:015d}" for i in range(3000)]


def test_the_same_rows_as_an_in_list(session, backend):
    connection = session.connection()
    postgres = is_postgresql(session)
    assert postgres == (backend == "postgresql")
    assert is_postgresql(connection) == postgres
    _TABLE.create(connection)
    connection.execute(insert(_TABLE), [{"code": code, "n": i} for i, code in enumerate(CODES)])
    asked_codes = [*CODES[::7], "absent", "x' OR '1'='1", "ø\\%_"]
    asked_numbers = list(range(0, 3000, 11)) + [-1, 10**9]
    for column, asked in ((_TABLE.c.code, asked_codes), (_TABLE.c.n, asked_numbers)):
        for values in (asked, asked[:1], [], asked[:900]):
            found = connection.execute(
                select(_TABLE.c.code).where(one_of(column, values, postgresql=postgres))
            ).scalars().all()
            listed = connection.execute(
                select(_TABLE.c.code).where(column.in_(values))).scalars().all()
            assert sorted(found) == sorted(listed)
    # any iterable, read once
    found = connection.execute(select(_TABLE.c.code).where(
        one_of(_TABLE.c.code, iter(CODES[:5]), postgresql=postgres))).scalars().all()
    assert sorted(found) == CODES[:5]


def test_one_array_parameter_on_postgresql_whatever_the_count():
    dialect = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
    texts = set()
    for count in (1, 10, 1000):
        compiled = select(_TABLE.c.code).where(
            one_of(_TABLE.c.code, CODES[:count], postgresql=True)).compile(dialect=dialect)
        texts.add(str(compiled))
        assert list(compiled.params.values()) == [CODES[:count]]
    assert len(texts) == 1
    assert "= ANY (" in texts.pop()

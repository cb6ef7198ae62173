"""Refold the stored folded names with the forgiving fold (issue 15): ø/ö -> o, å -> a,
"aa"/"oe"/"ue" -> a/o/u (the rule: ``hierarchy.text``), and pg_trgm for fuzzy name search.

Every folded column is recomputed from the text it folds, in key order and in batches
(a register of a million rows is never held at once); only rows whose folded text
changes are written. ``organisation_names`` repeats ``organisations.name_search`` and is
refolded with it. On SQLite the FTS5 table follows ``organisations.name_search`` by its
triggers (migration 0002). The fold is the application's own (``hierarchy.text.fold``),
so what is stored is what the searches compare with.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 11:40:00

"""
import sqlalchemy as sa
from alembic import op

from hierarchy.text import fold

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_BATCH = 5000
# (table, its key, the text folded, the folded column)
_COLUMNS = (
    ("organisations", "sor_code", "name", "name_search"),
    ("shak_codes", "id", "text", "text_search"),
    ("applications", "id", "institution_name", "name_search"),
)


def _refold(connection, table, key, source, target):
    first = sa.text(f"SELECT {key}, {source}, {target} FROM {table} "
                    f"ORDER BY {key} LIMIT {_BATCH}")
    following = sa.text(f"SELECT {key}, {source}, {target} FROM {table} "
                        f"WHERE {key} > :after ORDER BY {key} LIMIT {_BATCH}")
    write = sa.text(f"UPDATE {table} SET {target} = :folded WHERE {key} = :key")
    write_names = sa.text("UPDATE organisation_names SET name_search = :folded "
                          "WHERE sor_code = :key")
    after = None
    while True:
        rows = (connection.execute(first) if after is None
                else connection.execute(following, {"after": after})).all()
        if not rows:
            return
        changed = [{"key": k, "folded": fold(text)} for k, text, stored in rows
                   if stored is not None and fold(text) != stored]
        if changed:
            connection.execute(write, changed)
            if table == "organisations":
                connection.execute(write_names, changed)
        after = rows[-1][0]


def upgrade():
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for table, key, source, target in _COLUMNS:
        _refold(connection, table, key, source, target)


def downgrade():
    # The older fold is not kept; the stored names stay in the forgiving fold, which
    # the older code compares with its own: only the searches of ø/å/"oe"/"aa" differ.
    pass

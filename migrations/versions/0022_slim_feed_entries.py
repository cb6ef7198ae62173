"""The feed's entries keep their item, not a copy of the organisation's columns.

An entry's item (0021) shows the organisation as it stood after the change; the copy of
its columns beside it doubled each entry's bytes (1.74 KB a row on average against the
item's 1.19 KB, at 20,000) and was read only to compare the next entry with, which now
compares with the item (hierarchy.feed.items), and by FHIR's history, which now reads
the item. Entries left without an item (a database an older tree wrote) are rendered
from the columns first. Downgrading puts the columns back, filled from the items.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 21:00:00

"""
from alembic import op
import orjson
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

BATCH = 5000
CODE = sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql')
COLUMNS = [
    ('name', sa.String(length=255)),
    ('level', sa.String(length=2)),
    ('entity_type', sa.String(length=20)),
    ('ownership', sa.String(length=10)),
    ('owner_cvr', sa.String(length=8)),
    ('ydernummer', sa.String(length=9)),
    ('shak', sa.String(length=7).with_variant(sa.String(length=7, collation='C'), 'postgresql')),
    ('p_number', sa.String(length=10)),
    ('parent_sor_code', CODE),
    ('institution_sor_code', CODE),
    ('owner_sor_code', CODE),
    ('effective', sa.JSON()),
    ('inherited', sa.JSON()),
    ('clinical_specialities', sa.JSON()),
    ('replaces', sa.JSON()),
    ('replaced_by', sa.JSON()),
    ('first_valid_from', sa.Date()),
    ('valid_from', sa.Date()),
    ('valid_to', sa.Date()),
    ('version', sa.Integer()),
]


def upgrade():
    try:
        # Entries an older tree wrote without an item (a benchmark's database): rendered
        # from the columns first (0021's rule).
        from hierarchy.feed.items import render_missing
    except ImportError:  # an older tree's code itself (bench/bench_feed.py)
        render_missing = None
    if render_missing is not None:
        render_missing(op.get_bind(), [name for name, _ in COLUMNS], BATCH)
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        for name, _ in COLUMNS:
            batch_op.drop_column(name)


def downgrade():
    # The columns as each item shows them (the app's inverse of rendering an item).
    from hierarchy.feed.items import organisation_columns
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    bind = op.get_bind()
    entries = sa.table('feed_entries', sa.column('id', sa.BigInteger()),
                       sa.column('item', sa.Text()), *[sa.column(n, k) for n, k in COLUMNS])
    update = (sa.update(entries).where(entries.c.id == sa.bindparam('_id'))
              .values({name: sa.bindparam(name, type_=kind) for name, kind in COLUMNS}))
    after = 0
    while True:
        rows = bind.execute(sa.select(entries.c.id, entries.c.item)
                            .where(entries.c.id > after, entries.c.item.is_not(None))
                            .order_by(entries.c.id).limit(BATCH)).all()
        if not rows:
            return
        bind.execute(update, [
            {'_id': row.id, **organisation_columns(orjson.loads(row.item)['organisation'])}
            for row in rows])
        after = rows[-1].id

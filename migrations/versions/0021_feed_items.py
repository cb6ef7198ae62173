"""The feed's items: each entry rendered once, when it is recorded (feed_entries.item).

A page of the feed is the stored texts joined (hierarchy.feed.items); the entries
recorded before this revision are rendered here, in batches, as the API shows them
today (their successors judged today).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 11:30:00

"""
from datetime import date

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('item', sa.Text(), nullable=True))
    try:
        # The app's renderer. bench/bench_feed.py migrates older code's databases with
        # this tree's migrations: that code has none, and writes no item either.
        from hierarchy.feed.entries import ENTRIES, JSON_COLUMNS, TARGET
        from hierarchy.feed.items import render_items
    except ImportError:
        return
    bind = op.get_bind()
    # As the renderer reads them: the JSON columns as their text.
    columns = [ENTRIES.c.id, *[
        sa.cast(ENTRIES.c[name], sa.Text).label(name) if name in JSON_COLUMNS
        else ENTRIES.c[name] for name in TARGET]]
    update = (
        sa.update(ENTRIES)
        .where(ENTRIES.c.id == sa.bindparam('_id'))
        .values(item=sa.bindparam('_item'))
    )
    after = 0
    while True:
        rows = bind.execute(
            sa.select(*columns).where(ENTRIES.c.id > after).order_by(ENTRIES.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        texts = render_items(bind, rows, date.today())
        bind.execute(update, [{'_id': row.id, '_item': text}
                              for row, text in zip(rows, texts, strict=True)])
        after = rows[-1].id


def downgrade():
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        batch_op.drop_column('item')

"""The feed's items: each entry rendered once, when it is recorded (feed_entries.item).

A page of the feed is the stored texts joined (hierarchy.feed.items); the entries
recorded before this revision are rendered here, in batches, as the API shows them
today (their successors judged today).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 11:30:00

"""
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
        from hierarchy.feed.items import render_missing
    except ImportError:
        return
    render_missing(op.get_bind(), STATE_COLUMNS, BATCH)


# The copy of the organisation's columns the entries held at this revision (0022 drops it).
STATE_COLUMNS = (
    "name", "level", "entity_type", "ownership", "owner_cvr", "ydernummer", "shak",
    "p_number", "parent_sor_code", "institution_sor_code", "owner_sor_code", "effective",
    "inherited", "clinical_specialities", "replaces", "replaced_by", "first_valid_from",
    "valid_from", "valid_to", "version",
)


def downgrade():
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        batch_op.drop_column('item')

"""The change feed: feed_entries (each change with the organisation's state after it) and
feed_state (the cursors' key, the last day ticked).

A register that holds organisations already gets one ``created`` entry per organisation,
showing it as it stands, at the position of its current version: a consumer reading the
feed from the start sees the whole register once, then every change after it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24 09:00:00

"""
import secrets
from datetime import date

from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

CODE = sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql')
STATE_COLUMNS = (
    "name", "level", "entity_type", "ownership", "owner_cvr", "ydernummer", "shak",
    "p_number", "parent_sor_code", "institution_sor_code", "owner_sor_code", "effective",
    "inherited", "clinical_specialities", "replaces", "replaced_by", "first_valid_from",
    "valid_from", "valid_to", "version",
)


def upgrade():
    op.create_table('feed_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('commit_id', sa.BigInteger(), nullable=False),
    sa.Column('commit_seq', sa.Integer(), nullable=False),
    sa.Column('sor_code', CODE, nullable=False),
    sa.Column('change', sa.String(length=12), nullable=False),
    sa.Column('changed_fields', sa.String(length=400), nullable=True),
    sa.Column('by_inheritance', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('took_effect_on', sa.Date(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('level', sa.String(length=2), nullable=False),
    sa.Column('entity_type', sa.String(length=20), nullable=True),
    sa.Column('ownership', sa.String(length=10), nullable=True),
    sa.Column('owner_cvr', sa.String(length=8), nullable=True),
    sa.Column('ydernummer', sa.String(length=9), nullable=True),
    sa.Column('shak', sa.String(length=7).with_variant(sa.String(length=7, collation='C'), 'postgresql'), nullable=True),
    sa.Column('p_number', sa.String(length=10), nullable=True),
    sa.Column('parent_sor_code', CODE, nullable=True),
    sa.Column('institution_sor_code', CODE, nullable=True),
    sa.Column('owner_sor_code', CODE, nullable=False),
    sa.Column('effective', sa.JSON(), nullable=False),
    sa.Column('inherited', sa.JSON(), nullable=False),
    sa.Column('clinical_specialities', sa.JSON(), nullable=True),
    sa.Column('replaces', sa.JSON(), nullable=True),
    sa.Column('replaced_by', sa.JSON(), nullable=True),
    sa.Column('first_valid_from', sa.Date(), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_entries')),
    sa.UniqueConstraint('commit_id', 'commit_seq', name=op.f('uq_feed_entries_commit_id'))
    )
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        batch_op.create_index('ix_feed_entries_sor_code_id', ['sor_code', 'id'], unique=False)

    op.create_table('feed_state',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('cursor_key', sa.String(length=64), nullable=False),
    sa.Column('ticked_through', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_feed_state'))
    )
    bind = op.get_bind()
    bind.execute(
        sa.text("INSERT INTO feed_state (name, cursor_key, ticked_through) "
                "VALUES ('feed', :key, :today)"),
        {"key": secrets.token_hex(32), "today": date.today()},
    )
    # The register as it stands, each organisation at its current version's position.
    columns = ", ".join(STATE_COLUMNS)
    copied = ", ".join(f"o.{name}" for name in STATE_COLUMNS)
    bind.execute(sa.text(
        "INSERT INTO feed_entries (commit_id, commit_seq, sor_code, change, by_inheritance, "
        f"recorded_at, source, reference, {columns}) "
        "SELECT v.commit_id, v.commit_seq, o.sor_code, 'created', false, v.recorded_at, "
        f"v.source, v.reference, {copied} "
        "FROM organisations o JOIN organisation_versions v "
        "ON v.sor_code = o.sor_code AND v.version = o.version"
    ))


def downgrade():
    op.drop_table('feed_state')
    with op.batch_alter_table('feed_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_feed_entries_sor_code_id')
    op.drop_table('feed_entries')

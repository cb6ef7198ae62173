"""Webhooks: subscriptions to the change feed and their signed deliveries (issue 13).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 09:30:00

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('webhook_subscriptions',
    sa.Column('id', BIG_KEY, autoincrement=True, nullable=False),
    sa.Column('client_id', BIG_KEY, nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('paused_reason', sa.Text(), nullable=True),
    sa.Column('last_position', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'paused')", name=op.f('ck_webhook_subscriptions_status')),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_webhook_subscriptions_client_id_api_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_subscriptions_client_id'), ['client_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', BIG_KEY, autoincrement=True, nullable=False),
    sa.Column('subscription_id', BIG_KEY, nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('sor_code', sa.String(length=18), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'sending', 'delivered', 'failed')", name=op.f('ck_webhook_deliveries_status')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ux_webhook_deliveries_subscription_position', ['subscription_id', 'position'], unique=True)
        batch_op.create_index('ix_webhook_deliveries_pending', ['subscription_id', 'status', 'position'], unique=False)


def downgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_pending')
        batch_op.drop_index('ux_webhook_deliveries_subscription_position')
    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_subscriptions_client_id'))
    op.drop_table('webhook_subscriptions')

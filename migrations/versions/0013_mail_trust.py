"""The mail intake's trust: how each sender was authenticated, and a per-sender rate.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-08 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('incoming_mails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authentication', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_incoming_mails_sender_received', ['sender', 'received_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('incoming_mails', schema=None) as batch_op:
        batch_op.drop_index('ix_incoming_mails_sender_received')
        batch_op.drop_column('authentication')

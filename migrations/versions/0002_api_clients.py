"""API clients: who may call the API, with which roles, by a hashed bearer token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:18:48.984494

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_clients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('cvr', sa.String(length=8), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=True),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_clients')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_api_clients_token_digest'))
    )
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_clients_cvr'), ['cvr'], unique=False)



def downgrade():
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_clients_cvr'))

    op.drop_table('api_clients')

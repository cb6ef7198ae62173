"""People who log in to the pages (issue 6): the users table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 13:06:14

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=True),
    sa.Column('cvr', sa.String(length=8), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )


def downgrade():
    op.drop_table('users')

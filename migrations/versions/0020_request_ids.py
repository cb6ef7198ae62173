"""Request ids on the register's commits (issue 17): the X-Request-Id of the request that
recorded a change, found from its version row or feed entry through commit_id.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 11:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('register_commits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('register_commits', schema=None) as batch_op:
        batch_op.drop_column('request_id')

"""The notification outbox (issue 5).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass

"""An application that closes a unit can say what replaces it (applications.replaced_by).

A change application's closing date may come with the SOR codes that take over from
the unit; approval names them on the unit (replaced_by) and the unit on them
(replaces). A JSON list of SOR codes, NULL when none.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('applications') as batch:
        batch.add_column(sa.Column('replaced_by', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('applications') as batch:
        batch.drop_column('replaced_by')

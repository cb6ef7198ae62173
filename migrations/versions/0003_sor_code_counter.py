"""The SOR code counter: allocation of new codes, never reused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 11:46:03.109820

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sor_code_counter',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('last_item', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sor_code_counter'))
    )
    # The first code allocated is item 90,000,000: clear of the national register's ids.
    op.execute("INSERT INTO sor_code_counter (name, last_item) VALUES ('sor', 89999999)")


def downgrade():
    op.drop_table('sor_code_counter')

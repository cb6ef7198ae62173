"""Indexes for finding an owner (IE) by CVR or by municipality.

An approval puts the new institution under its owner, found by the municipality's or
the company's CVR, else by the municipality's code (applications.service.approval).
Neither column had an index, so each approval read every municipal organisation:
73 ms of a 200,000-entity register (a bitmap scan of the 99,000 rows the ownership
index gives), five times that at a million. With these, a few index pages.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 05:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_organisations_level_cvr', 'organisations', ['level', 'cvr'])
    op.create_index('ix_organisations_level_municipality', 'organisations',
                    ['level', 'eff_municipality_code'])


def downgrade():
    op.drop_index('ix_organisations_level_municipality', table_name='organisations')
    op.drop_index('ix_organisations_level_cvr', table_name='organisations')

"""Mit CVR's lists in name order by walking an index.

"Mit CVR - Alle" and "- SI" list an owner's units (or institutions) in name order, 500
to a page, with the exact total. With only an index on ``owner_cvr``, PostgreSQL fetched every unit of the
owner and sorted the whole wide rows (JSON columns and all) to keep the first 500: 7.7 ms
of the server's time for a municipality of 1,465 units and 18.8 ms for an owner of 8,000
(200,000-entity register, side by side). This index holds the owner's units in the
page's order (``name_search``, ``sor_code``: both in collation "C"), so the page is the
first 500 entries of a walk of it - 5.2 and 4.6 ms; it carries ``level`` and the
validity dates, so the total is counted from the index alone (1.1 -> 0.7 ms, 5.2 -> 2.6
ms). It replaces the index on ``owner_cvr``, its leading column.

"- SI" (the owner's institutions, a fifth of its units) has an index of its own, of the
institutions only: walking the one above it would skip four units in five, and the
planner chose instead to intersect the owner's units with every institution of the
register (6.3 ms); with it, 0.7 ms.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 11:00:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_organisations_owner_cvr_name', 'organisations',
                    ['owner_cvr', 'name_search', 'sor_code'],
                    postgresql_include=['level', 'valid_from', 'valid_to'])
    op.create_index('ix_organisations_owner_cvr_si', 'organisations',
                    ['owner_cvr', 'name_search', 'sor_code'],
                    postgresql_include=['valid_from', 'valid_to'],
                    postgresql_where=sa.text("level = 'SI'"),
                    sqlite_where=sa.text("level = 'SI'"))
    op.drop_index('ix_organisations_owner_cvr', table_name='organisations')


def downgrade():
    op.create_index('ix_organisations_owner_cvr', 'organisations', ['owner_cvr'])
    op.drop_index('ix_organisations_owner_cvr_si', table_name='organisations')
    op.drop_index('ix_organisations_owner_cvr_name', table_name='organisations')

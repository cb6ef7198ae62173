"""Mit CVR's pages read from the index alone: the items' stamps carried in it.

A Mit CVR page is read by key (``hierarchy.search.keyrows``): which organisations, in
what order, and each one's stamp (``version``, ``content_hash``, ``derived_hash``), the
items themselves kept rendered per worker. Migration 0024's indexes hold the owner's
units in the page's order but not the stamps, so each of a page's 501 rows was fetched
from the table: 501 buffers, 0.85-0.95 ms of the server's time for a municipality's page
(200,000-entity register, EXPLAIN ANALYZE, four runs each way). With the stamps in the
index the page is an index-only scan: 14 buffers, 0.27-0.40 ms. Under 32 clients the
server's CPU is shared with the service's own, so a Mit CVR answer costs the machine
~0.5 ms less. The index is twice the size (17 -> 33 MB at 200,000; the hashes are 32
characters each). The scan is index-only where the table's pages are all-visible:
autovacuum marks them after an import; a page changed since is read from the table, as
before.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 22:00:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

_STAMP = ['version', 'content_hash', 'derived_hash']


def _indexes(stamp):
    op.drop_index('ix_organisations_owner_cvr_name', table_name='organisations')
    op.drop_index('ix_organisations_owner_cvr_si', table_name='organisations')
    op.create_index('ix_organisations_owner_cvr_name', 'organisations',
                    ['owner_cvr', 'name_search', 'sor_code'],
                    postgresql_include=['level', 'valid_from', 'valid_to', *stamp])
    op.create_index('ix_organisations_owner_cvr_si', 'organisations',
                    ['owner_cvr', 'name_search', 'sor_code'],
                    postgresql_include=['valid_from', 'valid_to', *stamp],
                    postgresql_where=sa.text("level = 'SI'"),
                    sqlite_where=sa.text("level = 'SI'"))


def upgrade():
    _indexes(_STAMP)


def downgrade():
    _indexes([])

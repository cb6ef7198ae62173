"""The FHIR directory's indexes: the type-level history (hierarchy.fhir.history) reads
versions in commit order - a unique index on organisation_versions (commit_id,
commit_seq), so that the versions of a window of feed positions are ranges of it, however
large their commit; and address-postalcode finds the postal code of a unit's visiting
address, kept only in its effective JSON - an index on that expression (PostgreSQL).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 08:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organisation_versions', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_organisation_versions_commit_id'),
                                          ['commit_id', 'commit_seq'])
    if op.get_bind().dialect.name == 'postgresql':
        # Made by hand, as 0002's trigram indexes (the models hold no expression index:
        # SQLite's reflection cannot read one back); "_expr" leaves it out of the
        # comparison with the models (migrations/env.py). SQLite scans.
        op.execute("CREATE INDEX ix_organisations_visiting_postal_code_expr ON organisations "
                   "((effective #>> '{visiting_address,postal_code}'))")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX ix_organisations_visiting_postal_code_expr")
    with op.batch_alter_table('organisation_versions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_organisation_versions_commit_id'),
                                 type_='unique')

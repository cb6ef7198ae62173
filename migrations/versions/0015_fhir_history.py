"""The FHIR type-level history (hierarchy.fhir.history) reads versions in commit order:
a unique index on organisation_versions (commit_id, commit_seq), so that the versions
of a window of feed positions are ranges of it, however large their commit.

Revision ID: 0015
Revises: 0013 (the change feed's 0014 is merged separately: this follows it then)
Create Date: 2026-12-05 08:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organisation_versions', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_organisation_versions_commit_id'),
                                          ['commit_id', 'commit_seq'])


def downgrade():
    with op.batch_alter_table('organisation_versions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_organisation_versions_commit_id'),
                                 type_='unique')

"""Feed positions in commit order for recorded changes (hierarchy.changes).

A transaction's recorded changes (organisation_versions) are numbered within it
(commit_seq) under a register_commits row (commit_id); at commit the transaction takes
its positions from register_version.last_position, under the lock of the bump.
Versions recorded before this migration become one commit, positions 1..N in the
order they were recorded (recorded_at, then id).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('register_commits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('first_position', sa.BigInteger(), nullable=True),
    sa.Column('changes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_register_commits')),
    sa.UniqueConstraint('first_position', name=op.f('uq_register_commits_first_position'))
    )
    with op.batch_alter_table('register_version') as batch:
        batch.add_column(sa.Column('last_position', sa.BigInteger(), nullable=False,
                                   server_default='0'))
    with op.batch_alter_table('organisation_versions') as batch:
        batch.add_column(sa.Column('commit_id', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('commit_seq', sa.Integer(), nullable=True))

    bind = op.get_bind()
    recorded = bind.execute(sa.text("SELECT count(*) FROM organisation_versions")).scalar_one()
    if recorded:
        commit_id = bind.execute(
            sa.text("INSERT INTO register_commits (first_position, changes) "
                    "VALUES (1, :n) RETURNING id"),
            {"n": recorded},
        ).scalar_one()
        # UPDATE ... FROM: PostgreSQL, and SQLite since 3.33.
        bind.execute(
            sa.text("UPDATE organisation_versions SET commit_id = :commit_id, "
                    "commit_seq = ranked.seq "
                    "FROM (SELECT id, row_number() OVER (ORDER BY recorded_at, id) AS seq "
                    "      FROM organisation_versions) AS ranked "
                    "WHERE organisation_versions.id = ranked.id"),
            {"commit_id": commit_id},
        )
        bind.execute(
            sa.text("UPDATE register_version SET last_position = :n WHERE name = 'register'"),
            {"n": recorded},
        )

    with op.batch_alter_table('organisation_versions') as batch:
        batch.alter_column('commit_id', existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column('commit_seq', existing_type=sa.Integer(), nullable=False)


def downgrade():
    with op.batch_alter_table('organisation_versions') as batch:
        batch.drop_column('commit_seq')
        batch.drop_column('commit_id')
    with op.batch_alter_table('register_version') as batch:
        batch.drop_column('last_position')
    op.drop_table('register_commits')

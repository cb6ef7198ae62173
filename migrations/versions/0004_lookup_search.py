"""Narrow search table for the lookups (issue 3), and the register version.

``organisation_names`` repeats the few columns a name search filters on
(~90 bytes a row against ~1.3 kB in ``organisations``), so that a type-ahead
and its exact total visit a small heap. On PostgreSQL its trigram index
replaces the one on ``organisations.name_search`` (name conditions go through
the narrow table now; one trigram index fewer to maintain during an import).
SQLite keeps its FTS5 table on ``organisations`` (migration 0002).

``register_version`` changes with every committed change of the register;
lookups cache answers per worker under it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _code(length):
    return sa.String(length=length).with_variant(sa.String(length=length, collation='C'),
                                                 'postgresql')


def upgrade():
    op.create_table('organisation_names',
    sa.Column('sor_code', _code(18), nullable=False),
    sa.Column('name_search', _code(255), nullable=False),
    sa.Column('level', sa.String(length=2), nullable=False),
    sa.Column('ownership', sa.String(length=10), nullable=True),
    sa.Column('owner_cvr', sa.String(length=8), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('sor_code', name=op.f('pk_organisation_names'))
    )
    op.execute(
        "INSERT INTO organisation_names "
        "(sor_code, name_search, level, ownership, owner_cvr, valid_from, valid_to) "
        "SELECT sor_code, name_search, level, ownership, owner_cvr, valid_from, valid_to "
        "FROM organisations"
    )
    op.create_index('ix_organisation_names_name_search', 'organisation_names',
                    ['name_search', 'sor_code'], unique=False,
                    postgresql_include=['valid_from', 'valid_to'])
    op.create_table('register_version',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('stamp', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_register_version'))
    )
    op.execute("INSERT INTO register_version (name, version, stamp) VALUES ('register', 0, '')")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_organisation_names_name_trgm ON organisation_names "
            "USING gin (name_search gin_trgm_ops)"
        )
        op.execute("DROP INDEX IF EXISTS ix_organisations_name_trgm")
        op.execute("ANALYZE organisation_names")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_organisations_name_trgm ON organisations "
            "USING gin (name_search gin_trgm_ops)"
        )
        op.execute("DROP INDEX IF EXISTS ix_organisation_names_name_trgm")
    op.drop_table('register_version')
    op.drop_index('ix_organisation_names_name_search', table_name='organisation_names')
    op.drop_table('organisation_names')

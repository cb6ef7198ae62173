"""The register (organisations, versions, import runs, SHAK codes) and API clients.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 11:24:48.748590

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_clients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('cvr', sa.String(length=8), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=True),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_clients')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_api_clients_token_digest'))
    )
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_clients_cvr'), ['cvr'], unique=False)

    op.create_table('import_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=30), nullable=False),
    sa.Column('snapshot_date', sa.Date(), nullable=True),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('started_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_runs'))
    )
    op.create_table('organisations',
    sa.Column('sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=False),
    sa.Column('level', sa.String(length=2), nullable=False),
    sa.Column('parent_sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('entity_type', sa.String(length=20), nullable=True),
    sa.Column('cvr', sa.String(length=8), nullable=True),
    sa.Column('shak', sa.String(length=7).with_variant(sa.String(length=7, collation='C'), 'postgresql'), nullable=True),
    sa.Column('ydernummer', sa.String(length=9), nullable=True),
    sa.Column('gln', sa.String(length=13), nullable=True),
    sa.Column('gln_inherited', sa.Boolean(), nullable=False),
    sa.Column('p_number', sa.String(length=10), nullable=True),
    sa.Column('postal_address', sa.JSON(), nullable=True),
    sa.Column('visiting_address', sa.JSON(), nullable=True),
    sa.Column('activity_address', sa.JSON(), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('fax', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('website', sa.String(length=255), nullable=True),
    sa.Column('clinical_specialities', sa.JSON(), nullable=True),
    sa.Column('replaces', sa.JSON(), nullable=True),
    sa.Column('replaced_by', sa.JSON(), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=True),
    sa.Column('first_valid_from', sa.Date(), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('source_updated_at', sa.Date(), nullable=True),
    sa.Column('path', sa.String(length=400).with_variant(sa.String(length=400, collation='C'), 'postgresql'), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('owner_sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=False),
    sa.Column('institution_sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=True),
    sa.Column('ownership', sa.String(length=10), nullable=True),
    sa.Column('owner_cvr', sa.String(length=8), nullable=True),
    sa.Column('name_search', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'), nullable=False),
    sa.Column('effective', sa.JSON(), nullable=False),
    sa.Column('inherited', sa.JSON(), nullable=False),
    sa.Column('eff_postal_code', sa.String(length=10), nullable=True),
    sa.Column('eff_municipality_code', sa.String(length=4), nullable=True),
    sa.Column('eff_region_code', sa.String(length=4), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=32), nullable=False),
    sa.Column('derived_hash', sa.String(length=32), nullable=False),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_sor_code'], ['organisations.sor_code'], name=op.f('fk_organisations_parent_sor_code_organisations')),
    sa.PrimaryKeyConstraint('sor_code', name=op.f('pk_organisations'))
    )
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisations_eff_postal_code'), ['eff_postal_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_organisations_entity_type'), ['entity_type'], unique=False)
        batch_op.create_index('ix_organisations_name_search', ['name_search'], unique=False)
        batch_op.create_index(batch_op.f('ix_organisations_owner_cvr'), ['owner_cvr'], unique=False)
        batch_op.create_index(batch_op.f('ix_organisations_ownership'), ['ownership'], unique=False)
        batch_op.create_index(batch_op.f('ix_organisations_parent_sor_code'), ['parent_sor_code'], unique=False)
        batch_op.create_index('ix_organisations_path', ['path'], unique=False)
        batch_op.create_index(batch_op.f('ix_organisations_shak'), ['shak'], unique=False)
        batch_op.create_index(batch_op.f('ix_organisations_ydernummer'), ['ydernummer'], unique=False)

    op.create_table('organisation_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('superseded_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('import_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['import_run_id'], ['import_runs.id'], name=op.f('fk_organisation_versions_import_run_id_import_runs')),
    sa.ForeignKeyConstraint(['sor_code'], ['organisations.sor_code'], name=op.f('fk_organisation_versions_sor_code_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisation_versions')),
    sa.UniqueConstraint('sor_code', 'version', name=op.f('uq_organisation_versions_sor_code'))
    )
    op.create_table('shak_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=7).with_variant(sa.String(length=7, collation='C'), 'postgresql'), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('hospital', sa.String(length=4).with_variant(sa.String(length=4, collation='C'), 'postgresql'), nullable=False),
    sa.Column('record_type', sa.String(length=3), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('changed', sa.Date(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_search', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'), nullable=False),
    sa.Column('agrp', sa.String(length=10), nullable=True),
    sa.Column('bgrp', sa.String(length=10), nullable=True),
    sa.Column('cgrp', sa.String(length=10), nullable=True),
    sa.Column('dgrp', sa.String(length=10), nullable=True),
    sa.Column('egrp', sa.String(length=10), nullable=True),
    sa.Column('dval', sa.String(length=10), nullable=True),
    sa.Column('import_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['import_run_id'], ['import_runs.id'], name=op.f('fk_shak_codes_import_run_id_import_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shak_codes')),
    sa.UniqueConstraint('code', 'valid_from', name='uq_shak_codes_code_valid_from')
    )
    with op.batch_alter_table('shak_codes', schema=None) as batch_op:
        batch_op.create_index('ix_shak_codes_code', ['code'], unique=False)
        batch_op.create_index(batch_op.f('ix_shak_codes_hospital'), ['hospital'], unique=False)



def downgrade():
    with op.batch_alter_table('shak_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shak_codes_hospital'))
        batch_op.drop_index('ix_shak_codes_code')

    op.drop_table('shak_codes')
    op.drop_table('organisation_versions')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisations_ydernummer'))
        batch_op.drop_index(batch_op.f('ix_organisations_shak'))
        batch_op.drop_index('ix_organisations_path')
        batch_op.drop_index(batch_op.f('ix_organisations_parent_sor_code'))
        batch_op.drop_index(batch_op.f('ix_organisations_ownership'))
        batch_op.drop_index(batch_op.f('ix_organisations_owner_cvr'))
        batch_op.drop_index('ix_organisations_name_search')
        batch_op.drop_index(batch_op.f('ix_organisations_entity_type'))
        batch_op.drop_index(batch_op.f('ix_organisations_eff_postal_code'))

    op.drop_table('organisations')
    op.drop_table('import_runs')
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_clients_cvr'))

    op.drop_table('api_clients')

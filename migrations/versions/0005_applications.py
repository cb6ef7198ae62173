"""Applications for SOR codes: the application, its events and attachments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 12:50:00

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('applications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=False),
    sa.Column('municipality_cvr', sa.String(length=8), nullable=True),
    sa.Column('contact_email', sa.String(length=254), nullable=True),
    sa.Column('institution_name', sa.String(length=200), nullable=True),
    sa.Column('street', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=10), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('fax', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('website', sa.String(length=300), nullable=True),
    sa.Column('institution_type', sa.String(length=20), nullable=True),
    sa.Column('ownership', sa.String(length=10), nullable=True),
    sa.Column('owner_cvr', sa.String(length=8), nullable=True),
    sa.Column('owner_name', sa.String(length=200), nullable=True),
    sa.Column('ydernummer', sa.String(length=9), nullable=True),
    sa.Column('gln', sa.String(length=13), nullable=True),
    sa.Column('shak', sa.String(length=7), nullable=True),
    sa.Column('target_sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=True),
    sa.Column('closing_date', sa.Date(), nullable=True),
    sa.Column('remarks', sa.Text(), nullable=True),
    sa.Column('sor_code', sa.String(length=18).with_variant(sa.String(length=18, collation='C'), 'postgresql'), nullable=True),
    sa.Column('name_search', sa.String(length=200).with_variant(sa.String(length=200, collation='C'), 'postgresql'), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_by_client', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applications'))
    )
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.create_index('ix_applications_municipality_status', ['municipality_code', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_applications_owner_cvr'), ['owner_cvr'], unique=False)
        batch_op.create_index(batch_op.f('ix_applications_postal_code'), ['postal_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_applications_sor_code'), ['sor_code'], unique=False)
        batch_op.create_index('ix_applications_status_submitted', ['status', 'submitted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_applications_target_sor_code'), ['target_sor_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_applications_ydernummer'), ['ydernummer'], unique=False)

    op.create_table('application_attachments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_application_attachments_application_id_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_application_attachments'))
    )
    with op.batch_alter_table('application_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_attachments_application_id'), ['application_id'], unique=False)

    op.create_table('application_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['applications.id'], name=op.f('fk_application_events_application_id_applications')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_application_events'))
    )
    with op.batch_alter_table('application_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_events_application_id'), ['application_id'], unique=False)



def downgrade():
    with op.batch_alter_table('application_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_events_application_id'))

    op.drop_table('application_events')
    with op.batch_alter_table('application_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_attachments_application_id'))

    op.drop_table('application_attachments')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_applications_ydernummer'))
        batch_op.drop_index(batch_op.f('ix_applications_target_sor_code'))
        batch_op.drop_index('ix_applications_status_submitted')
        batch_op.drop_index(batch_op.f('ix_applications_sor_code'))
        batch_op.drop_index(batch_op.f('ix_applications_postal_code'))
        batch_op.drop_index(batch_op.f('ix_applications_owner_cvr'))
        batch_op.drop_index('ix_applications_municipality_status')

    op.drop_table('applications')

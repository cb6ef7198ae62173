"""Emailed applications: the mail ledger and triage (issue 4).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 12:50:00

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('municipality_contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_municipality_contacts')),
    sa.UniqueConstraint('email', name=op.f('uq_municipality_contacts_email'))
    )
    with op.batch_alter_table('municipality_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_municipality_contacts_municipality_code'), ['municipality_code'], unique=False)

    op.create_table('incoming_mails',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('mailbox', sa.String(length=255), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('received_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('processed_at', sorregistry.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('application_id', sa.BigInteger(), nullable=True),
    sa.Column('application_reference', sa.String(length=50), nullable=True),
    sa.Column('triage_reason', sa.String(length=40), nullable=True),
    sa.Column('triage_status', sa.String(length=10), nullable=True),
    sa.Column('resolved_by', sa.String(length=255), nullable=True),
    sa.Column('resolved_at', sorregistry.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=True),
    sa.Column('problems', sa.JSON(), nullable=True),
    sa.Column('attachments', sa.JSON(), nullable=True),
    sa.CheckConstraint("outcome IN ('application', 'triage')", name=op.f('ck_incoming_mails_outcome')),
    sa.CheckConstraint("triage_status IS NULL OR triage_status IN ('open', 'resolved')", name=op.f('ck_incoming_mails_triage_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incoming_mails')),
    sa.UniqueConstraint('message_id', name=op.f('uq_incoming_mails_message_id'))
    )
    with op.batch_alter_table('incoming_mails', schema=None) as batch_op:
        batch_op.create_index('ix_incoming_mails_location', ['mailbox', 'uidvalidity', 'uid'], unique=False)
        batch_op.create_index(batch_op.f('ix_incoming_mails_triage_status'), ['triage_status'], unique=False)


def downgrade():
    with op.batch_alter_table('incoming_mails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incoming_mails_triage_status'))
        batch_op.drop_index('ix_incoming_mails_location')

    op.drop_table('incoming_mails')
    with op.batch_alter_table('municipality_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_municipality_contacts_municipality_code'))

    op.drop_table('municipality_contacts')

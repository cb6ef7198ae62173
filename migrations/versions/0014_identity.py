"""Logging in with the national identity (issue 16): people and systems linked to an
identity provider's (issuer, subject), the ID token kept with a login session for
RP-initiated logout, and the roles SDS staff grant (role_grants).

users: oidc_issuer, oidc_subject (unique together), organisation, person_uuid; email and
password_hash may be empty (a person from the identity provider has no password).
api_clients: oidc_issuer, oidc_subject (unique together); token_digest and cvr may be
empty (a system calling with access tokens has no token of ours, its CVR is per token).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 08:00:00

"""
from alembic import op
import sqlalchemy as sa

import sorregistry.models


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIME = sorregistry.models.UTCDateTime(timezone=True)


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.alter_column('email', existing_type=sa.String(length=254), nullable=True)
        batch.alter_column('password_hash', existing_type=sa.String(length=255), nullable=True)
        batch.add_column(sa.Column('oidc_issuer', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('oidc_subject', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('organisation', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('person_uuid', sa.String(length=255), nullable=True))
        batch.create_unique_constraint(batch.f('uq_users_oidc_issuer'),
                                       ['oidc_issuer', 'oidc_subject'])
    with op.batch_alter_table('api_clients') as batch:
        batch.alter_column('token_digest', existing_type=sa.String(length=64), nullable=True)
        batch.alter_column('cvr', existing_type=sa.String(length=8), nullable=True)
        batch.add_column(sa.Column('oidc_issuer', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('oidc_subject', sa.String(length=255), nullable=True))
        batch.create_unique_constraint(batch.f('uq_api_clients_oidc_issuer'),
                                       ['oidc_issuer', 'oidc_subject'])
    with op.batch_alter_table('login_sessions') as batch:
        batch.add_column(sa.Column('id_token', sa.Text(), nullable=True))
    op.create_table('role_grants',
    sa.Column('id', BIGINT, autoincrement=True, nullable=False),
    sa.Column('oidc_issuer', sa.String(length=255), nullable=True),
    sa.Column('oidc_subject', sa.String(length=255), nullable=True),
    sa.Column('cvr', sa.String(length=8), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('municipality_code', sa.String(length=4), nullable=True),
    sa.Column('granted_by', sa.String(length=254), nullable=True),
    sa.Column('created_at', TIME, nullable=False),
    sa.Column('revoked_at', TIME, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_grants'))
    )
    op.create_index(op.f('ix_role_grants_oidc_subject'), 'role_grants', ['oidc_subject'])
    op.create_index(op.f('ix_role_grants_cvr'), 'role_grants', ['cvr'])


def downgrade():
    op.drop_index(op.f('ix_role_grants_cvr'), table_name='role_grants')
    op.drop_index(op.f('ix_role_grants_oidc_subject'), table_name='role_grants')
    op.drop_table('role_grants')
    with op.batch_alter_table('login_sessions') as batch:
        batch.drop_column('id_token')
    # Rows of the identity provider's systems and people have no token or password:
    # they cannot survive the old schema.
    op.execute("DELETE FROM api_clients WHERE token_digest IS NULL")
    with op.batch_alter_table('api_clients') as batch:
        batch.drop_constraint(batch.f('uq_api_clients_oidc_issuer'), type_='unique')
        batch.drop_column('oidc_subject')
        batch.drop_column('oidc_issuer')
        batch.alter_column('cvr', existing_type=sa.String(length=8), nullable=False)
        batch.alter_column('token_digest', existing_type=sa.String(length=64), nullable=False)
    op.execute("DELETE FROM login_sessions WHERE user_id IN "
               "(SELECT id FROM users WHERE password_hash IS NULL)")
    op.execute("DELETE FROM users WHERE password_hash IS NULL OR email IS NULL")
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint(batch.f('uq_users_oidc_issuer'), type_='unique')
        batch.drop_column('person_uuid')
        batch.drop_column('organisation')
        batch.drop_column('oidc_subject')
        batch.drop_column('oidc_issuer')
        batch.alter_column('password_hash', existing_type=sa.String(length=255), nullable=False)
        batch.alter_column('email', existing_type=sa.String(length=254), nullable=False)

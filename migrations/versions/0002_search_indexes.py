"""Text search on the folded name: pg_trgm on PostgreSQL, FTS5 trigram on SQLite.

Both answer "name contains x" on ``organisations.name_search`` (lower case,
accents removed, æ/ø/å spelled out) from an index, so a type-ahead stays fast
on a register of 200,000 entities.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_organisations_name_trgm ON organisations "
            "USING gin (name_search gin_trgm_ops)"
        )
        op.execute(
            "CREATE INDEX ix_shak_codes_text_trgm ON shak_codes "
            "USING gin (text_search gin_trgm_ops)"
        )
    elif dialect == "sqlite":
        # External content: the FTS table indexes organisations.name_search by
        # rowid; triggers keep it in step. (After a VACUUM, which may renumber
        # rowids, rebuild it: INSERT INTO organisations_search(organisations_search)
        # VALUES ('rebuild').)
        op.execute(
            "CREATE VIRTUAL TABLE organisations_search USING fts5("
            "name_search, content='organisations', content_rowid='rowid', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER organisations_search_insert AFTER INSERT ON organisations BEGIN "
            "INSERT INTO organisations_search(rowid, name_search) "
            "VALUES (new.rowid, new.name_search); END"
        )
        op.execute(
            "CREATE TRIGGER organisations_search_delete AFTER DELETE ON organisations BEGIN "
            "INSERT INTO organisations_search(organisations_search, rowid, name_search) "
            "VALUES ('delete', old.rowid, old.name_search); END"
        )
        op.execute(
            "CREATE TRIGGER organisations_search_update AFTER UPDATE OF name_search "
            "ON organisations BEGIN "
            "INSERT INTO organisations_search(organisations_search, rowid, name_search) "
            "VALUES ('delete', old.rowid, old.name_search); "
            "INSERT INTO organisations_search(rowid, name_search) "
            "VALUES (new.rowid, new.name_search); END"
        )
        op.execute("INSERT INTO organisations_search(organisations_search) VALUES ('rebuild')")


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_shak_codes_text_trgm")
        op.execute("DROP INDEX IF EXISTS ix_organisations_name_trgm")
    elif dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS organisations_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS organisations_search")

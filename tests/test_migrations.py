"""The migrations make exactly the schema the models describe, on each back end."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sorregistry.extensions import db


def _include(obj, name, type_, reflected, compare_to) -> bool:
    """As migrations/env.py: the hand-made text-search objects are not in the models."""
    if type_ == "table" and name and name.startswith("organisations_search"):
        return False
    return not (type_ == "index" and name and name.endswith(("_trgm", "_expr")))


def test_models_and_migrations_agree(app, session):
    context = MigrationContext.configure(
        session.connection(), opts={"include_object": _include}
    )
    assert compare_metadata(context, db.metadata) == []

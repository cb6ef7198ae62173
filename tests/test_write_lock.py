"""sorregistry.database.begin_write: SQLite's one writer is taken first, so writers queue."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from sorregistry import create_app
from sorregistry.database import begin_write
from sorregistry.extensions import db
from tests.conftest import _migrate


def _locked(path: str) -> bool:
    """Whether another connection, not willing to wait, is refused SQLite's write lock."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


@pytest.mark.parametrize("begun", [False, True], ids=["fresh", "begun-already"])
def test_begin_write_holds_the_lock_until_the_end(tmp_path, begun):
    """SQLite only: on PostgreSQL begin_write does nothing (rows are locked there)."""
    path = str(tmp_path / "register.db")
    _migrate(f"sqlite:///{path}")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        try:
            if begun:  # a transaction that has begun (and read) before it writes
                db.session.execute(text("SELECT count(*) FROM organisations")).scalar()
                assert not _locked(path)
            begin_write(db.session)
            assert _locked(path)
            db.session.rollback()
            assert not _locked(path)
        finally:
            db.session.remove()
            db.engine.dispose()

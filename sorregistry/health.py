"""Is this instance able to serve? For load balancers, orchestrators and monitoring.

``GET /api/v1/health`` needs no token and tells nothing about the register's content:
whether the database answers, whether its schema is the one this code expects (the
newest migration), and the register version the lookups' answers are filed under.
200 when all is well, 503 otherwise - so a proxy sends no traffic to an instance whose
database is gone or not yet migrated. Never cached.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from alembic.script import ScriptDirectory
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from sorregistry.errors import database_unavailable
from sorregistry.extensions import db
from sorregistry.responses import json_response

blp = Blueprint("health", __name__, description="Health of this instance / Tilstand")


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class HealthSchema(Schema):
    status = fields.String(**_d("ok, or unavailable (then the status is 503)",
                                "ok eller unavailable (så er status 503)"))
    database = fields.String(**_d("ok or unreachable", "ok eller unreachable"))
    schema = fields.String(**_d("current, behind (run sorregistry db upgrade), ahead (older "
                                "code than the database) or unknown",
                                "databaseskemaets tilstand"))
    schema_revision = fields.String(allow_none=True, **_d("The database's migration",
                                                          "Databasens migrering"))
    expected_revision = fields.String(**_d("The newest migration of this code",
                                           "Kodens nyeste migrering"))
    register_version = fields.Integer(allow_none=True, **_d(
        "Changes at every committed change of the register", "Registrets version"))
    checked_in_ms = fields.Float(**_d("How long the check took", "Kontrollens varighed"))


@functools.cache
def _revisions(directory: str) -> tuple[str, frozenset[str]]:
    """The newest migration of the code, and every migration it knows."""
    scripts = ScriptDirectory(directory)
    head = scripts.get_current_head()
    assert head is not None
    return head, frozenset(script.revision for script in scripts.walk_revisions())


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema,
                      description="The database is unreachable or its schema is not this "
                                  "code's / databasen svarer ikke, eller skemaet passer ikke")
    def get(self) -> Any:
        """Whether this instance can serve: database, schema, register version."""
        started = time.perf_counter()
        expected, known = _revisions(current_app.extensions["migrate"].directory)
        body: dict[str, Any] = {"status": "ok", "database": "ok", "schema": "current",
                                "schema_revision": None, "expected_revision": expected,
                                "register_version": None}
        try:
            body["schema_revision"] = db.session.execute(
                text("SELECT version_num FROM alembic_version")).scalar()
            body["register_version"] = db.session.execute(
                text("SELECT version FROM register_version WHERE name = 'register'")).scalar()
        except SQLAlchemyError as exc:
            db.session.rollback()
            if database_unavailable(exc):
                body["database"], body["schema"] = "unreachable", "unknown"
            else:  # it answers, but its tables are missing: never (fully) migrated
                body["schema"] = "behind"
        finally:
            db.session.rollback()
        revision = body["schema_revision"]
        if body["schema"] == "current" and revision != expected:
            body["schema"] = "behind" if revision in known or revision is None else "ahead"
        if body["database"] != "ok" or body["schema"] != "current":
            body["status"] = "unavailable"
        body["checked_in_ms"] = round((time.perf_counter() - started) * 1000, 2)
        response = json_response(body, status=200 if body["status"] == "ok" else 503)
        response.headers["Cache-Control"] = "no-store"
        return response

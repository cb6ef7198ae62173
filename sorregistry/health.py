"""Is this instance able to serve? For load balancers, orchestrators and monitoring.

``GET /api/v1/health`` needs no token and tells nothing about the register's content:
whether the database answers, whether its schema is the one this code expects (the
newest migration), the register version the lookups' answers are filed under, and each
database's role and lag (the primary, and the hot standbys of ``sorregistry.replicas``:
``replica-1``... in the order of ``SOR_DATABASE_READ_URL``'s hosts; no host names).
200 when the instance can serve (also when the database is a migration ahead of this
code, as in a rolling deploy that migrates first), 503 otherwise - so a proxy sends no
traffic to an instance whose database is gone or not yet migrated. Never cached.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import orjson
from alembic.script import ScriptDirectory
from flask import Flask, Response, current_app
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.api import register_api
from sorregistry.database import DbSession
from sorregistry.errors import database_unavailable
from sorregistry.extensions import db
from sorregistry.ratelimit import exempt
from sorregistry.replicas import replicas_of

blp = Blueprint("health", __name__, description="Health of this instance / Tilstand")
_REGISTER_VERSION = "sor.health.register_version"
# Reads the register's version in a session: (number, stamp), or None when unknown.
VersionReader = Callable[[DbSession], tuple[int, str] | None]


def init_app(app: Flask) -> None:
    register_api(app, blp, url_prefix="/api/v1")


def report_register_version(app: Flask, read: VersionReader) -> None:
    """Let the health answer show the register's version, as *read* tells it (the
    register feature gives it; the core knows no register)."""
    app.extensions[_REGISTER_VERSION] = read


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class DatabaseSchema(Schema):
    name = fields.String(**_d("primary, or replica-N: the Nth host of SOR_DATABASE_READ_URL",
                              "primary eller replica-N"))
    role = fields.String(**_d("primary, standby or unreachable",
                              "primary, standby eller unreachable"))
    lag_seconds = fields.Float(allow_none=True, **_d(
        "How far behind the primary it replays (0 for the primary)",
        "Hvor langt bagud den er"))
    used = fields.Boolean(**_d("Whether reads go to it now (a standby lagging more than "
                               "SOR_REPLICA_MAX_LAG is skipped)", "Om der læses fra den"))


class HealthSchema(Schema):
    status = fields.String(**_d("ok, or unavailable (then the status is 503)",
                                "ok eller unavailable (så er status 503)"))
    database = fields.String(**_d("ok or unreachable", "ok eller unreachable"))
    schema = fields.String(**_d("current, behind (run sorregistry db upgrade), ahead (older "
                                "code than the database) or unknown",
                                "databaseskemaets tilstand"))
    schema_revision = fields.String(allow_none=True, **_d("The database's migration",
                                                          "Databasens migrering"))
    expected_revision = fields.String(allow_none=True, **_d(
        "The newest migration of this code", "Kodens nyeste migrering"))
    register_version = fields.Integer(allow_none=True, **_d(
        "Changes at every committed change of the register", "Registrets version"))
    databases = fields.List(fields.Nested(DatabaseSchema), **_d(
        "Each database's role and lag", "Hver databases rolle og forsinkelse"))
    checked_in_ms = fields.Float(**_d("How long the check took", "Kontrollens varighed"))


@functools.cache
def _revisions(directory: str) -> tuple[str, frozenset[str]]:
    """The newest migration of the code, and every migration it knows."""
    scripts = ScriptDirectory(directory)
    head = scripts.get_current_head()  # raises when there are several
    if head is None:
        raise LookupError(f"no migrations in {directory}")
    return head, frozenset(script.revision for script in scripts.walk_revisions())


@blp.route("/health")
@exempt  # load balancers ask often; it must answer whoever asks
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema,
                      description="The database is unreachable or its schema is behind this "
                                  "code's / databasen svarer ikke, eller skemaet er bagud")
    def get(self) -> Any:
        """Whether this instance can serve: database, schema, register version."""
        started = time.perf_counter()
        body: dict[str, Any] = {"status": "ok", "database": "ok", "schema": "current",
                                "schema_revision": None, "expected_revision": None,
                                "register_version": None}
        try:
            expected, known = _revisions(current_app.extensions["migrate"].directory)
            body["expected_revision"] = expected
        except Exception:  # no migrations folder, several heads: say so, and log it
            current_app.logger.exception("health: the code's migrations cannot be read")
            expected, known, body["schema"] = None, frozenset(), "unknown"
        primary: dict[str, Any] = {"name": "primary", "role": "unreachable",
                                   "lag_seconds": None, "used": False}
        body["databases"] = [primary]
        try:
            primary["role"] = _role(db.session)
            primary["lag_seconds"], primary["used"] = 0.0, True
            body["schema_revision"] = db.session.execute(
                text("SELECT version_num FROM alembic_version")).scalar()
            read_version: VersionReader | None = current_app.extensions.get(_REGISTER_VERSION)
            version = read_version(db.session) if read_version is not None else None
            body["register_version"] = version[0] if version else None
        except SQLAlchemyError as exc:
            current_app.logger.warning("health: %s", exc, exc_info=exc)
            if database_unavailable(exc):
                body["database"], body["schema"] = "unreachable", "unknown"
            elif _missing_table(exc):  # it answers, but was never (fully) migrated
                body["schema"] = "behind"
            else:  # a timeout, a permission: nothing to say of the schema
                body["schema"] = "unknown"
        finally:
            try:
                db.session.rollback()
            except SQLAlchemyError:  # a connection that died meanwhile: it is discarded
                pass
        standbys = replicas_of(current_app._get_current_object())  # type: ignore[attr-defined]
        if standbys is not None:
            body["databases"].extend(standbys.status())
        revision = body["schema_revision"]
        if body["schema"] == "current" and revision != expected:
            body["schema"] = "behind" if revision in known or revision is None else "ahead"
        # An older code than the database (a rolling deploy migrates first) still serves:
        # the migrations add, so the old instances stay in until they are replaced.
        if body["database"] != "ok" or body["schema"] not in ("current", "ahead"):
            body["status"] = "unavailable"
        body["checked_in_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return Response(orjson.dumps(body), status=200 if body["status"] == "ok" else 503,
                        mimetype="application/json", headers={"Cache-Control": "no-store"})


def _role(session: DbSession) -> str:
    """primary, or standby: a primary URL that reaches a standby (no target_session_attrs
    =read-write in the URL, or the moment of a failover) cannot write."""
    if session.get_bind().dialect.name != "postgresql":
        return "primary"
    standby = session.execute(text("SELECT pg_is_in_recovery()")).scalar()
    return "standby" if standby else "primary"


def _missing_table(error: SQLAlchemyError) -> bool:
    """PostgreSQL's undefined_table (42P01), SQLite's "no such table"."""
    original = getattr(error, "orig", None)
    return (getattr(original, "sqlstate", None) == "42P01"
            or "no such table" in str(original or error))

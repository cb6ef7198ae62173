"""The register's version as the answer caches read it (``sorregistry.responses.DataVersion``).

The lookups' answers (``hierarchy.lookup_routes``) are kept per worker under the
register version (``hierarchy.service.register_version``: it changes at every
committed change of the register - import, SHAK import, approved application, staff
change). The version is read before anything an answer is made of: on PostgreSQL
through the worker thread's own connection (``sorregistry.reads``), one round trip
that needs nothing of the pool or the session, so a cached answer costs no more;
elsewhere (SQLite, a session bound to a connection, as in the tests) through the
session.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hierarchy.service import (
    _VERSION_QUERY,
    register_changed_in,
    register_version,
    remember_register_version,
)
from sorregistry import reads

# (number, stamp): the stamp tells apart two versions of one number (one rolled back).
Version = tuple[int, str]


class RegisterDataVersion:
    """The register's version, for ``sorregistry.responses.cached_answer``."""

    def current(self, session: Session) -> Version | None:
        direct = reads.direct(session)
        if direct is None:
            return register_version(session)
        rows = direct.rows(_VERSION_QUERY, {})
        return (rows[0][0], rows[0][1]) if rows else None

    def changed_in(self, session: Session) -> bool:
        return register_changed_in(session)

    def remember(self, session: Session, version: Version) -> None:
        remember_register_version(session, version)


REGISTER = RegisterDataVersion()

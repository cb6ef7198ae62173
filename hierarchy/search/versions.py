"""The register's version as the answer caches read it (``sorregistry.responses.DataVersion``).

The lookups' answers (``hierarchy.lookup_routes``) are kept per worker under the
register version (``hierarchy.service.register_version``: it changes at every
committed change of the register - import, SHAK import, approved application, staff
change). The version is read before anything an answer is made of: on PostgreSQL
through the worker thread's own connection (``sorregistry.reads``), one round trip
that needs nothing of the pool or the session, so a cached answer costs no more;
elsewhere (SQLite, a session bound to a connection, as in the tests) through the
session. On the primary the worker's listener usually knows it without a round trip
(:mod:`hierarchy.search.version_listener`).

With hot standbys (``sorregistry.replicas``) the version may be read on a standby that
lags: the worker then never goes backwards. It keeps the newest version number it has
read (:attr:`RegisterDataVersion.seen`); a standby that answers an older one is left for
the primary for the rest of the request, and a version older than the seen one is
:meth:`~RegisterDataVersion.outdated`: no answer, total or name index is filed under it
(they would replace newer ones). The primary's word is final: after a failover to a
standby that had not received the last changes, its lower number is taken as it is.
"""

from __future__ import annotations

from flask import has_request_context, request

from hierarchy.search.version_listener import listener_for
from hierarchy.service import (
    _VERSION_QUERY,
    register_changed_in,
    register_version,
    remember_register_version,
)
from sorregistry import reads, replicas
from sorregistry.database import DbSession

# (number, stamp): the stamp tells apart two versions of one number (one rolled back).
Version = tuple[int, str]


class RegisterDataVersion:
    """The register's version, for ``sorregistry.responses.cached_answer``."""

    def __init__(self) -> None:
        self.seen = 0  # the newest version number this process read (see the module)

    def current(self, session: DbSession) -> Version | None:
        direct = reads.direct(session)
        if direct is None:  # the session's own transaction, on the primary
            version = register_version(session)
            if version is not None:
                self.seen = version[0]
            return version
        if not direct.on_standby and not _sent_position():
            # The primary's version as this worker's listener holds it (see its module):
            # the direct reads' engine when they read no standby is the session's bind.
            kept = listener_for(direct.engine).current()
            if kept is not None:
                self.seen = max(self.seen, kept[0])
                return kept
        version = _read(direct)
        if direct.on_standby:
            if version is None or version[0] < self.seen:  # behind what this worker served
                replicas.use_primary()
                direct = reads.direct(session)
                if direct is None:  # pragma: no cover - the primary is PostgreSQL too
                    return register_version(session)
                version = _read(direct)
            elif version[0] > self.seen:
                self.seen = version[0]
                return version
        if version is not None:
            self.seen = version[0]  # the primary's word, also when lower (a failover)
        return version

    def outdated(self, version: Version) -> bool:
        """Whether this request reads a standby and the worker has read a newer version
        than *version* there or on the primary (see the module). The primary's versions
        are never outdated: its word is final."""
        return version[0] < self.seen and replicas.reading_standby()

    def changed_in(self, session: DbSession) -> bool:
        return register_changed_in(session)

    def remember(self, session: DbSession, version: Version) -> None:
        remember_register_version(session, version)


def _sent_position() -> bool:
    """Whether the request asks to see a write of its own (``X-SOR-LSN``)."""
    return has_request_context() and _LSN_KEY in request.environ


_LSN_KEY = "HTTP_" + replicas.LSN_HEADER.upper().replace("-", "_")  # as WSGI names it


def _read(direct: reads.DirectReads) -> Version | None:
    rows = direct.rows(_VERSION_QUERY, {})
    return (rows[0][0], rows[0][1]) if rows else None


REGISTER = RegisterDataVersion()

"""Reads from PostgreSQL hot standbys, and reading one's own writes.

``SOR_DATABASE_READ_URL`` names one or more streaming standbys (a SQLAlchemy URL, several
hosts as libpq's multi-host list: ``postgresql+psycopg://u@/sor?host=h1:5432,h2:5432``).
Each host gets an engine of its own, so each is checked, chosen and reported on its own.

Which reads go there: the read-only API paths that read through ``sorregistry.reads``
(the lookups, FHIR searches and history, the change feed - their register version
first) and exports (``hierarchy.export.snapshot``) ask :func:`route` for the engine of
their request; every other read (pages, the ORM session, commands, workers) and every
write stays on the primary (``SOR_DATABASE_URL``). One request reads one database:
the choice is made once and kept in the request.

A standby is used only when

* its lag is at most ``SOR_REPLICA_MAX_LAG`` seconds (checked at most once a second per
  process by the request that finds the check old; see :data:`LAG_QUERY`), and
* it has replayed the caller's own last write (read-your-writes): a request that wrote
  (``database.write_step`` calls :func:`note_write`) reads the primary for the rest of
  the request, and its answer carries the primary's WAL position after the commit in
  ``X-SOR-LSN``. The worker remembers that position per client (the bearer token's
  identity) for a minute, and a request may send it back in ``X-SOR-LSN`` (a client
  served by several workers or instances); a standby that has not replayed up to the
  position is asked once more, then the primary answers.

Otherwise the primary answers: a standby is a way to take load off, never a reason
to answer older data than the caller has seen. :func:`use_primary` lets a reader
switch a request back (the register version behind what the worker already served, a
feed cursor past the standby's last position).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, has_request_context, request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from sorregistry.errors import DomainError
from sorregistry.extensions import db
from sorregistry.security import request_identity

logger = logging.getLogger(__name__)

EXTENSION = "sor.replicas"
LSN_HEADER = "X-SOR-LSN"
_CHOICE = "sor.replicas.engine"  # request.environ: the engine this request reads from
_WROTE = "sor.replicas.wrote"
_PRIMARY = "sor.replicas.primary"
# How long a standby's check is trusted, and how long after a failed one it is skipped.
CHECK_SECONDS = 1.0
RETRY_AFTER_FAILURE_SECONDS = 5.0
# How long a client's last write position is remembered (far past any usable lag).
REMEMBER_WRITES_SECONDS = 60.0
_MAX_CLIENTS = 10_000
APPLICATION_NAME = "sorregistry-read"

# One round trip: whether the server is a standby, the WAL position it has replayed (a
# primary: its current one), and its lag in seconds - 0 when it has replayed all it
# received (an idle primary sends nothing: that is no lag), else the age of the last
# transaction it replayed (so a paused or slow replay is seen to grow); a standby that has
# WAL waiting but replayed no transaction since it started (that age unknown: NULL) is
# behind by at least its uptime - not 0, which let a paused fresh standby serve reads.
LAG_QUERY = text("""
SELECT pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint,
       CASE WHEN NOT pg_is_in_recovery() THEN 0.0
            WHEN pg_last_wal_receive_lsn() IS NOT NULL
                 AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0.0
            ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp()
                                  - pg_last_xact_replay_timestamp()),
                          EXTRACT(EPOCH FROM clock_timestamp()
                                  - pg_postmaster_start_time()))::float8 END
""")
PRIMARY_LSN_QUERY = text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(value: str) -> int | None:
    """PostgreSQL's text form of a WAL position ("16/B374D848") as a number; None if not one."""
    match = _LSN.match(value.strip())
    return (int(match.group(1), 16) << 32) + int(match.group(2), 16) if match else None


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


class InvalidPosition(DomainError):
    """An X-SOR-LSN header that is no WAL position."""

    status = 400


@dataclass(frozen=True, slots=True)
class Check:
    """What a standby said when last asked (or that it did not answer)."""

    at: float  # time.monotonic()
    standby: bool | None = None  # None: unreachable
    replayed: int = 0  # the WAL position replayed
    lag: float | None = None  # seconds
    error: str | None = None


class Standby:
    """One host of the read URL: its engine and its last check."""

    def __init__(self, name: str, engine: Engine) -> None:
        self.name = name
        self.engine = engine
        self.check = Check(at=float("-inf"))
        self._lock = threading.Lock()

    def current(self, max_age: float = CHECK_SECONDS) -> Check:
        """The last check if younger than *max_age* (after a failure: than the retry time),
        else a new one. One thread checks at a time; the others take the last one."""
        check = self.check
        age = time.monotonic() - check.at
        if age < (max_age if check.error is None else RETRY_AFTER_FAILURE_SECONDS):
            return check
        if not self._lock.acquire(blocking=age == float("inf")):
            return check
        try:
            self.check = self._ask()
            return self.check
        finally:
            self._lock.release()

    def _ask(self) -> Check:
        try:
            with self.engine.connect() as connection:
                standby, replayed, lag = connection.execute(LAG_QUERY).one()
                connection.rollback()
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            logger.warning("replica %s did not answer: %s", self.name, first)
            return Check(at=time.monotonic(), error=first)
        return Check(at=time.monotonic(), standby=bool(standby), replayed=int(replayed or 0),
                     lag=float(lag))


class ClientWrites:
    """Each client's last write position, as this worker saw it; bounded, thread-safe."""

    def __init__(self) -> None:
        self.positions: OrderedDict[Any, tuple[int, float]] = OrderedDict()
        self.lock = threading.Lock()

    def note(self, client: Any, position: int) -> None:
        with self.lock:
            known = self.positions.pop(client, None)
            self.positions[client] = (max(position, known[0] if known else 0), time.monotonic())
            while len(self.positions) > _MAX_CLIENTS:
                self.positions.popitem(last=False)

    def position(self, client: Any) -> int | None:
        with self.lock:
            known = self.positions.get(client)
            if known is None:
                return None
            if time.monotonic() - known[1] > REMEMBER_WRITES_SECONDS:
                del self.positions[client]
                return None
            return known[0]


class Replicas:
    """The standbys of ``SOR_DATABASE_READ_URL`` and the rule that picks one."""

    def __init__(self, standbys: list[Standby], max_lag: float) -> None:
        self.standbys = standbys
        self.max_lag = max_lag
        self.writes = ClientWrites()

    def usable(self, check: Check) -> bool:
        return check.error is None and check.lag is not None and check.lag <= self.max_lag

    def choose(self, position: int | None) -> Standby | None:
        """The first standby that lags at most the maximum and has replayed *position*."""
        for standby in self.standbys:
            check = standby.current()
            if not self.usable(check):
                continue
            if position is not None and check.replayed < position:
                check = standby.current(max_age=0.0)  # replayed since? ask once more
                if not (self.usable(check) and check.replayed >= position):
                    continue
            return standby
        return None

    def status(self) -> list[dict[str, Any]]:
        """Each standby's role and lag, for the health answer."""
        report = []
        for number, standby in enumerate(self.standbys, 1):
            check = standby.current()
            role = ("unreachable" if check.standby is None
                    else "standby" if check.standby else "primary")
            report.append({"name": f"replica-{number}", "role": role,
                           "lag_seconds": None if check.lag is None else round(check.lag, 3),
                           "used": self.usable(check)})
        return report

    def dispose(self) -> None:
        for standby in self.standbys:
            standby.engine.dispose()


def standby_urls(url: str | URL) -> list[URL]:
    """One URL per host of *url* (libpq's multi-host list in ``host=``, or its one host)."""
    parsed = make_url(url)
    hosts = parsed.query.get("host")
    if not hosts:
        return [parsed]
    listed = [hosts] if isinstance(hosts, str) else list(hosts)
    single = parsed.difference_update_query(["host", "port"])
    urls = []
    for entry in (part.strip() for item in listed for part in item.split(",")):
        if not entry:
            continue
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
        urls.append(single.set(host=host, port=int(port) if port else None))
    return urls


def repeated_hosts(url: str) -> str:
    """*url* with libpq's comma-separated host list (``?host=h1:5432,h2:5432``) as the
    repeated ``host=`` parameters SQLAlchemy's psycopg dialect reads (given as one, it
    passes "h1:5432,h2:5432" as the host name); any other URL as it is."""
    if not url.startswith("postgresql"):
        return url
    parsed = make_url(url)
    hosts = parsed.query.get("host")
    listed = [hosts] if isinstance(hosts, str) else list(hosts or ())
    if not any("," in item for item in listed):
        return url
    split = tuple(part.strip() for item in listed for part in item.split(",") if part.strip())
    return parsed.update_query_dict({"host": split}).render_as_string(hide_password=False)


def init_app(app: Flask) -> None:
    """Make the standbys' engines when ``DATABASE_READ_URL`` is set (PostgreSQL only)."""
    url = app.config.get("DATABASE_READ_URL")
    if not url:
        return
    if not str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql") or not str(
            url).startswith("postgresql"):
        raise ValueError("SOR_DATABASE_READ_URL names PostgreSQL standbys of a PostgreSQL "
                         "SOR_DATABASE_URL")
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("connect_timeout", 5)
    connect_args.setdefault("application_name", APPLICATION_NAME)
    options["connect_args"] = connect_args
    options.setdefault("pool_pre_ping", True)
    standbys = [Standby(f"{u.host}:{u.port or 5432}", create_engine(u, **options))
                for u in standby_urls(url)]
    app.extensions[EXTENSION] = Replicas(standbys, float(app.config["REPLICA_MAX_LAG"]))
    app.after_request(_tell_write_position)


def lags(found: Replicas) -> dict[tuple[str, ...], float]:
    """Each standby's lag by its name (``replica-1``...), for ``/metrics``."""
    return {(entry["name"],): float(entry["lag_seconds"]) for entry in found.status()
            if entry["lag_seconds"] is not None}


def replicas_of(app: Flask) -> Replicas | None:
    found: Replicas | None = app.extensions.get(EXTENSION)
    return found


def _client() -> Any:
    identity = request_identity()
    return None if identity is None else (identity.issuer, identity.subject, identity.id)


def _required_position(replicas: Replicas) -> int | None:
    """The WAL position this request must see: the client's last write, or what it sent."""
    positions = []
    sent = request.headers.get(LSN_HEADER)
    if sent is not None:
        parsed = parse_lsn(sent)
        if parsed is None:
            raise InvalidPosition(f"{LSN_HEADER} is a WAL position as the service sent it "
                                  "after a write (such as 16/B374D848)")
        positions.append(parsed)
    client = _client()
    if client is not None:
        known = replicas.writes.position(client)
        if known is not None:
            positions.append(known)
    return max(positions) if positions else None


def route(primary: Engine) -> Engine:
    """The engine this request's reads go to: a usable standby, or *primary*. Outside a
    request, without standbys, or after the request wrote: *primary*."""
    if not has_request_context():
        return primary
    environ = request.environ
    chosen: Engine | None = environ.get(_CHOICE)
    if chosen is not None:
        return chosen
    environ[_PRIMARY] = primary
    replicas = replicas_of(current_app._get_current_object())  # type: ignore[attr-defined]
    chosen = primary
    if replicas is not None and not environ.get(_WROTE):
        standby = replicas.choose(_required_position(replicas))
        if standby is not None:
            chosen = standby.engine
    environ[_CHOICE] = chosen
    return chosen


def standby_failed(engine: Engine) -> Engine | None:
    """A read on *engine* failed to reach its server: if it is a standby, skip it (its
    check says so until the retry time) and return the primary this request reads from
    now on; None if *engine* is no standby (the error is the caller's to raise)."""
    if not has_request_context():
        return None
    replicas = replicas_of(current_app._get_current_object())  # type: ignore[attr-defined]
    primary: Engine | None = request.environ.get(_PRIMARY)
    if replicas is None or primary is None:
        return None
    for standby in replicas.standbys:
        if standby.engine is engine:
            logger.warning("replica %s failed a read; the primary answers", standby.name)
            standby.check = Check(at=time.monotonic(), error="a read failed")
            use_primary()
            request.environ[_CHOICE] = primary
            return primary
    return None


def connect(primary: Engine) -> Connection:
    """A connection of :func:`route`'s engine (the primary if the standby is out of reach)."""
    engine = route(primary)
    try:
        return engine.connect()
    except OperationalError:
        fallback = standby_failed(engine)
        if fallback is None:
            raise
        return fallback.connect()


def on_standby(engine: Engine) -> bool:
    """Whether *engine* is one of the standbys' (the request reads a replica)."""
    if not has_request_context():
        return False
    replicas = replicas_of(current_app._get_current_object())  # type: ignore[attr-defined]
    return replicas is not None and any(s.engine is engine for s in replicas.standbys)


def reading_standby() -> bool:
    """Whether this request reads a standby (:func:`route` chose one)."""
    if not has_request_context():
        return False
    chosen: Engine | None = request.environ.get(_CHOICE)
    return chosen is not None and on_standby(chosen)


def use_primary() -> None:
    """Read the primary for the rest of this request (the next :func:`route` says so)."""
    if has_request_context():
        request.environ.pop(_CHOICE, None)
        request.environ[_WROTE] = True


def note_write() -> None:
    """The request committed a write: it reads the primary from now on, and its answer
    tells the client the position to read from (see the module's text)."""
    if has_request_context():
        request.environ.pop(_CHOICE, None)
        request.environ[_WROTE] = "write"


def _tell_write_position(response: Response) -> Response:
    """After a request that wrote: remember the client's position, and send it."""
    if request.environ.get(_WROTE) != "write" or response.status_code >= 500:
        return response
    replicas = replicas_of(current_app._get_current_object())  # type: ignore[attr-defined]
    if replicas is None:
        return response
    try:
        with db.engine.connect() as connection:
            position = int(connection.execute(PRIMARY_LSN_QUERY).scalar_one())
            connection.rollback()
    except SQLAlchemyError:  # the write is committed; its client reads the primary anyway
        logger.warning("the primary's WAL position could not be read after a write")
        return response
    client = _client()
    if client is not None:
        replicas.writes.note(client, position)
    response.headers[LSN_HEADER] = format_lsn(position)
    return response

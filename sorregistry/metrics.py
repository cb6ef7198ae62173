"""Prometheus metrics at ``GET /metrics``, for the operator's Prometheus to scrape.

Three kinds of figures, all named ``sor_*``:

* **Per request** (this module's hooks): ``sor_http_requests_total`` and the histogram
  ``sor_http_request_duration_seconds`` by method, Flask endpoint (the view's name, not
  the raw path: one series per route whatever the codes in its URL) and status; and
  ``sor_answer_cache_requests_total`` by endpoint and result, read from the ``X-Cache``
  header ``sorregistry.responses.cached_answer`` sets (hit or miss).
* **Per process, sampled** (:func:`sample`): a value a function reads in the worker -
  the database pool's checked-out and overflow connections, the lookups' direct-read
  connections (``sorregistry.reads``), a replica's lag. Sampled when scraped, and after
  a request at most once a second, so under gunicorn each worker's figure is recent;
  the workers' figures are summed (only live workers count).
* **Of the database** (:func:`register_collector`): what a feature's tables say at the
  moment of the scrape - the outbox's length and the age of its oldest queued mail, the
  mail-intake ledger by state, the webhook deliveries. Read by the worker that answers
  the scrape, in its own short read.

The core knows no feature: each feature registers its collectors and samples in its
own ``init_app``. Counters a feature increments itself (the name index's builds) are
plain ``prometheus_client`` objects in its own module.

**gunicorn**: with ``PROMETHEUS_MULTIPROC_DIR`` set (``gunicorn.conf.py`` sets it and
empties it at start), every worker writes its counters to files there and the scrape
reads all of them (prometheus-client's multiprocess mode); a worker that exits is marked
dead by the ``child_exit`` hook, so its live gauges drop out.

**Guarded by a setting**: ``SOR_METRICS_TOKEN``. Unset, ``/metrics`` does not exist
(404): nothing about the service's traffic leaks by default. Set, the scrape must send
it as a bearer token (Prometheus' ``authorization: credentials``); anything else is a
401. A token rather than a list of addresses: behind a proxy every request comes from
the proxy's address.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from sorregistry import reads
from sorregistry.api import register_api
from sorregistry.database import DbSession
from sorregistry.extensions import db
from sorregistry.models import utcnow
from sorregistry.ratelimit import exempt
from sorregistry.request_id import (
    STARTED_KEY,
    after_sent,
    current_request,
    endpoint_label,
    seconds_since,
)

log = logging.getLogger(__name__)

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
_STATE = "sor.metrics"
# From a millisecond (an answer from the cache) to the feed's 30 s long poll.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
_SAMPLE_EVERY = 1.0  # seconds between a worker's samples after requests

REQUESTS = Counter(
    "sor_http_requests", "Requests answered, by method, Flask endpoint and status",
    ["method", "endpoint", "status"])
LATENCY = Histogram(
    "sor_http_request_duration_seconds",
    "Time from the request's arrival in the app until its answer was sent",
    ["method", "endpoint", "status"], buckets=LATENCY_BUCKETS)
ANSWER_CACHE = Counter(
    "sor_answer_cache_requests", "Cacheable GETs answered from a worker's answer cache "
    "(hit) or computed (miss)", ["endpoint", "result"])
COLLECT_ERRORS = Counter(
    "sor_metrics_collect_errors", "Database figures that could not be read for a scrape",
    ["collector"])

# A collector reads the database in the scrape's session and returns its metric families
# (prometheus_client.core.GaugeMetricFamily and the like).
CollectFunction = Callable[[DbSession], Iterable[Any]]
# A sample reads one value, or one value per label tuple; None: nothing to report.
SampleFunction = Callable[[], float | Mapping[tuple[str, ...], float] | None]


@dataclass
class _Sampled:
    gauge: Gauge
    read: SampleFunction
    labelled: bool
    seen: set[tuple[str, ...]] = field(default_factory=set)


@dataclass
class _State:
    token: str | None
    collectors: dict[str, CollectFunction] = field(default_factory=dict)
    samples: dict[str, _Sampled] = field(default_factory=dict)
    sampled_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


# Gauges are made once per process (prometheus_client refuses a name twice); several
# apps in one process (the tests) share them and set them from their own functions.
_GAUGES: dict[str, Gauge] = {}
_GAUGES_LOCK = threading.Lock()


def multiprocess() -> bool:
    """Whether the workers share their figures through PROMETHEUS_MULTIPROC_DIR."""
    return bool(os.environ.get(MULTIPROCESS_DIRECTORY))


def _state(app: Flask) -> _State:
    """The app's metrics state (made on first use: a feature may register its figures
    before or after the core's ``init_app``)."""
    state: _State = app.extensions.setdefault(_STATE, _State(token=None))
    return state


def register_collector(app: Flask, name: str, collect: CollectFunction) -> None:
    """Let *collect* add figures read from the database to every scrape (a feature
    calls it in its ``init_app``); *name* tells its failures apart."""
    _state(app).collectors[name] = collect


def sample(app: Flask, name: str, documentation: str, read: SampleFunction,
           labels: tuple[str, ...] = (),
           multiprocess_mode: Literal["livesum", "livemax"] = "livesum") -> None:
    """Report *read*'s value as the per-process gauge *name* (summed over live workers;
    *multiprocess_mode* ``livemax`` for a figure every worker measures alike, a lag).

    *read* returns a number, or with *labels* a mapping from label values to numbers
    (one series each), or None when there is nothing to tell. It runs in the app's
    context, at a scrape and after a request (at most once a second): keep it cheap.
    """
    with _GAUGES_LOCK:
        gauge = _GAUGES.get(name)
        if gauge is None:
            gauge = _GAUGES[name] = Gauge(name, documentation, list(labels),
                                          multiprocess_mode=multiprocess_mode)
    _state(app).samples[name] = _Sampled(gauge, read, bool(labels))


def _refresh_samples(state: _State) -> None:
    for name, sampled in state.samples.items():
        try:
            value = sampled.read()
        except Exception:  # a figure that cannot be read must not fail the request
            log.exception("metrics: sampling %s failed", name)
            continue
        if value is None:
            continue
        if not sampled.labelled:
            sampled.gauge.set(float(value))  # type: ignore[arg-type]
            continue
        values = dict(value)  # type: ignore[arg-type]
        for key, number in values.items():
            sampled.gauge.labels(*key).set(number)
        for gone in sampled.seen - values.keys():
            sampled.gauge.labels(*gone).set(float("nan"))
        sampled.seen = set(values)
    state.sampled_at = time.monotonic()


def _sample_after_request(state: _State) -> None:
    """At most once a second per worker, so a request pays a few microseconds."""
    if time.monotonic() - state.sampled_at < _SAMPLE_EVERY:
        return
    if state.lock.acquire(blocking=False):  # another thread is at it
        try:
            _refresh_samples(state)
        finally:
            state.lock.release()


# --- the request hooks -----------------------------------------------------------------------


# The series of each (method, endpoint, status) met: labels() takes a lock and builds a
# key each time; a worker meets a few hundred combinations.
_SERIES: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _count(response: Response) -> Response:
    req = current_request()
    endpoint = endpoint_label(req)
    key = (req.method, endpoint, response.status_code)
    series = _SERIES.get(key)
    if series is None:
        labels = (key[0], endpoint, str(key[2]))
        series = _SERIES[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
    # Counted and timed once the answer has been sent: the client does not wait for it,
    # and the time is the whole answer's, a streamed export's included.
    cache = response.headers.get("X-Cache")
    after_sent(response, partial(_observe, series, req.environ.get(STARTED_KEY),
                                 (endpoint, cache) if cache in ("hit", "miss") else None))
    _sample_after_request(_state(current_app))
    return response


def _observe(series: tuple[Counter, Histogram], started: float | None,
             cached: tuple[str, str] | None) -> None:
    series[0].inc()
    series[1].observe(seconds_since(started))
    if cached is not None:  # (endpoint, "hit" or "miss")
        ANSWER_CACHE.labels(*cached).inc()


# --- the core's own samples ------------------------------------------------------------------


def _pool() -> QueuePool | None:
    pool = getattr(db.engine, "pool", None)  # a test's bound connection has none
    return pool if isinstance(pool, QueuePool) else None


def _pool_checked_out() -> float | None:
    pool = _pool()
    return None if pool is None else float(pool.checkedout())


def _pool_overflow() -> float | None:
    pool = _pool()
    return None if pool is None else float(max(pool.overflow(), 0))


def _pool_size() -> float | None:
    pool = _pool()
    return None if pool is None else float(pool.size())


# --- figures of a queue (the outbox, the webhook deliveries) ---------------------------------

PENDING = ("queued", "sending", "failed")


def queue_collector(name: str, what: str, model: Any) -> CollectFunction:
    """A collector of a queue's table *model* (``sorregistry.queue``'s shape: ``status``,
    ``created_at``): ``sor_<name>{status}`` - how many rows are queued, being sent, or
    given up (the done ones grow for ever and are no queue) - and
    ``sor_<name>_oldest_queued_age_seconds`` (0 when nothing waits)."""

    def collect(session: DbSession) -> Iterator[Any]:
        counts = dict.fromkeys(PENDING, 0)
        for status, count in session.execute(
                select(model.status, func.count()).where(model.status.in_(PENDING))
                .group_by(model.status)):
            counts[status] = count
        oldest = session.execute(
            select(func.min(model.created_at)).where(model.status == "queued")).scalar()
        family = GaugeMetricFamily(f"sor_{name}", f"{what} by status (pending ones)",
                                   labels=["status"])
        for status, count in counts.items():
            family.add_metric([status], count)
        yield family
        age = 0.0 if oldest is None else max((utcnow() - oldest).total_seconds(), 0.0)
        yield GaugeMetricFamily(f"sor_{name}_oldest_queued_age_seconds",
                                f"Age of the oldest queued of the {what.lower()}", value=age)

    return collect


# --- the endpoint ----------------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


class _DatabaseFigures(Collector):
    """The registered collectors' figures, read in the scrape's session."""

    def __init__(self, collectors: Mapping[str, CollectFunction]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Any]:
        for name, collect in self.collectors.items():
            try:
                families = list(collect(db.session))
            except SQLAlchemyError:
                log.warning("metrics: the %s figures could not be read", name, exc_info=True)
                COLLECT_ERRORS.labels(name).inc()
                db.session.rollback()
                continue
            yield from families
        db.session.rollback()  # the scrape's read ends here


def _authorised(token: str) -> bool:
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.encode())


@bp.get("")
@exempt
def metrics() -> Response:
    """The figures in Prometheus' text format; 404 unless SOR_METRICS_TOKEN is set."""
    state = _state(current_app)
    if not state.token:
        abort(404)
    if not _authorised(state.token):
        return Response("a bearer token is required\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    with state.lock:
        _refresh_samples(state)
    figures = CollectorRegistry(auto_describe=False)
    figures.register(_DatabaseFigures(state.collectors))
    if multiprocess():
        everything = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(everything)  # type: ignore[no-untyped-call]  # untyped there
        body = generate_latest(everything) + generate_latest(figures)
    else:
        body = generate_latest(REGISTRY) + generate_latest(figures)
    return Response(body, mimetype=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """``/metrics`` (declared an API: no cookie session, JSON errors), the request hooks
    and the core's samples. Call it before the other after_request hooks are added: the
    last registered runs first, so this one sees the final answer."""
    _state(app).token = app.config.get("METRICS_TOKEN") or None
    app.after_request(_count)
    register_api(app, bp, url_prefix="/metrics")
    sample(app, "sor_db_pool_checked_out",
           "Connections of the database pool in use", _pool_checked_out)
    sample(app, "sor_db_pool_overflow",
           "Connections opened beyond the pool's size", _pool_overflow)
    sample(app, "sor_db_pool_size", "The database pool's size", _pool_size)
    sample(app, "sor_direct_read_connections",
           "The lookups' own PostgreSQL connections (one per worker thread)",
           lambda: float(reads.open_connections()))

"""gunicorn's settings for the SOR registry: what to run it with in production.

    gunicorn -c gunicorn.conf.py 'sorregistry:create_app()'

(gunicorn reads ``./gunicorn.conf.py`` by itself when started in this folder; options
given on its command line win over this file.) The environment tunes it: ``SOR_BIND``
(default ``127.0.0.1:8000``, behind the proxy that ends TLS), ``SOR_WORKERS`` (default:
one per core), ``SOR_THREADS`` (default 8), ``SOR_LOG_FORMAT`` (as the app reads it) and
``PROMETHEUS_MULTIPROC_DIR``. README.md, "Running it in production", explains each
choice; the short version is beside each setting.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any

from gunicorn import glogging

# Few processes, many threads. Each worker keeps its own answer cache (up to 64 MB) and
# name index (about 130 MB at a million organisations) and builds them again when it
# starts; a request mostly waits for PostgreSQL, which threads do well. One worker per
# core, eight threads each (each thread keeps one direct-read connection: mind
# PostgreSQL's max_connections, or put PgBouncer in between). gunicorn's gthread worker,
# whose pool wakes the thread idle last (sorregistry.serving): under light load one warm
# thread and its connection answer, not each thread in turn.
bind = os.environ.get("SOR_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SOR_WORKERS") or os.cpu_count() or 2)
worker_class = "sorregistry.serving.ThreadWorker"
threads = int(os.environ.get("SOR_THREADS") or 8)

# A worker that has not checked in for this long is killed and replaced (with gthread the
# worker checks in between requests, so a long export stream or the feed's 30 s long
# poll does not count against it).
timeout = 60
# SIGTERM (systemd stop, a deploy): the workers stop taking requests and get this long
# to finish the ones under way - longer than the feed's longest wait (30 s).
graceful_timeout = 40
# Behind a proxy or load balancer that keeps connections open to us.
keepalive = 5
# Each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads new
# connections evenly over them. With one shared socket, whichever worker wakes first takes
# a connection, and a kept-alive connection stays with the worker that took it: in the
# lookups' benchmark (32 clients, 2 workers) one worker held most of them, busy at its
# interpreter's limit of one core while the other idled (6.1 against 2.4 s of CPU in the
# same 7.6 s), and throughput was 15-25 % below the same run with the sockets spread.
# Set net.ipv4.tcp_migrate_req = 1 (deploy/sysctl.d/) so the connections waiting on a
# stopping worker's socket (a reload, a recycled worker) move to another one.
reuse_port = True
# Recycle a worker now and then (a leak cannot grow for ever), rarely and not all at once
# (the jitter): a new worker starts with cold answer caches and rebuilds its name index
# (about 7 s at a million organisations, the searches take the SQL path meanwhile). A
# worker answering 500 cached lookups a second is recycled about every half hour.
max_requests = 1_000_000
max_requests_jitter = 100_000
# The workers' heartbeat files on a memory file system, not a disk that may stall.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
proc_name = "sorregistry"
# No control socket (gunicorn 25.1+): systemd manages the server, and two servers on one
# host would contend for its one default path.
control_socket_disable = True

# --- logs: the app writes one JSON line per request (sorregistry/logs.py) -----------------

_FORMAT = (os.environ.get("SOR_LOG_FORMAT") or "").strip().lower() or (
    "json" if os.environ.get("SOR_ENV", "production") == "production" else "text")
errorlog = "-"
# gunicorn's access log would repeat the app's request line in another shape.
accesslog = None if _FORMAT == "json" else "-"


class Logger(glogging.Logger):
    """gunicorn's logger, with its access log on only when ``accesslog`` says so.

    gunicorn turns the access log on whenever a logging configuration is given (the
    ``logconfig_dict`` below): it would then gather every request's atoms (a copy of the
    environ and the headers, a formatted time) to hand them to a logger with no handler -
    about 0.1 ms of every answer, measured against the floor (a 401) of the lookups'
    benchmark. The app writes the request line itself."""

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


logger_class = Logger
if _FORMAT == "json":
    logconfig_dict: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",
        }},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                              "stream": "ext://sys.stderr"}},
        # The app sets the root logger's handler itself in each worker.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["json"],
                                       "propagate": False, "qualname": "gunicorn.error"}},
    }

# --- metrics: prometheus-client's multiprocess mode (sorregistry/metrics.py) -------------

# Set before any worker imports prometheus_client: the workers inherit it. The systemd
# unit gives a directory under /run; otherwise one is made for this server.
_METRICS = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                 tempfile.mkdtemp(prefix="sorregistry-metrics-"))
# Only now: prometheus_client picks its mode when first imported, and the workers are
# forked from this process with its modules.
from prometheus_client import multiprocess  # noqa: E402


def on_starting(server: Any) -> None:
    """Start from an empty directory: files of an earlier run would add its counts."""
    os.makedirs(_METRICS, exist_ok=True)
    for entry in os.scandir(_METRICS):
        if entry.is_file() and entry.name.endswith(".db"):
            os.unlink(entry.path)
        elif entry.is_dir():
            shutil.rmtree(entry.path)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited: its live gauges (pool, connections) no longer count."""
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    """The app is loaded: its long-lived objects out of the garbage collector's way.

    The app holds ~190,000 objects the cyclic collector tracks (SQLAlchemy's mappers and
    compiled statements, the schemas, the OpenAPI document, ...) and never frees. A full
    collection walks all of them - about 90 ms, measured - and comes whenever enough
    objects have outlived younger collections: under load, every few seconds, with the
    worker's interpreter lock held, so every request in the worker waits (the lookups'
    p99 under 32 clients). ``gc.freeze`` moves them to a generation no collection walks;
    what a request makes is collected as before. (The lookups' mix at 200,000, 32
    clients, twice each way in one run: the slowest answer 131 ms against 278-280 ms, p99
    106-107 against 119-169 ms.)"""
    gc.collect()  # what start-up left behind is freed, not kept for ever
    gc.freeze()

"""Fast JSON responses for the APIs, with ETags from the body, and a cache of answers.

Marshmallow documents the API (the OpenAPI document is made from the
schemas), but dumping hundreds of nested items through it costs more than the
database does; lists are therefore built as plain dicts and encoded with
orjson. The ETag is a digest of the exact bytes sent, so If-None-Match gives
a 304 whenever the answer would be the same.

:func:`cached_answer` keeps a worker's answers (:class:`AnswerCache`) under the version
of the data they were made of; the data's owner says what its version is
(:class:`DataVersion`: the register's, say), the core knows no data of its own.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import date
from typing import Any, ParamSpec, Protocol, TypeVar

import orjson
import xxhash
from flask import Response, current_app

from sorregistry import reads
from sorregistry.database import DbSession
from sorregistry.extensions import db
from sorregistry.request_id import current_request
from sorregistry.security import authenticate


def etag_of(body: bytes) -> str:
    """The ETag of an answer's bytes: XXH3-128 in hex, 10 us for a 474 kB Mit CVR page
    (SHA-256 took 0.38 ms, BLAKE2b 0.73 ms - a tenth of the page's computing). Not a
    cryptographic hash, so it is seeded with a secret (from ``SECRET_KEY``, the same in
    every worker and host): what an answer holds (a unit's name, say) cannot be chosen to
    make a changed list collide with the ETag a client keeps."""
    return xxhash.xxh3_128_hexdigest(body, seed=_etag_seed())


def _etag_seed() -> int:
    extensions = current_app.extensions
    seed: int | None = extensions.get("sor_etag_seed")
    if seed is None:
        secret = str(current_app.config.get("SECRET_KEY") or "").encode("utf-8")
        seed = int.from_bytes(hashlib.sha256(b"sor-etag\0" + secret).digest()[:8], "big")
        extensions["sor_etag_seed"] = seed
    return seed


# The request headers that make a GET conditional (RFC 9110, 13.1); the answers do not
# offer ranges.
_CONDITIONS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE",
               "HTTP_IF_UNMODIFIED_SINCE")


def conditional(response: Response) -> Response:
    """*response* (a 200 with its ETag) made conditional on the request: 304 (or 412) when
    the client's validators say so. werkzeug's ``make_conditional`` runs only for a
    request that sends a validator: for any other it only added a ``Date`` header (~50 us
    of a 1 ms lookup, most of it formatting the time), which the server sets itself on
    every answer - gunicorn drops the app's and sends its own, werkzeug's adds one when
    the app has none - so the app sends none of its own at all."""
    environ = current_request().environ
    if any(name in environ for name in _CONDITIONS):
        response.make_conditional(environ)
        response.headers.remove("Date")
    return response


def json_response(payload: Any, status: int = 200) -> Response:
    body = orjson.dumps(payload)
    response = Response(body, status=status, mimetype="application/json")
    if status == 200 and current_request().method in ("GET", "HEAD"):
        response.set_etag(etag_of(body))
        conditional(response)
    return response


def kept_bytes(body: bytes) -> bytes:
    """*body* to keep in memory: orjson's output holds on to the buffer it was written in
    (measured with orjson 3.13: a 1 kB item kept whole cost 8.4 kB, a 19 kB answer 32 kB),
    so anything kept is a copy of just its bytes (~3 us a kB)."""
    return bytes(memoryview(body))


def cached_json_response(body: bytes, etag: str) -> Response:
    """A 200 answered before (same bytes, same ETag), or 304 when the client has it."""
    response = Response(body, status=200, mimetype="application/json")
    response.set_etag(etag)
    return conditional(response)


class AnswerCache:
    """Encoded answers, per worker process, valid for one version of the data.

    Entries of another version are never returned, and the first entry of a new
    version drops all others. Least recently used entries go first when the
    byte budget is full. Thread-safe (gunicorn's gthread workers share it).
    """

    def __init__(self, budget: int = 64 * 1024 * 1024, largest: int = 2 * 1024 * 1024) -> None:
        self.budget = budget
        self.largest = largest
        self.version: Hashable = None
        self.entries: OrderedDict[Hashable, tuple[bytes, str]] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, version: Hashable, key: Hashable) -> tuple[bytes, str] | None:
        with self.lock:
            if version != self.version:
                return None
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            return entry

    def put(self, version: Hashable, key: Hashable, body: bytes, etag: str) -> None:
        if len(body) > self.largest:
            return
        with self.lock:  # the same answer computed again (no-cache): kept already
            if version == self.version:
                old = self.entries.get(key)
                if old is not None and old[1] == etag:
                    self.entries.move_to_end(key)
                    return
        body = kept_bytes(body)  # a copy (a Mit CVR page: 470 kB), made outside the lock
        with self.lock:
            if version != self.version:
                self.version, self.entries, self.size = version, OrderedDict(), 0
            old = self.entries.pop(key, None)
            if old is not None:
                self.size -= len(old[0])
            while self.entries and self.size + len(body) > self.budget:
                _, (dropped, _) = self.entries.popitem(last=False)
                self.size -= len(dropped)
            self.entries[key] = (body, etag)
            self.size += len(body)

    def clear(self) -> None:
        with self.lock:
            self.version, self.entries, self.size = None, OrderedDict(), 0


V = TypeVar("V", bound=Hashable)
P = ParamSpec("P")
R = TypeVar("R")


class DataVersion(Protocol[V]):
    """What :func:`cached_answer` needs of the data an API's answers are made of."""

    def current(self, session: DbSession) -> V | None:
        """The data's version, read before anything an answer is made of, in no transaction
        of *session*'s if it can be (None: unknown, do not cache)."""
        ...

    def changed_in(self, session: DbSession) -> bool:
        """Whether *session* holds changes of the data not yet committed."""
        ...

    def remember(self, session: DbSession, version: V) -> None:
        """Let the answer's own reads in *session* take *version* as read, not read it again."""
        ...

    def outdated(self, version: V) -> bool:
        """Whether a newer version than *version* has been read here (a lagging replica
        answered): its answers are not filed, they would replace newer ones."""
        ...


def _no_cache(environ: dict[str, Any]) -> bool:
    directives = environ.get("HTTP_CACHE_CONTROL", "").lower()  # as request.headers.get
    return "no-cache" in directives or "no-store" in directives


def cached_answer(
    answers: AnswerCache, data: DataVersion[V], *, per_client: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Serve a GET from *answers* when this worker answered it (200) in this version of *data*.

    The key is the path, the query string exactly as sent, the day (what a date filter
    defaults to) and, for *per_client* answers (Mit CVR), the client's CVR. The client
    is authenticated first, as on every request. Nothing is cached or served inside a
    transaction that holds uncommitted changes of *data*. A request with
    ``Cache-Control: no-cache`` (HTTP's way to ask for an answer not taken from a
    cache) is computed, and its answer stored; the benchmark measures computed answers
    so. ``X-Cache: hit`` / ``miss`` says which it was (for monitoring and the benchmark).

    A computed answer may read directly (``sorregistry.reads.allow``): it runs in no
    transaction of its own, on the version read first.
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            # The scoped session, not made here: a computed answer that reads directly
            # never makes one (sorregistry.database.made_session).
            session = db.session
            client = authenticate()
            req = current_request()  # the request itself: read four times below
            if req.method != "GET":
                return view(*args, **kwargs)
            version = data.current(session)
            if version is None or data.changed_in(session):
                return view(*args, **kwargs)
            key = (req.path, req.query_string, date.today(),
                   client.cvr if per_client else None)
            hit = None if _no_cache(req.environ) else answers.get(version, key)
            if hit is not None:
                response = cached_json_response(*hit)
                response.headers["X-Cache"] = "hit"
                return response
            data.remember(session, version)  # no second read in the answer
            reads.allow(session)
            answer = view(*args, **kwargs)
            if isinstance(answer, Response) and answer.status_code == 200:
                etag, _ = answer.get_etag()
                if etag and not data.outdated(version):
                    answers.put(version, key, answer.get_data(), etag)
                answer.headers["X-Cache"] = "miss"
            return answer

        return wrapper

    return decorate


def dumps_text(value: Any) -> str:
    """orjson for SQLAlchemy's JSON columns (which want text)."""
    return orjson.dumps(value).decode()

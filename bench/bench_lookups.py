#!/usr/bin/env python3
"""Benchmark the lookups the reporting forms use, through gunicorn, on a national-size register.

    .venv/bin/python bench/bench_lookups.py [--entities 200000] [--file FILE] [--requests 1000]
                                            [--concurrency 32] [--per-client 100] [--keep]
    .venv/bin/python bench/bench_lookups.py --entities 20000 --requests 200   # quick, ~4 min

Generates a SOR XML v2 export (bench/generate_sor_export.py; or takes ``--file``), starts a
throwaway PostgreSQL 15 server (tests/support/postgres.py, ``shared_buffers=256MB``), makes
the schema (``sorregistry db upgrade``), imports the export and the SHAK register
(``/work/shared/data/sor/shak/SHAKCOMPLETE.TXT`` when present, else the demo extract), makes a
``reporter`` client for a municipality with 1,000-1,500 units and serves the app with
``gunicorn -w 2 -k sorregistry.serving.ThreadWorker --threads 4`` (the project's worker:
gthread, keep-alive, its pool waking the thread idle last; ``--worker-class gthread`` for
gunicorn's own, ``sync`` for the old setting; ``SOR_ENV=production``). Then, for four scenarios:

* name type-ahead   ``GET /api/v1/organisations?name=<3 letters>&limit=20``
* Mit CVR - Alle    ``GET /api/v1/lookups/my-cvr/all?limit=500`` (the municipality's units)
* Privat/ydernummer ``GET /api/v1/lookups/ownership/privat?ydernummer=<real ydernummer>``
* resolve           ``GET /api/v1/resolve?code=<SOR code | ydernummer | SHAK code>``

and, cold, the searches of issue 15 beside the type-ahead (ranked by relevance now): the
same fragments by name (the order before), two words' starts in any order (``plej hor``),
fuzzy search for mistyped names (``name_match=fuzzy``); and type-aheads in the 10 s after a
real change (one unit renamed through the service), with the name index's rebuild against
its patch from the change record (time, memory).

it measures the latency of one sequential client (50 warm-up requests, then ``--requests``;
status 200 and a JSON body checked on every answer), then the throughput of
``--concurrency`` clients (threads, one keep-alive connection each) running a mix of the
four. Finally it replays the exact SQL the service runs for each request straight through
psycopg (captured from SQLAlchemy's ``before_cursor_execute`` while calling the functions
the routes call, ``search.search`` and ``reporting.resolve``) and compares.

``--compare-with TREE`` serves the same database from another checkout as well (its own
``.venv``; e.g. a ``git worktree`` of the commit before a refactor) and measures the cold
latencies of both side by side, in alternating rounds, instead of the rest: a change must
stay within 10 % of the tree it replaces.

Targets: type-ahead p95 <= 15 ms (words too), fuzzy p95 <= 50 ms, type-ahead p95 in the 10 s
after a change <= 20 ms, resolve p95 <= 5 ms, Mit CVR - Alle (500 rows) p95 <= 60 ms,
no errors under load, service p50 / raw SQL p50 <= 3 for every scenario, and the cold mix
under the clients at least half the throughput of the floor (a 401, no SQL) - judged on
``--ratio-rounds`` pairs of the two run side by side, the order alternating, by the median
of the pairs' ratios (one pair's moved 0.36-0.45 between runs of the same code); and the
service's own work per computed answer of Privat and resolve (issue 17) at most their SQL's
own time: cold p50 - the floor's p50 - the raw SQL's p50, the three measured side by side
in ``--own-rounds`` rounds (``--own-requests`` each, interleaved request by request), by the
median of the rounds' values (the three p50s of the runs above, minutes apart, gave
0.23-0.51 ms for Privat in runs of the same code; measured in blocks seconds apart, one
run's rounds 0.29-1.11 ms).

Exit status: 0 when every target holds, 2 when one is missed, 1 when something fails
(a command, the server, a wrong answer during the latency runs) or on Ctrl-C / SIGTERM.
The server, gunicorn and the temporary directory are removed in every case (``--keep``
keeps the directory, with the database cluster stopped and the logs).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import math
import os
import random
import re
import statistics
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from common import (
    ROOT,
    BenchError,
    Gunicorn,
    code_version,
    load_generator,
    percentile,
    psycopg_connect,
    required_command,
    run_command,
    say,
    stop_stray_postgres,
    temp_dir,
    terminate_on_signal,
    worker_rss,
)
from sqlalchemy import create_engine, event, select

from hierarchy import reporting, search, service
from hierarchy.models import Organisation, OrganisationName
from hierarchy.search.names import NAMES, NameIndex, read_names
from hierarchy.service import register_version
from sorregistry.accounts.clients import digest_token
from sorregistry.app import create_app
from sorregistry.extensions import db
from tests.support.postgres import Server

SHAK_FILES = (Path("/work/shared/data/sor/shak/SHAKCOMPLETE.TXT"),
              ROOT / "hierarchy" / "demo" / "SHAK_DEMO.TXT")
WARMUP = 50
FRAGMENTS = 1000  # at most this many distinct 3-letter fragments
AFTER_CHANGE_SECONDS = 10.0
COLD_WARMUP_SECONDS = 8.0
NO_CACHE = {"Cache-Control": "no-cache"}
YDERNUMRE = 200
MUNICIPALITY_UNITS = (1000, 1500)

TARGET_TYPEAHEAD_P95_MS = 15.0
TARGET_RESOLVE_P95_MS = 5.0
TARGET_MY_CVR_P95_MS = 60.0
TARGET_RATIO = 3.0

TYPEAHEAD = "name type-ahead"
MY_CVR = "Mit CVR - Alle"
PRIVAT = "Privat/ydernummer"
RESOLVE = "resolve"
SCENARIOS = (TYPEAHEAD, MY_CVR, PRIVAT, RESOLVE)


# --- statistics -----------------------------------------------------------------------------


@dataclass
class Stats:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    slowest: tuple[float, int] = (0.0, -1)  # (ms, index of the request's input)
    closed_by_server: int = 0  # answers after which the server closed the connection
    miss_latencies_ms: list[float] = field(default_factory=list)  # X-Cache: miss (or none)
    hits: int = 0  # answers the service took from its answer cache (X-Cache: hit)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(text)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def mean(self) -> float:
        return sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else math.nan


# --- the database and the service -----------------------------------------------------------


# --- what to ask ------------------------------------------------------------------------------


@dataclass
class Inputs:
    municipality_cvr: str
    municipality_name: str
    municipality_units: int
    my_cvr_rows: int
    fragments: list[str]
    fragment_totals: list[int]
    ydernumre: list[str]
    codes: list[tuple[str, str]]  # (kind, code)
    word_pairs: list[str] = field(default_factory=list)  # "plej hor": two words' starts
    typos: list[str] = field(default_factory=list)  # a real name with one letter dropped


ACTIVE = ("(valid_from IS NULL OR valid_from <= %(day)s) "
          "AND (valid_to IS NULL OR valid_to > %(day)s)")


def choose_inputs(url: str, seed: int) -> Inputs:
    rng = random.Random(seed)
    day = date.today()
    with psycopg_connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT ie.owner_cvr, ie.name, count(o.sor_code) AS units, "
            "count(o.sor_code) FILTER (WHERE o.level IN ('SI', 'OE') AND "
            "(o.valid_from IS NULL OR o.valid_from <= %(day)s) AND "
            "(o.valid_to IS NULL OR o.valid_to > %(day)s)) AS listed "
            "FROM organisations ie JOIN organisations o ON o.owner_cvr = ie.owner_cvr "
            "WHERE ie.level = 'IE' AND ie.ownership = 'kommunal' "
            "GROUP BY ie.owner_cvr, ie.name ORDER BY units DESC, ie.owner_cvr",
            {"day": day}).fetchall()
        if not rows:
            raise BenchError("the register holds no municipality (IE, kommunal)")
        low, high = MUNICIPALITY_UNITS
        fitting = [r for r in rows if low <= r[2] <= high]
        if fitting:
            cvr, name, units, listed = fitting[0]  # the largest that fits
        else:
            # The nearest in size, so the answer's work stays comparable across sizes.
            cvr, name, units, listed = min(
                rows, key=lambda r: (min(abs(r[2] - low), abs(r[2] - high)), r[0]))
            say(f"   note: no municipality has {low}-{high} units; using the nearest "
                 f"({units} units)")

        # Type-ahead fragments: what a person types first, the first three letters of a
        # word of a real (folded) name; every distinct one the register's names give (up
        # to FRAGMENTS), in random order, common and rare alike.
        words: Counter[str] = Counter()
        pairs: set[str] = set()
        typos: set[str] = set()
        for (name_search,) in conn.execute(
                f"SELECT name_search FROM organisations WHERE {ACTIVE}", {"day": day}):
            found = re.findall(r"[a-z]{3,}", name_search)
            for word in set(found):
                words[word[:3]] += 1
            # Two words of the name, their starts, in either order ("plej hor").
            if len(found) >= 2 and rng.random() < 0.01:
                first, second = rng.sample(found, 2)
                pairs.add(f"{first[:rng.randint(3, 5)]} {second[:rng.randint(2, 4)]}")
            # The name mistyped: one letter of a long word left out ("rigshopitalet").
            long_words = [w for w in found if len(w) >= 7]
            if long_words and len(found) <= 3 and rng.random() < 0.01:
                word = rng.choice(long_words)
                k = rng.randint(2, len(word) - 2)
                typos.add(name_search.replace(word, word[:k] + word[k + 1:], 1))
        fragments = sorted(words)
        rng.shuffle(fragments)
        fragments = fragments[:FRAGMENTS]
        totals = [conn.execute(
            f"SELECT count(*) FROM organisations WHERE name_search LIKE %(p)s AND {ACTIVE}",
            {"p": f"%{f}%", "day": day}).fetchone()[0] for f in fragments]

        ydernumre = [r[0] for r in conn.execute(
            "SELECT DISTINCT ydernummer FROM organisations WHERE ownership = 'privat' "
            f"AND level IN ('SI', 'OE') AND ydernummer IS NOT NULL AND {ACTIVE} "
            "ORDER BY ydernummer", {"day": day})]
        if not ydernumre:
            raise BenchError("the register holds no private unit with a ydernummer")
        ydernumre = rng.sample(ydernumre, min(YDERNUMRE, len(ydernumre)))

        sor_codes = [r[0] for r in conn.execute(
            f"SELECT sor_code FROM organisations WHERE {ACTIVE} ORDER BY sor_code",
            {"day": day})]
        shak_codes = [r[0] for r in conn.execute(
            f"SELECT DISTINCT shak FROM organisations WHERE shak IS NOT NULL AND {ACTIVE} "
            "ORDER BY shak", {"day": day})]
    codes = [("sor", c) for c in rng.sample(sor_codes, min(100, len(sor_codes)))]
    codes += [("ydernummer", c) for c in ydernumre[:50]]
    codes += [("shak", c) for c in rng.sample(shak_codes, min(50, len(shak_codes)))]
    rng.shuffle(codes)
    pair_list, typo_list = sorted(pairs), sorted(typos)
    rng.shuffle(pair_list)
    rng.shuffle(typo_list)
    return Inputs(cvr, name, units, listed, fragments, totals, ydernumre, codes,
                  pair_list[:FRAGMENTS], typo_list[:FRAGMENTS])


@dataclass
class Scenario:
    name: str
    paths: list[str]
    check: Callable[[Any], str | None]  # a problem with the parsed body, or None
    # Asked without a token, expecting this status (the floor: 401); None = 200, a token.
    anonymous_status: int | None = None


def _check_list(min_items: int = 0, max_items: int = 500) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return "no items list in the answer"
        n = len(body["items"])
        if not min_items <= n <= max_items:
            return f"{n} items, expected {min_items}-{max_items}"
        return None
    return check


def _check_resolve(body: Any) -> str | None:
    if not isinstance(body, dict) or not body.get("kind"):
        return "no kind in the answer"
    if not any(i.get("organisations") for i in body.get("interpretations", [])):
        return "no organisation in the answer"
    return None


def scenarios(inputs: Inputs) -> dict[str, Scenario]:
    my_cvr_rows = min(500, inputs.my_cvr_rows)
    return {
        TYPEAHEAD: Scenario(TYPEAHEAD, [
            "/api/v1/organisations?" + urlencode({"name": f, "limit": 20})
            for f in inputs.fragments], _check_list(1, 20)),
        MY_CVR: Scenario(MY_CVR, ["/api/v1/lookups/my-cvr/all?limit=500"],
                         _check_list(my_cvr_rows, my_cvr_rows)),
        PRIVAT: Scenario(PRIVAT, [
            "/api/v1/lookups/ownership/privat?" + urlencode({"ydernummer": y})
            for y in inputs.ydernumre], _check_list(1, 50)),
        RESOLVE: Scenario(RESOLVE, [
            "/api/v1/resolve?" + urlencode({"code": c}) for _, c in inputs.codes],
            _check_resolve),
    }


TYPEAHEAD_BY_NAME = "type-ahead by name"
WORDS = "words type-ahead"
FUZZY = "fuzzy"
TARGET_FUZZY_P95_MS = 50.0
TARGET_AFTER_CHANGE_P95_MS = 20.0


def search_scenarios(inputs: Inputs) -> dict[str, Scenario]:
    """The search scenarios of issue 15 beside the type-ahead (which ranks by relevance
    now): the same fragments by name (the order before), two words' starts in any order,
    and fuzzy search for mistyped names."""
    return {
        TYPEAHEAD_BY_NAME: Scenario(TYPEAHEAD_BY_NAME, [
            "/api/v1/organisations?" + urlencode({"name": f, "limit": 20, "sort": "name"})
            for f in inputs.fragments], _check_list(1, 20)),
        WORDS: Scenario(WORDS, [
            "/api/v1/organisations?" + urlencode({"name": f, "limit": 20})
            for f in inputs.word_pairs], _check_list(1, 20)),
        FUZZY: Scenario(FUZZY, [
            "/api/v1/organisations?" + urlencode({"name": f, "limit": 20,
                                                  "name_match": "fuzzy"})
            for f in inputs.typos], _check_list(0, 20)),
    }


# --- the HTTP client -------------------------------------------------------------------------


class Client:
    """One keep-alive connection; reconnects when the server closes it (sync workers do)."""

    def __init__(self, port: int, token: str, cold: bool = False) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                        **(NO_CACHE if cold else {})}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.closed_by_server = 0
        self.cache_hit = False  # whether the last answer came from the service's cache

    def get(self, path: str) -> tuple[int, bytes, float]:
        """(status, body, milliseconds from sending the request to the last byte)."""
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
                ms = (time.perf_counter() - t0) * 1000.0
                self.cache_hit = response.getheader("X-Cache") == "hit"
                if response.will_close:
                    self.closed_by_server += 1
                    self.conn.close()
                return response.status, body, ms
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server had closed: one retry on a new one.
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _record(stats: Stats, scenario: Scenario, status: int, body: bytes, ms: float,
            index: int = -1, cache_hit: bool = False) -> None:
    stats.latencies_ms.append(ms)
    if cache_hit:
        stats.hits += 1
    else:
        stats.miss_latencies_ms.append(ms)
    stats.slowest = max(stats.slowest, (ms, index))
    if scenario.anonymous_status is not None:
        if status != scenario.anonymous_status:
            stats.error(f"HTTP {status}, expected {scenario.anonymous_status}")
        return
    if status != 200:
        stats.error(f"HTTP {status}: {body[:200]!r}")
        return
    try:
        # orjson: the clients share one process and its GIL with the others, and the
        # standard library's parser took ~6 ms of it per 500-row answer - Mit CVR's
        # throughput measured the client (~170/s at most), not the service.
        parsed = orjson.loads(body)
    except ValueError as exc:
        stats.error(f"not JSON: {exc}")
        return
    problem = scenario.check(parsed)
    if problem:
        stats.error(problem)
    elif isinstance(parsed, dict) and isinstance(parsed.get("items"), list):
        stats.rows.append(len(parsed["items"]))


def latency_run(port: int, token: str, scenario: Scenario, requests: int,
                cold: bool, warmup_seconds: float = COLD_WARMUP_SECONDS) -> Stats:
    """One sequential client: warm-up, then *requests* timed requests cycling the paths.

    *cold*: every request asks ``Cache-Control: no-cache``, so the service computes every
    answer (none from its answer cache); the warm-up lasts at least COLD_WARMUP_SECONDS
    (a worker builds its name index in a thread at its first type-ahead; the time after a
    register change is measured on its own) and the paths start where it stopped. Warm:
    the warm-up asks every path once (each answer computed once and cached in this
    client's worker), then the timed requests ask them again."""
    client = Client(port, token, cold=cold)
    if scenario.anonymous_status is not None:
        client.headers.pop("Authorization")
    stats = Stats(scenario.name)
    try:
        i = 0
        until = time.perf_counter() + (warmup_seconds if cold else 0.0)
        while i < (WARMUP if cold else max(WARMUP, len(scenario.paths))) or (
                time.perf_counter() < until):
            client.get(scenario.paths[i % len(scenario.paths)])
            i += 1
        client.closed_by_server = 0
        start = i if cold else 0
        for i in range(requests):
            index = (i + start) % len(scenario.paths)
            status, body, ms = client.get(scenario.paths[index])
            _record(stats, scenario, status, body, ms, index, client.cache_hit)
        stats.closed_by_server = client.closed_by_server
    finally:
        client.close()
    return stats


def floor_run(port: int, requests: int) -> Stats:
    """The service's floor: requests answered without any SQL (401, no token sent), on one
    keep-alive connection like the latency runs."""
    client = Client(port, token="", cold=True)
    client.headers.pop("Authorization")
    stats = Stats("floor")
    try:
        for i in range(WARMUP + requests):
            status, _, ms = client.get("/api/v1/resolve?code=123")
            if status != 401:
                stats.error(f"HTTP {status}, expected 401")
            if i >= WARMUP:
                stats.latencies_ms.append(ms)
    finally:
        client.close()
    return stats


@dataclass
class LoadResult:
    clients: int
    requests: int
    seconds: float
    overall: Stats
    per_scenario: dict[str, Stats]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def load_run(port: int, token: str, plan: dict[str, Scenario], clients: int,
             per_client: int, cold: bool = False) -> LoadResult:
    """*clients* threads, each its own connection, *per_client* requests of the mix each
    (*cold*: every request with ``Cache-Control: no-cache``, every answer computed)."""
    names = list(plan)
    barrier = threading.Barrier(clients + 1)
    results: list[list[tuple[str, int, bytes, float, bool]]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []

    anonymous = all(s.anonymous_status is not None for s in plan.values())

    def worker(n: int) -> None:
        client = Client(port, token, cold=cold)
        if anonymous:
            client.headers.pop("Authorization")
        out = results[n]
        try:
            barrier.wait()
            for i in range(per_client):
                scenario = plan[names[(n + i) % len(names)]]
                path = scenario.paths[(n * 7 + i) % len(scenario.paths)]
                try:
                    status, body, ms = client.get(path)
                except OSError as exc:
                    out.append((scenario.name, 0, repr(exc).encode(), 0.0, False))
                    client.close()
                    continue
                out.append((scenario.name, status, body, ms, client.cache_hit))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise BenchError(f"a load client failed: {failures[0]!r}")
    overall = Stats("all")
    per = {name: Stats(name) for name in names}
    for out in results:
        for name, status, body, ms, hit in out:
            for stats in (overall, per[name]):
                if status == 0:
                    stats.error(body.decode())
                else:
                    _record(stats, plan[name], status, body, ms, cache_hit=hit)
    return LoadResult(clients, clients * per_client, seconds, overall, per)


# --- the same SQL, straight through psycopg --------------------------------------------------


def capture_sql(url: str, inputs: Inputs) -> dict[str, list[list[tuple[str, Any]]]]:
    """For every request of every scenario, the statements the service runs for it.

    Calls what the routes call (``search.search_keys`` with the route's filters - the
    lists, twice, the second call's statements: a page by key and stamp, its total kept
    per register version after an input's first request, as the service runs it once an
    input has been asked; ``reporting.resolve``) in an app of our own on the same database
    and records each statement and its parameters from SQLAlchemy's
    ``before_cursor_execute`` event. Items are kept by the service once seen, so the rows
    of items not kept (read by code) are not among them. The register version is not read
    either: on the primary a worker keeps it in memory (LISTEN/NOTIFY). The type-ahead's
    are its SQL path's (the name index off): exact count and page. The authentication query
    (one SELECT on api_clients per request) is left out: it is the service's own overhead,
    not the lookup, and a worker makes it once a minute per client.
    """


    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "SOR_ENV": "production"})
    captured: list[tuple[str, Any]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    out: dict[str, list[list[tuple[str, Any]]]] = {name: [] for name in SCENARIOS}

    def take() -> list[tuple[str, Any]]:
        """The request's statements (the register version's read left out, see above)."""
        statements = [(sql, parameters) for sql, parameters in captured
                      if "register_version" not in sql]
        captured.clear()
        return statements

    def listed(filters: search.Filters, limit: int) -> list[tuple[str, Any]]:
        """A list's statements once its total is kept: the second request's."""
        search.search_keys(session, filters, sort="name", limit=limit)
        captured.clear()
        search.search_keys(session, filters, sort="name", limit=limit)
        return take()

    NAMES.enabled = False  # the SQL path's statements: exact count and page
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            session = db.session

            register_version(session)
            take()
            session.rollback()
            session.info.clear()
            for fragment in inputs.fragments:
                search.search(session, search.Filters(name=fragment), limit=20)  # by relevance
                out[TYPEAHEAD].append(take())
            out[MY_CVR].append(listed(search.Filters(level=["SI", "OE"],
                                                     cvr=inputs.municipality_cvr), 500))
            for ydernummer in inputs.ydernumre:
                out[PRIVAT].append(listed(search.Filters(
                    level=["SI", "OE"], ownership="privat", ydernummer=ydernummer), 50))
            for _, code in inputs.codes:
                reporting.resolve(session, code, date.today())
                out[RESOLVE].append(take())
            session.rollback()
        finally:
            NAMES.enabled = True
            event.remove(db.engine, "before_cursor_execute", listener)
            db.session.remove()
            db.engine.dispose()
    return out


def raw_run(url: str, name: str, requests: list[list[tuple[str, Any]]], n: int) -> Stats:
    """Time the captured statements of each request, in autocommit mode on one kept
    connection as the service runs them (``sorregistry.reads``), fetching every row;
    warm-up first, cycling the requests like the HTTP runs."""
    stats = Stats(name)
    with psycopg_connect(url, autocommit=True) as conn:
        for i in range(WARMUP + n):
            statements = requests[i % len(requests)]
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                for statement, parameters in statements:
                    cur.execute(statement, parameters)
                    cur.fetchall()
            ms = (time.perf_counter() - t0) * 1000.0
            if i >= WARMUP:
                stats.latencies_ms.append(ms)
                stats.slowest = max(stats.slowest, (ms, i % len(requests)))
    return stats


OWN_WORK = (PRIVAT, RESOLVE)


def own_work_rounds(port: int, token: str, url: str, plan: dict[str, Scenario],
                    captured: dict[str, list[list[tuple[str, Any]]]], rounds: int,
                    n: int) -> dict[str, list[tuple[float, float, float]]]:
    """The parts of the own work per computed answer, side by side: each round asks, for
    each of OWN_WORK, *n* computed answers, *n* of the floor and the request's raw SQL *n*
    times, interleaved one by one (:func:`interleaved_run`): (cold p50, floor p50, raw
    SQL p50) per round; one round more first, not counted."""
    out: dict[str, list[tuple[float, float, float]]] = {name: [] for name in OWN_WORK}
    for r in range(rounds + 1):  # the first thrown away: a warm-up of each part
        for name in OWN_WORK:
            cold, floor, raw = interleaved_run(port, token, url, plan[name], captured[name], n)
            for stats in (cold, floor, raw):
                if stats.errors:
                    raise BenchError(f"{name}, own work: {stats.first_errors[0]}")
            if r:
                out[name].append((cold.p(50), floor.p(50), raw.p(50)))
    return out


def interleaved_run(port: int, token: str, url: str, scenario: Scenario,
                    statements: list[list[tuple[str, Any]]], n: int) -> tuple[Stats, Stats, Stats]:
    """*n* computed answers of *scenario*, *n* of the floor (a 401, no SQL) and *n* of the
    answers' raw SQL (``raw_run``'s way), in turn - a computed answer, a refusal, the
    statements of an input half the inputs on, in each of the six orders by turns (with
    the same input's statements beside its answer, in one order only, the answer ran just
    after its own rows were read two times in three) - after WARMUP of each: the three
    parts measured at the same moments of the machine. Measured in blocks seconds
    apart (until 2026-12-07), one round's cold p50 alone moved 1.73-2.54 ms between
    rounds of one run at 1M while the floor's moved 1.04-1.29: the own work, their
    difference, came out 0.29-1.11 ms for the same code."""
    cold, floor, raw = Stats(scenario.name), Stats("floor"), Stats(scenario.name)
    client = Client(port, token, cold=True)
    refused = Client(port, token="", cold=True)
    refused.headers.pop("Authorization")

    def computed(i: int, timed: bool) -> None:
        index = i % len(scenario.paths)
        status, body, ms = client.get(scenario.paths[index])
        if timed:
            _record(cold, scenario, status, body, ms, index, client.cache_hit)

    def refusal(i: int, timed: bool) -> None:
        status, _, ms = refused.get("/api/v1/resolve?code=123")
        if timed:
            floor.latencies_ms.append(ms)
            if status != 401:
                floor.error(f"HTTP {status}, expected 401")

    try:
        with psycopg_connect(url, autocommit=True) as conn:
            def sql(i: int, timed: bool) -> None:
                t0 = time.perf_counter()
                with conn.cursor() as cur:
                    # Another input's than the computed answer beside it (half the
                    # inputs on): neither runs just after the other read its rows.
                    for statement, parameters in statements[
                            (i + len(statements) // 2) % len(statements)]:
                        cur.execute(statement, parameters)
                        cur.fetchall()
                if timed:
                    raw.latencies_ms.append((time.perf_counter() - t0) * 1000.0)

            orders = list(itertools.permutations((computed, refusal, sql)))
            for i in range(WARMUP + n):
                for part in orders[i % len(orders)]:
                    part(i, i >= WARMUP)
    finally:
        client.close()
        refused.close()
    return cold, floor, raw


def explain(url: str, statements: list[tuple[str, Any]]) -> None:
    """Print EXPLAIN (ANALYZE, BUFFERS) of each statement, and its time as psycopg sees it
    (execute and fetch every row), the third of three runs."""
    with psycopg_connect(url) as conn:
        for statement, parameters in statements:
            for _ in range(3):
                t0 = time.perf_counter()
                conn.execute(statement, parameters).fetchall()
                ms = (time.perf_counter() - t0) * 1000.0
            first = " ".join(statement.split())[:90]
            say(f"   -- {first} ...  [{ms:.2f} ms through psycopg]")
            for (line,) in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement,
                                        parameters).fetchall():
                say(f"      {line}")
            conn.rollback()


def time_auth_query(url: str, token: str, n: int = 500) -> float:
    """p50 ms of the per-request client lookup (SELECT on api_clients by token digest)."""

    latencies = []
    with psycopg_connect(url) as conn:
        for _ in range(n + WARMUP):
            t0 = time.perf_counter()
            conn.execute("SELECT * FROM api_clients WHERE token_digest = %s",
                         (digest_token(token),)).fetchall()
            conn.rollback()
            latencies.append((time.perf_counter() - t0) * 1000.0)
    return percentile(latencies[WARMUP:], 50)


# --- the run ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:8.2f}"


def report_latency(all_stats: dict[str, Stats], title: str) -> None:
    say(f"\n{title}")
    say(f"{'scenario':<20} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
         f"{'max ms':>8} {'mean ms':>8} {'rows':>6} {'errors':>6} {'cached':>7} "
         f"{'miss p50':>8} {'miss p95':>8}")
    for s in all_stats.values():
        rows = f"{sum(s.rows) / len(s.rows):.0f}" if s.rows else "-"
        cached = f"{100.0 * s.hits / len(s.latencies_ms):.0f} %" if s.latencies_ms else "-"
        misses = s.miss_latencies_ms
        say(f"{s.name:<20} {len(s.latencies_ms):>5} {_ms(s.p(50))} {_ms(s.p(95))} "
             f"{_ms(s.p(99))} {_ms(max(s.latencies_ms, default=math.nan))} {_ms(s.mean)} "
             f"{rows:>6} {s.errors:>6} {cached:>7} {_ms(percentile(misses, 50))} "
             f"{_ms(percentile(misses, 95))}")
        for text in s.first_errors:
            say(f"      ! {text}")
    say("   (cached: answers the service took from its per-worker answer cache, X-Cache: hit;"
        " miss p50/p95: the others, computed)")


def name_index_figures(url: str) -> str:
    """Build the service's name index here, as a worker does: rows, seconds, memory."""



    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            t0 = time.perf_counter()
            index = NameIndex(None, date.today(),
                                      read_names(connection, date.today()))
            seconds = time.perf_counter() - t0
            connection.rollback()
            tracemalloc.start()
            index = NameIndex(None, date.today(),
                                      read_names(connection, date.today()))
            size = tracemalloc.get_traced_memory()[0]
            # The fuzzy search's trigram postings, made at the first fuzzy search (in a
            # worker's thread on PostgreSQL), and the suggestions' words.
            t0 = time.perf_counter()
            index.grams.get()
            grams_seconds = time.perf_counter() - t0
            t0 = time.perf_counter()
            index.words.get()
            words_seconds = time.perf_counter() - t0
            grams_size = tracemalloc.get_traced_memory()[0] - size
            tracemalloc.stop()
            connection.rollback()
    finally:
        engine.dispose()
    return (f"{len(index)} organisations, {len(index.names)} distinct names, "
            f"{len(index.postings)} trigrams; read + built in {seconds:.2f} s; "
            f"{size / 1e6:.1f} MB of Python objects; fuzzy's postings {grams_seconds:.2f} s "
            f"and the words {words_seconds:.2f} s (traced, slower), "
            f"{grams_size / 1e6:.1f} MB more")


def patch_figures(url: str) -> str:
    """A rebuild against patches of 1, 100 and 1,000 changed organisations (codes from the
    register, their rows read as a worker reads them): seconds and memory each."""
    engine = create_engine(url)
    out = []
    try:
        with engine.connect() as connection:
            day = date.today()
            t0 = time.perf_counter()
            base = NameIndex(None, day, read_names(connection, day))
            out.append(f"rebuild {time.perf_counter() - t0:.2f} s")
            base.position = 0
            base.rows_of([])  # the code map a first patch makes, outside the timings
            codes = list(base.codes)
            rng = random.Random(3)
            n = OrganisationName.__table__.c
            for count in (1, 100, 1000):
                chosen = rng.sample(codes, count)
                t0 = time.perf_counter()
                tracemalloc.start()
                rows = [(r[0] + " x", r[1], r[2], r[3]) for r in connection.execute(
                    select(n.name_search, n.sor_code, n.level, n.ownership)
                    .where(n.sor_code.in_(chosen)))]
                patched = base.patched(None, 1, chosen, rows)
                size = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
                seconds = time.perf_counter() - t0
                t1 = time.perf_counter()
                for fragment in ("sen", "ple", "kom", "hus", "tan"):
                    patched.search(fragment, "contains", [], None, 20, None, "relevance")
                per_search = (time.perf_counter() - t1) / 5 * 1000
                out.append(f"patch of {count}: {seconds * 1000:.1f} ms, {size / 1e6:.2f} MB, "
                           f"a type-ahead on it {per_search:.1f} ms")
            connection.rollback()
    finally:
        engine.dispose()
    return "; ".join(out)


def change_one(url: str, n: int) -> None:
    """Rename one unit through the service (recorded by hierarchy.changes: a feed entry,
    the version moved), as an approved application does."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context():
        code = db.session.execute(
            select(Organisation.sor_code).where(Organisation.level == "OE")
            .order_by(Organisation.sor_code).offset(n).limit(1)).scalar_one()
        unit = db.session.get(Organisation, code)
        assert unit is not None
        service.change_organisation(db.session, code, {"name": unit.name + " (ny)"},
                                    source="staff", actor="bench")
        db.session.commit()
        db.engine.dispose()


def after_change_run(port: int, token: str, url: str, scenario: Scenario,
                     seconds: float) -> Stats:
    """Change the register (one unit renamed, as an approved application does), then ask
    computed type-aheads for *seconds*: what users meet while each worker brings its name
    index to the new version (a patch from the change feed; a rebuild before)."""
    change_one(url, 7)
    client = Client(port, token, cold=True)
    stats = Stats(scenario.name)
    try:
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            status, body, ms = client.get(scenario.paths[i % len(scenario.paths)])
            _record(stats, scenario, status, body, ms, i % len(scenario.paths),
                    client.cache_hit)
            i += 1
    finally:
        client.close()
    return stats


COMPARE_ROUNDS = 10
TYPEAHEAD_SAME = "type-ahead (sort=name)"
TYPEAHEAD_DEFAULT = "type-ahead (default)"
FLOOR = "floor (401, no SQL)"


def compare_plan(plan: dict[str, Scenario], inputs: Inputs) -> dict[str, Scenario]:
    """The scenarios compared between two trees: each tree must give the same answer.

    Since issue 15 a type-ahead without ``sort`` is ranked by relevance, more work than the
    name order the trees before it gave (and still give with ``sort=name``, which they
    ignore): the verdict compares ``sort=name`` on both; each tree's default order is shown
    beside it, as is the floor (a 401, no SQL: what every answer costs before its work)."""
    same = Scenario(TYPEAHEAD_SAME, [
        "/api/v1/organisations?" + urlencode({"name": f, "limit": 20, "sort": "name"})
        for f in inputs.fragments], _check_list(1, 20))
    floor = Scenario(FLOOR, ["/api/v1/resolve?code=123"], lambda body: None,
                     anonymous_status=401)
    return {TYPEAHEAD_SAME: same,
            TYPEAHEAD_DEFAULT: Scenario(TYPEAHEAD_DEFAULT, plan[TYPEAHEAD].paths,
                                        plan[TYPEAHEAD].check),
            **{name: scenario for name, scenario in plan.items() if name != TYPEAHEAD},
            FLOOR: floor}


def compare_trees(plan: dict[str, Scenario], token: str, requests: int,
                  servers: dict[str, Gunicorn], shown_only: set[str] = frozenset()) -> int:
    """Cold latency of the same scenarios on two code trees serving the same database, side
    by side: each scenario in COMPARE_ROUNDS rounds, each round one block per tree (the
    order alternating), so load on a shared machine falls on both alike. Prints p50/p95 per
    tree and the ratios; exit 0 when every p50 and p95 of this tree is within 10 % of the
    other's (``--compare-with``) - the scenarios in *shown_only* aside -, 2 when not."""
    per = max(1, requests // COMPARE_ROUNDS)
    names = list(servers)
    stats = {(tree, name): Stats(name) for tree in names for name in plan}
    # Every worker of each tree warmed up first, on several connections at once (a worker
    # builds its name index at its first type-ahead): else the first scenario's blocks
    # would time whichever worker had not built it yet.
    warm = [threading.Thread(target=latency_run, daemon=True,
                             args=(servers[tree].port, token, plan[first], 1, True))
            for tree in names for first in list(plan)[:1] for _ in range(4)]
    for thread in warm:
        thread.start()
    for thread in warm:
        thread.join()
    for name, scenario in plan.items():
        for round_ in range(COMPARE_ROUNDS):
            order = names if round_ % 2 == 0 else names[::-1]
            for tree in order:
                # The long warm-up (a worker's name index) once; then WARMUP requests.
                block = latency_run(servers[tree].port, token, scenario, per, cold=True,
                                    warmup_seconds=COLD_WARMUP_SECONDS if round_ < 2 else 0)
                into = stats[(tree, name)]
                into.latencies_ms += block.latencies_ms
                into.errors += block.errors
                into.first_errors += block.first_errors[:2]
    new, old = names
    say(f"\n== side by side, COLD: {COMPARE_ROUNDS} rounds x {per} requests per scenario and "
        f"tree, alternating ({new} = this tree, {old} = --compare-with)")
    say(f"{'scenario':<22} {new + ' p50':>10} {old + ' p50':>12} {'ratio':>6} "
        f"{new + ' p95':>12} {old + ' p95':>12} {'ratio':>6}")
    held = True
    for name in plan:
        a_, b_ = stats[(new, name)], stats[(old, name)]
        r50, r95 = a_.p(50) / b_.p(50), a_.p(95) / b_.p(95)
        if name not in shown_only:
            held = held and r50 <= 1.10 and r95 <= 1.10 and a_.errors == 0 and b_.errors == 0
        say(f"{name:<22} {a_.p(50):10.2f} {b_.p(50):12.2f} {r50:6.2f} "
            f"{a_.p(95):12.2f} {b_.p(95):12.2f} {r95:6.2f}   errors {a_.errors}/{b_.errors}"
            + ("   (shown, not in the verdict)" if name in shown_only else ""))
        for text in a_.first_errors + b_.first_errors:
            say(f"      ! {text}")
    with open("/proc/loadavg", encoding="ascii") as fh:
        say(f"   load average after the runs: {' '.join(fh.read().split()[:3])}")
    say(f"  [{'ok' if held else 'MISSED'}] this tree's cold p50 and p95 within 10 % of "
        "the other's for every scenario giving the same answer on both")
    return 0 if held else 2


def bench(a: argparse.Namespace, workdir: Path) -> int:

    cli = required_command("sorregistry")
    required_command("gunicorn")
    log = workdir / "commands.log"

    if a.file:
        export = a.file.resolve()
        if not export.is_file():
            raise BenchError(f"{export}: no such file")
        say(f"== export: {export}")
    else:
        export = workdir / f"sor_{a.entities}.xml"
        t0 = time.perf_counter()
        counts = load_generator().generate(export, a.entities, seed=a.seed)
        say(f"== generated {export.name}: {sum(counts.values())} entities {counts} in "
             f"{time.perf_counter() - t0:.1f} s, {export.stat().st_size / 1e6:.0f} MB")

    pg_base = workdir / "pg"
    server = None
    gunicorn: Gunicorn | None = None
    try:
        server = Server.start(pg_base, shared_buffers="256MB")
        url = server.create_database("sorbench")
        say(f"== PostgreSQL on 127.0.0.1:{server.port} (shared_buffers=256MB): {url}")
        env = dict(os.environ)
        env.pop("FLASK_APP", None)
        env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                   # The limiter runs (its cost is in the figures) but never refuses: one
                   # client here asks far more than a reporting form's default allowance.
                   SOR_RATELIMIT_API="1000000 per minute",
                   SOR_RATELIMIT_ANONYMOUS="1000000 per minute")
        run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
        out = run_command([cli, "import-sor", "--quiet", str(export)], env, log,
                          what="import-sor")
        for line in out.strip().splitlines()[-6:]:
            say(f"      | {line[:150]}")
        shak = next(p for p in SHAK_FILES if p.exists())
        out = run_command([cli, "import-shak", str(shak)], env, log,
                          what=f"import-shak {shak.name}")
        for line in out.strip().splitlines()[-2:]:
            say(f"      | {line[:150]}")
        with psycopg_connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")  # the import's writes on disk before the timed runs

        inputs = choose_inputs(url, a.seed)
        say(f"   municipality: {inputs.municipality_name} (CVR {inputs.municipality_cvr}), "
             f"{inputs.municipality_units} units, {inputs.my_cvr_rows} active SI/OE")
        say(f"   {len(inputs.fragments)} name fragments, matches per fragment "
             f"min {min(inputs.fragment_totals)} / median "
             f"{sorted(inputs.fragment_totals)[len(inputs.fragment_totals) // 2]} / max "
             f"{max(inputs.fragment_totals)}: {' '.join(inputs.fragments)}")
        kinds = Counter(k for k, _ in inputs.codes)
        say(f"   {len(inputs.ydernumre)} ydernumre; resolve codes: "
             + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
        out = run_command([cli, "create-client", "bench", "--cvr", inputs.municipality_cvr,
                           "--role", "reporter"], env, log, what="create-client")
        token = out.strip().splitlines()[-1].strip()

        gunicorn = Gunicorn(env, workdir / "gunicorn.log", workers=2,
                            worker_class=_worker_class(a), threads=a.threads)
        gunicorn.start()
        say(f"== gunicorn {' '.join(gunicorn.options)} on 127.0.0.1:{gunicorn.port}, "
            f"serving {code_version()}")
        with open("/proc/loadavg", encoding="ascii") as fh:
            say(f"   load average before the runs: {' '.join(fh.read().split()[:3])}")
        plan = scenarios(inputs)
        if a.compare_with:
            other = Gunicorn(env, workdir / "gunicorn-other.log", workers=2,
                             worker_class=_worker_class(a), threads=a.threads,
                             root=a.compare_with)
            other.start()
            say(f"== and gunicorn on 127.0.0.1:{other.port} serving {a.compare_with}")
            try:
                return compare_trees(compare_plan(plan, inputs), token, a.requests,
                                     {"this": gunicorn, "other": other},
                                     shown_only={TYPEAHEAD_DEFAULT, FLOOR})
            finally:
                other.stop()

        say(f"\n== latency: one sequential client per scenario and run, {a.requests} timed "
            "requests each (request sent -> last byte read)")
        cold: dict[str, Stats] = {}
        warm: dict[str, Stats] = {}
        for name, scenario in plan.items():
            cold[name] = latency_run(gunicorn.port, token, scenario, a.requests, cold=True)
            warm[name] = latency_run(gunicorn.port, token, scenario, a.requests, cold=False)
        report_latency(cold, f"COLD - every answer computed (Cache-Control: no-cache; warm-up "
                             f"{WARMUP} requests and {COLD_WARMUP_SECONDS:.0f} s first); the "
                             "targets are judged on these")
        report_latency(warm, "WARM - the answer cache: every input asked once first, then "
                             "asked again")
        searches = {name: latency_run(gunicorn.port, token, scenario, a.requests, cold=True)
                    for name, scenario in search_scenarios(inputs).items()}
        searches = {TYPEAHEAD: cold[TYPEAHEAD], **searches}
        report_latency(searches, f"SEARCH (issue 15), COLD: {TYPEAHEAD} ranks by relevance "
                                 f"(the default now); '{TYPEAHEAD_BY_NAME}' the same fragments "
                                 f"by name, as before; {len(inputs.word_pairs)} word pairs, "
                                 f"{len(inputs.typos)} mistyped names (fuzzy)")
        latency = cold
        floor = floor_run(gunicorn.port, a.requests)
        say(f"   floor: the service's answer that runs no SQL at all (401 to a request without "
            f"a token), {a.requests} requests: p50 {floor.p(50):.2f} ms, p95 {floor.p(95):.2f} ms"
            "\n   (HTTP through gunicorn, Flask's routing and error handler, JSON; a computed "
            "lookup costs this plus its SQL plus its own work)")
        closed = sum(s.closed_by_server for s in [*cold.values(), *warm.values()])
        if closed:
            say(f"   (the server closed the connection after {closed} answers - gunicorn's "
                 "sync workers do not keep connections alive - so most requests include a "
                 "new TCP connection on 127.0.0.1)")
        for name in (TYPEAHEAD, RESOLVE):
            ms, index = cold[name].slowest
            if index >= 0:
                say(f"   slowest cold {name}: {ms:.1f} ms, {plan[name].paths[index]}")

        after = after_change_run(gunicorn.port, token, url, plan[TYPEAHEAD],
                                 AFTER_CHANGE_SECONDS)
        first = after.latencies_ms[:20]
        say(f"\n== after a register change (one unit renamed through the service, as an "
            f"approved application does): computed type-aheads for {AFTER_CHANGE_SECONDS:.0f} s")
        say(f"   {len(after.latencies_ms)} requests, p50 {after.p(50):.1f} ms, p95 "
            f"{after.p(95):.1f} ms, max {max(after.latencies_ms):.1f} ms, errors "
            f"{after.errors}; the first 20: {' '.join(f'{ms:.0f}' for ms in first)} ms")
        say("   (each worker patches its name index from the change feed in a thread "
            "meanwhile; until it has, type-aheads take the SQL path)")

        total = a.concurrency * a.per_client
        # Untimed: the first concurrent requests are the first on most of the workers'
        # threads (the one-client runs above used one or two), and each thread opens its
        # own PostgreSQL connection, whose backend then loads its catalog and prepares
        # each statement (psycopg prepares one on its fifth run on a connection) - a
        # start-up cost a running service has paid long ago, which made the first timed
        # run the slowest (at 200k after the same one-client runs, four mixes in turn:
        # 486, 580, 480, 643 requests/s; PostgreSQL's CPU 0.82 ms a request in the
        # first, 0.38-0.51 after).
        warm_up = load_run(gunicorn.port, token, plan, a.concurrency, 20, cold=True)
        say(f"\n== {warm_up.requests} concurrent requests first, not timed (each worker "
            "thread's own connection opened and its statements prepared): "
            f"{warm_up.rate:.0f} requests/s")
        loads: dict[str, LoadResult] = {}
        for label, no_cache in (("cold", True), ("warm", False)):
            say(f"\n== throughput, {label}: {a.concurrency} concurrent clients x "
                f"{a.per_client} requests = {total}, the four scenarios in turn"
                + (" (every request Cache-Control: no-cache)" if no_cache else ""))
            load = load_run(gunicorn.port, token, plan, a.concurrency, a.per_client,
                            cold=no_cache)
            loads[label] = load
            say(f"   {load.rate:.0f} requests/s ({load.requests} in {load.seconds:.1f} s), "
                f"p50 {load.overall.p(50):.1f} ms, p95 {load.overall.p(95):.1f} ms, "
                f"p99 {load.overall.p(99):.1f} ms, errors {load.overall.errors}, "
                f"cached {100.0 * load.overall.hits / max(1, load.requests):.0f} %")
            for s in load.per_scenario.values():
                say(f"   {s.name:<20} p50 {s.p(50):8.1f} ms  p95 {s.p(95):8.1f} ms  "
                    f"errors {s.errors}")
            for text in load.overall.first_errors:
                say(f"      ! {text}")
        floor_plan = {FLOOR: Scenario(FLOOR, ["/api/v1/resolve?code=123"], lambda body: None,
                                      anonymous_status=401)}
        floor_load = load_run(gunicorn.port, token, floor_plan, a.concurrency, a.per_client,
                              cold=True)
        say(f"\n== throughput of the floor (a 401, no SQL): {a.concurrency} concurrent clients "
            f"x {a.per_client}: {floor_load.rate:.0f} requests/s, p50 "
            f"{floor_load.overall.p(50):.1f} ms, p95 {floor_load.overall.p(95):.1f} ms, errors "
            f"{floor_load.overall.errors}; cold lookups reach "
            f"{loads['cold'].rate / floor_load.rate:.2f} of it")
        # Each scenario alone under the same clients: which lookups reach half the floor.
        alone: dict[str, LoadResult] = {}
        per_client = max(1, a.per_client // 4)
        say(f"\n== throughput, cold, each scenario alone: {a.concurrency} concurrent clients "
            f"x {per_client}")
        for name, scenario in plan.items():
            alone[name] = load_run(gunicorn.port, token, {name: scenario}, a.concurrency,
                                   per_client, cold=True)
            say(f"   {name:<20} {alone[name].rate:7.0f} requests/s  "
                f"{alone[name].rate / floor_load.rate:5.2f} of the floor  p50 "
                f"{alone[name].overall.p(50):7.1f} ms  p95 {alone[name].overall.p(95):7.1f} ms  "
                f"errors {alone[name].overall.errors}")
        # The verdict on the cold mix against the floor: pairs run side by side, the order
        # alternating, and the median of their ratios - the floor alone moved 1,179-1,560
        # requests/s from run to run on this shared machine, one pair's ratio 0.36-0.45.
        say(f"\n== the cold mix against the floor, side by side: {a.ratio_rounds} rounds of "
            f"{a.concurrency} clients x {a.per_client} each, the order alternating")
        pairs: list[tuple[LoadResult, LoadResult]] = []
        for r in range(a.ratio_rounds):
            ran: dict[str, LoadResult] = {}
            for which in (("mix", "floor") if r % 2 == 0 else ("floor", "mix")):
                ran[which] = load_run(gunicorn.port, token,
                                      plan if which == "mix" else floor_plan,
                                      a.concurrency, a.per_client, cold=True)
            pairs.append((ran["mix"], ran["floor"]))
            say(f"   round {r}: mix {ran['mix'].rate:5.0f}/s, floor {ran['floor'].rate:5.0f}/s:"
                f" {ran['mix'].rate / ran['floor'].rate:.2f}  (mix p99 "
                f"{ran['mix'].overall.p(99):.1f} ms, errors "
                f"{ran['mix'].overall.errors + ran['floor'].overall.errors})")
        ratios = sorted(mix.rate / floor.rate for mix, floor in pairs)
        mix_median = statistics.median(mix.rate for mix, _ in pairs)
        floor_median = statistics.median(floor.rate for _, floor in pairs)
        ratio = statistics.median(ratios)
        say(f"   the rounds' ratios {' '.join(f'{x:.2f}' for x in ratios)}: median {ratio:.2f};"
            f" the medians {mix_median:.0f} / {floor_median:.0f} requests/s = "
            f"{mix_median / floor_median:.2f}")
        rounds_loads = [load for pair in pairs for load in pair]
        load_errors = sum(load.overall.errors for load in
                          [*loads.values(), floor_load, *alone.values(), *rounds_loads])
        load_requests = sum(load.requests for load in
                            [*loads.values(), floor_load, *alone.values(), *rounds_loads])
        assert gunicorn.proc is not None
        rss = worker_rss(gunicorn.proc.pid)
        say(f"\n   gunicorn workers' resident memory at the end: "
            f"{', '.join(f'{mb:.0f} MB' for mb in rss)}")
        say(f"   name index (built in the bench process as a worker builds it): "
            f"{name_index_figures(url)}")
        say(f"   name index, rebuilt vs patched from the change record: {patch_figures(url)}")
        # The statements each request runs, then the own work's rounds on the service the
        # latency runs used, before it stops (the raw SQL below runs without it).
        captured = capture_sql(url, inputs)
        own = own_work_rounds(gunicorn.port, token, url, plan, captured, a.own_rounds,
                              a.own_requests)
        gunicorn.stop()

        say(f"\n== raw SQL through psycopg: the statements the service runs for each request "
             f"(captured from SQLAlchemy), {WARMUP} warm-up + {a.requests} per scenario")
        raw: dict[str, Stats] = {}
        say("   (type-ahead: the SQL path's statements, exact count and page, which the name "
            "index replaces;\n    a type-ahead the index answers runs one statement, the "
            "page's 20 rows by key)")
        say(f"{'scenario':<20} {'stmts':>5} {'raw p50':>8} {'raw p95':>8} {'cold p50':>8} "
             f"{'cold p95':>8} {'warm p50':>8} {'cold/raw':>8} {'warm/raw':>8} {'floor/raw':>9}"
             "   (ms; ratios of the p50s; cold: computed answers, warm: the answer cache,"
             " floor: no SQL)")
        for name in SCENARIOS:
            raw[name] = raw_run(url, name, captured[name], a.requests)
            statements = sum(len(r) for r in captured[name]) / len(captured[name])
            r, svc, hot = raw[name], cold[name], warm[name]
            say(f"{name:<20} {statements:5.1f} {_ms(r.p(50))} {_ms(r.p(95))} {_ms(svc.p(50))} "
                 f"{_ms(svc.p(95))} {_ms(hot.p(50))} {svc.p(50) / r.p(50):8.1f} "
                 f"{hot.p(50) / r.p(50):8.1f} {floor.p(50) / r.p(50):8.1f}")
        say(f"   (not in the raw figures: the per-request client lookup on api_clients, "
             f"p50 {time_auth_query(url, token):.2f} ms raw)")
        for name in SCENARIOS:
            ms, index = raw[name].slowest
            params = {k: v for statement in captured[name][index]
                      for k, v in (statement[1] or {}).items()
                      if k.startswith(("name_search", "owner_cvr", "ydernummer", "sor_code",
                                       "shak", "code"))}
            say(f"   slowest raw {name}: {ms:.1f} ms {params}")
        if a.show_sql:
            for name in SCENARIOS:
                say(f"\n-- {name}")
                for statement, parameters in captured[name][0]:
                    say(f"{statement};\n   -- {parameters}")
        if a.explain:
            for name in SCENARIOS:
                say(f"\n== EXPLAIN ANALYZE, {name}: its slowest raw request")
                explain(url, captured[name][raw[name].slowest[1]])

        say(f"\n== own work per computed answer, side by side (measured before the raw SQL "
            f"above, on the service of the latency runs): {a.own_rounds} rounds, each the "
            f"scenario's cold p50, the floor's and its raw SQL's ({a.own_requests} requests "
            f"each, interleaved one by one); own = cold - floor - SQL")
        own_targets = []
        for name, parts in own.items():
            values = [c - f - r for c, f, r in parts]
            sql = statistics.median(r for _, _, r in parts)
            for i, (c, f, r) in enumerate(parts):
                say(f"   round {i} {name:<20} {c:6.2f} - {f:5.2f} - {r:5.2f} = "
                    f"{c - f - r:5.2f} ms")
            mine = statistics.median(values)
            say(f"   {name}: own work {mine:.2f} ms by the median of the rounds "
                f"({' '.join(f'{v:.2f}' for v in values)}), its SQL {sql:.2f} ms")
            own_targets.append((f"{name}: own work per computed answer {mine:.2f} ms <= its "
                                f"SQL's {sql:.2f} ms (median of {len(values)} side-by-side "
                                f"rounds)", mine <= sql))

        targets = [
            (f"name type-ahead p95 (cold) {latency[TYPEAHEAD].p(95):.1f} ms <= "
             f"{TARGET_TYPEAHEAD_P95_MS:.0f} ms",
             latency[TYPEAHEAD].p(95) <= TARGET_TYPEAHEAD_P95_MS),
            (f"words type-ahead p95 (cold) {searches[WORDS].p(95):.1f} ms <= "
             f"{TARGET_TYPEAHEAD_P95_MS:.0f} ms",
             searches[WORDS].p(95) <= TARGET_TYPEAHEAD_P95_MS),
            (f"fuzzy p95 (cold) {searches[FUZZY].p(95):.1f} ms <= {TARGET_FUZZY_P95_MS:.0f} ms",
             searches[FUZZY].p(95) <= TARGET_FUZZY_P95_MS),
            (f"type-ahead p95 in the {AFTER_CHANGE_SECONDS:.0f} s after a change "
             f"{after.p(95):.1f} ms <= {TARGET_AFTER_CHANGE_P95_MS:.0f} ms",
             after.p(95) <= TARGET_AFTER_CHANGE_P95_MS),
            (f"resolve p95 (cold) {latency[RESOLVE].p(95):.1f} ms <= "
             f"{TARGET_RESOLVE_P95_MS:.0f} ms",
             latency[RESOLVE].p(95) <= TARGET_RESOLVE_P95_MS),
            (f"Mit CVR - Alle ({min(500, inputs.my_cvr_rows)} rows) p95 (cold) "
             f"{latency[MY_CVR].p(95):.1f} ms <= {TARGET_MY_CVR_P95_MS:.0f} ms",
             latency[MY_CVR].p(95) <= TARGET_MY_CVR_P95_MS),
            (f"no errors under load, cold and warm ({load_errors} of {load_requests})",
             load_errors == 0),
            (f"cold throughput with {a.concurrency} clients >= half the floor's, by the median "
             f"of {len(pairs)} side-by-side rounds' ratios: {ratio:.2f} (the first pair "
             f"{loads['cold'].rate:.0f} / {floor_load.rate:.0f} requests/s = "
             f"{loads['cold'].rate / floor_load.rate:.2f})",
             ratio >= 0.5),
        ]
        targets += own_targets
        if inputs.my_cvr_rows < 500:
            targets.append((f"Mit CVR - Alle returns >= 500 rows ({inputs.my_cvr_rows})", False))
        for name in SCENARIOS:
            ratio = latency[name].p(50) / raw[name].p(50)
            targets.append((f"{name}: service p50 (cold) / raw SQL p50 = {ratio:.1f} <= "
                            f"{TARGET_RATIO:.0f}", ratio <= TARGET_RATIO))
        with open("/proc/loadavg", encoding="ascii") as fh:
            say(f"\n   load average after the runs: {' '.join(fh.read().split()[:3])}")
        say("\n== targets (on the COLD figures: answers the service computed)")
        for text, held in targets:
            say(f"  [{'ok' if held else 'MISSED'}] {text}")
        latency_errors = sum(s.errors for s in [*cold.values(), *warm.values()])
        if latency_errors:
            say(f"  [FAILED] {latency_errors} wrong answers in the latency runs")
            return 1
        return 0 if all(held for _, held in targets) else 2
    finally:
        if gunicorn is not None:
            gunicorn.stop()
        if server is not None:
            server.stop()
        else:
            stop_stray_postgres(pg_base)


def _worker_class(a: argparse.Namespace) -> str | None:
    """gunicorn's worker class for --worker-class (None: each tree's own, common.Gunicorn)."""
    return None if a.worker_class == "project" else a.worker_class


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--file", type=Path, help="import this export instead of generating one")
    p.add_argument("--requests", type=int, default=1000, help="timed requests per scenario")
    p.add_argument("--concurrency", type=int, default=32, help="clients in the load run")
    p.add_argument("--per-client", type=int, default=100,
                   help="requests per client in the load run")
    p.add_argument("--worker-class", choices=("project", "gthread", "sync"), default="project",
                   help="gunicorn worker class: the project's (gunicorn.conf.py's: gthread "
                        "waking the thread idle last), gunicorn's gthread, or sync")
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    p.add_argument("--ratio-rounds", type=int, default=5,
                   help="rounds of the cold mix and the floor side by side (order alternating)")
    p.add_argument("--own-rounds", type=int, default=5,
                   help="side-by-side rounds of the own work per computed answer")
    p.add_argument("--own-requests", type=int, default=300,
                   help="requests of each part per own-work round")
    p.add_argument("--show-sql", action="store_true",
                   help="print the captured SQL of each scenario's first request")
    p.add_argument("--explain", action="store_true",
                   help="print EXPLAIN (ANALYZE, BUFFERS) of each scenario's slowest request")
    p.add_argument("--compare-with", type=Path, metavar="TREE",
                   help="serve the same database from another checkout too (its .venv's "
                        "gunicorn) and compare the cold latencies side by side")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (export, logs, stopped cluster)")
    a = p.parse_args(argv)
    if a.requests < 1 or a.concurrency < 1 or a.per_client < 1:
        p.error("--requests, --concurrency and --per-client must be at least 1")
    terminate_on_signal()
    try:
        with temp_dir(a.keep, "sorbench-lookups-") as workdir:
            os.chmod(workdir, 0o755)
            return bench(a, workdir)
    except BenchError as exc:
        say(f"\n[FAILED] {exc}")
        return 1
    except KeyboardInterrupt:
        say("\n[bench] interrupted: cleaned up")
        return 1


if __name__ == "__main__":
    sys.exit(main())

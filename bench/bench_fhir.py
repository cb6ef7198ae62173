#!/usr/bin/env python3
"""Benchmark the FHIR directory beside the equivalent /api/v1 lookups, on a national-size
register, through gunicorn.

    .venv/bin/python bench/bench_fhir.py [--entities 200000] [--file FILE] [--requests 500]
    .venv/bin/python bench/bench_fhir.py --entities 20000 --requests 200   # quick
    .venv/bin/python bench/bench_fhir.py --database-url postgresql+psycopg://...  # imported

Sets up as ``bench_lookups.py`` does (its helpers: a generated SOR v2 export, a throwaway
PostgreSQL 15, ``sorregistry db upgrade`` and ``import-sor``, a ``reporter`` client,
``gunicorn -w 2 -k gthread --threads 4``, ``SOR_ENV=production``), then:

* **Latency, side by side**: one sequential client asks each pair in turn - the API's
  request, then FHIR's for the same input - so both meet the same moment of the machine.
  Every answer computed (``Cache-Control: no-cache``; FHIR has no answer cache), status
  200 and a body of the expected shape checked on each. The pairs:

  - name search: ``/api/v1/organisations?name=<3 letters>&limit=20`` and
    ``/fhir/Organization?name:contains=<3 letters>&active=true&_count=20`` (the same search);
  - a municipality's subtree (1,000-1,500 units), 500 a page:
    ``/api/v1/organisations?under=<IE>&limit=500`` and
    ``/fhir/Organization?partof:below=<IE>&_count=500``;
  - identifier: ``/api/v1/organisations?ydernummer=<y>`` and
    ``/fhir/Organization?identifier=urn:oid:1.2.208.176.1.4|<y>``;
  - read: ``/api/v1/organisations/<code>`` and ``/fhir/Organization/<code>``.

  Target: FHIR p95 <= 1.5 x the API's p95, for each pair.
* **ITI-91 catch-up**: ``/fhir/Organization/_history?_since=<before the import>&_count=500``
  followed by its next links for ``--history-entries`` entries: entries per second.
* **The fhir-ndjson export** of the whole register (``hierarchy.fhir.export.write_ndjson``,
  in this process, one statement): seconds; target <= 90 s at 200,000. And the same through
  HTTP, ``/fhir/Organization?_format=ndjson`` (the search's pages, streamed).

The load average is printed before and after. Exit status 0 when every target holds, 2
when one is missed, 1 when something fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench_lookups import (
    SHAK_FILES,
    BenchError,
    Client,
    Gunicorn,
    Stats,
    choose_inputs,
    code_version,
    psycopg_connect,
    required_command,
    run_command,
    temp_dir,
)
from common import load_generator, say, stop_stray_postgres, terminate_on_signal

from hierarchy.fhir.export import write_ndjson
from sorregistry import create_app
from sorregistry.extensions import db
from tests.support.postgres import Server

WARMUP = 50
COLD_WARMUP_SECONDS = 8.0  # each worker builds its name index in a thread at first
TARGET_RATIO = 1.5
TARGET_EXPORT_SECONDS = 90.0
YDERNUMMER = "urn:oid:1.2.208.176.1.4"


def _loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return " ".join(fh.read().split()[:3])


def _pairs(inputs, municipality: str, codes: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each scenario's (API path, FHIR path) pairs, one per input."""
    return {
        "name search": [
            ("/api/v1/organisations?" + urlencode({"name": f, "limit": 20}),
             "/fhir/Organization?" + urlencode({"name:contains": f, "active": "true",
                                                "_count": 20}))
            for f in inputs.fragments],
        "partof:below (500)": [
            ("/api/v1/organisations?" + urlencode({"under": municipality, "limit": 500}),
             "/fhir/Organization?" + urlencode({"partof:below": municipality, "_count": 500}))],
        "identifier": [
            ("/api/v1/organisations?" + urlencode({"ydernummer": y}),
             "/fhir/Organization?" + urlencode({"identifier": f"{YDERNUMMER}|{y}"}))
            for y in inputs.ydernumre],
        "read": [(f"/api/v1/organisations/{c}", f"/fhir/Organization/{c}") for c in codes],
    }


def _others(municipality: str, code: str, before_import: str) -> dict[str, str]:
    return {
        "name (FHIR's default: a word starts, all units)": "/fhir/Organization?name=plejec",
        "partof:above": f"/fhir/Organization?partof:above={code}",
        "_lastUpdated=gt<before the import>&_count=50":
            f"/fhir/Organization?_lastUpdated=gt{before_import}&_count=50",
        "address-postalcode=8000&_count=50": "/fhir/Organization?address-postalcode=8000"
                                             "&_count=50",
        "address-city=Aarhus&_count=50": "/fhir/Organization?address-city=Aarhus&_count=50",
        "type=plejehjem&active=true&_count=50": "/fhir/Organization?type=42665001"
                                                "&active=true&_count=50",
        "below + _revinclude=Location, _count=100": f"/fhir/Organization?partof:below="
            f"{municipality}&_revinclude=Location:organization&_count=100",
        "Location?organization=<a unit>": f"/fhir/Location?organization={code}",
        "_summary=count of the subtree": f"/fhir/Organization?partof:below={municipality}"
                                         "&_summary=count",
    }


def fhir_run(port: int, token: str, path: str, requests: int) -> Stats:
    client = Client(port, token, cold=True)
    stats = Stats(path)
    try:
        for n in range(WARMUP // 5 + requests):
            status, body, ms = client.get(path)
            if n >= WARMUP // 5:
                stats.latencies_ms.append(ms)
                if status != 200:
                    stats.error(f"HTTP {status}: {body[:200]!r}")
    finally:
        client.close()
    return stats


def _problem(body: bytes, fhir: bool) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if fhir:
        if parsed.get("resourceType") not in ("Bundle", "Organization"):
            return f"a {parsed.get('resourceType')}"
        if parsed["resourceType"] == "Bundle" and not parsed.get("entry"):
            return "an empty Bundle"
        return None
    if "sor_code" not in parsed and not parsed.get("items"):
        return "no items"
    return None


def side_by_side(port: int, token: str, pairs: list[tuple[str, str]],
                 requests: int) -> tuple[Stats, Stats]:
    client = Client(port, token, cold=True)
    api, fhir = Stats("api"), Stats("fhir")
    try:
        i = 0
        until = time.perf_counter() + COLD_WARMUP_SECONDS
        while i < WARMUP or time.perf_counter() < until:
            for path in pairs[i % len(pairs)]:
                client.get(path)
            i += 1
        for n in range(requests):
            for stats, path, is_fhir in zip((api, fhir), pairs[(i + n) % len(pairs)],
                                            (False, True), strict=True):
                status, body, ms = client.get(path)
                stats.latencies_ms.append(ms)
                problem = f"HTTP {status}" if status != 200 else _problem(body, is_fhir)
                if problem:
                    stats.error(f"{path}: {problem}")
    finally:
        client.close()
    return api, fhir


def _get(port: int, token: str, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise BenchError(f"{path}: HTTP {response.status} {body[:300]!r}")
        return json.loads(body)
    finally:
        conn.close()


def history_run(port: int, token: str, since: str, entries: int) -> tuple[int, float, int]:
    """(entries read, seconds, pages) catching up from *since* by the next links."""
    path = "/fhir/Organization/_history?" + urlencode({"_since": since, "_count": 500})
    read = pages = 0
    t0 = time.perf_counter()
    while path and read < entries:
        bundle = _get(port, token, path)
        read += len(bundle.get("entry", []))
        pages += 1
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        path = ("{0.path}?{0.query}".format(urlsplit(following[0]))) if following else ""
    return read, time.perf_counter() - t0, pages


def http_ndjson(port: int, token: str) -> tuple[int, float, int]:
    """(lines, seconds, bytes) of /fhir/Organization?_format=ndjson, the whole register."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    t0 = time.perf_counter()
    lines = size = 0
    try:
        conn.request("GET", "/fhir/Organization?_format=ndjson",
                     headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        if response.status != 200:
            raise BenchError(f"ndjson: HTTP {response.status}")
        while chunk := response.read(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
    finally:
        conn.close()
    return lines, time.perf_counter() - t0, size


def export_run(url: str, workdir: Path) -> tuple[dict[str, int], float, int]:
    """The fhir-ndjson export's writer, in this process: (counts, seconds, bytes)."""


    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    organizations, locations = workdir / "Organization.ndjson", workdir / "Location.ndjson"
    with app.app_context(), open(organizations, "wb") as o, open(locations, "wb") as loc:
        t0 = time.perf_counter()
        counts = write_ndjson(db.session, {"Organization": o, "Location": loc})
        seconds = time.perf_counter() - t0
        db.session.remove()
        db.engine.dispose()
    size = organizations.stat().st_size + locations.stat().st_size
    return dict(counts), seconds, size


def _row(name: str, api: Stats, fhir: Stats) -> tuple[str, float]:
    ratio = fhir.p(95) / api.p(95)
    return (f"{name:<20} {api.p(50):7.1f} {api.p(95):7.1f} {fhir.p(50):7.1f} {fhir.p(95):7.1f}"
            f" {ratio:7.2f}  {api.errors + fhir.errors}"), ratio


def bench(a: argparse.Namespace, workdir: Path) -> int:

    cli = required_command("sorregistry")
    log = workdir / "commands.log"
    if a.database_url:
        export = None
    elif a.file:
        export = a.file.resolve()
    else:
        export = workdir / f"sor_{a.entities}.xml"
        t0 = time.perf_counter()
        counts = load_generator().generate(export, a.entities, seed=a.seed)
        say(f"== generated {export.name}: {sum(counts.values())} entities {counts} in "
            f"{time.perf_counter() - t0:.1f} s")
    pg_base = workdir / "pg"
    server = None
    gunicorn: Gunicorn | None = None
    try:
        url = a.database_url or ""
        if not url:
            server = Server.start(pg_base, shared_buffers="256MB")
            url = server.create_database("sorbench")
        env = dict(os.environ)
        env.pop("FLASK_APP", None)
        env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                   SOR_RATELIMIT_ENABLED="0")  # latency measured, not the limits
        if export is not None:
            run_command([cli, "db", "upgrade"], env, log, what="db upgrade")
            before_import = datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
            run_command([cli, "import-sor", "--quiet", str(export)], env, log,
                        what="import-sor")
            shak = next(p for p in SHAK_FILES if p.exists())
            run_command([cli, "import-shak", str(shak)], env, log, what="import-shak")
        with psycopg_connect(url, autocommit=True) as conn:
            if export is None:  # a register imported before: its history from the start
                first = conn.execute("SELECT min(recorded_at) FROM organisation_versions"
                                     ).fetchone()[0]
                before_import = first.astimezone(UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z")
                say(f"== the register at {a.database_url.rsplit('@', 1)[-1]}, "
                    f"imported from {before_import}")
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
            inputs = choose_inputs(url, a.seed)
            municipality = conn.execute(
                "SELECT sor_code FROM organisations WHERE level = 'IE' AND owner_cvr = %s "
                "AND ownership = 'kommunal' ORDER BY sor_code LIMIT 1",
                (inputs.municipality_cvr,)).fetchone()[0]
            below = conn.execute("SELECT count(*) FROM organisations o, organisations ie "
                                 "WHERE ie.sor_code = %s AND o.path LIKE ie.path || '%%' "
                                 "AND o.sor_code <> ie.sor_code", (municipality,)).fetchone()[0]
            codes = [r[0] for r in conn.execute("SELECT sor_code FROM organisations")]
        codes = random.Random(a.seed).sample(codes, min(200, len(codes)))
        say(f"   municipality {inputs.municipality_name} ({municipality}): {below} units below "
            f"it; {len(inputs.fragments)} name fragments, {len(inputs.ydernumre)} ydernumre, "
            f"{len(codes)} codes to read")
        out = run_command([cli, "create-client", "bench", "--cvr", inputs.municipality_cvr,
                           "--role", "reporter"], env, log, what="create-client")
        token = out.strip().splitlines()[-1].strip()
        gunicorn = Gunicorn(env, workdir / "gunicorn.log", workers=2, threads=4)
        gunicorn.start()
        say(f"== gunicorn {' '.join(gunicorn.options)} on 127.0.0.1:{gunicorn.port}, serving "
            f"{code_version()}")
        say(f"   load average before the runs: {_loadavg()}")

        say(f"\n== latency, side by side: {a.requests} pairs per scenario, one client, every "
            "answer computed (ms, request sent -> last byte)")
        say(f"{'scenario':<20} {'API p50':>7} {'API p95':>7} {'FHIR p50':>7} {'FHIR p95':>7} "
            f"{'p95 x':>7}  errors")
        targets: list[tuple[str, bool]] = []
        errors = 0
        for name, pairs in _pairs(inputs, municipality, codes).items():
            api, fhir = side_by_side(gunicorn.port, token, pairs, a.requests)
            line, ratio = _row(name, api, fhir)
            say(line)
            for text in [*api.first_errors, *fhir.first_errors]:
                say(f"      ! {text}")
            errors += api.errors + fhir.errors
            targets.append((f"{name}: FHIR p95 / API p95 = {ratio:.2f} <= {TARGET_RATIO}",
                            ratio <= TARGET_RATIO))

        say(f"\n== other FHIR searches, no API twin (no target): {a.other_requests} requests "
            "each, one client")
        for name, path in _others(municipality, codes[0], before_import).items():
            stats = fhir_run(gunicorn.port, token, path, a.other_requests)
            say(f"   {name:<46} p50 {stats.p(50):7.1f}  p95 {stats.p(95):7.1f} ms  "
                f"errors {stats.errors}")
            for text in stats.first_errors:
                say(f"      ! {text}")

        read, seconds, pages = history_run(gunicorn.port, token, before_import,
                                           a.history_entries)
        say(f"\n== ITI-91 catch-up: _history?_since=<before the import>&_count=500, {pages} "
            f"pages: {read} entries in {seconds:.1f} s = {read / seconds:.0f} entries/s")
        lines, seconds, size = http_ndjson(gunicorn.port, token)
        say(f"== GET /fhir/Organization?_format=ndjson: {lines} lines, {size / 1e6:.0f} MB in "
            f"{seconds:.1f} s ({lines / seconds:.0f} resources/s)")
        gunicorn.stop()
        counts, seconds, size = export_run(url, workdir)
        say(f"== fhir-ndjson export (write_ndjson, one statement): {counts}, "
            f"{size / 1e6:.0f} MB in {seconds:.1f} s")
        targets.append((f"fhir-ndjson export {seconds:.1f} s <= {TARGET_EXPORT_SECONDS:.0f} s",
                        seconds <= TARGET_EXPORT_SECONDS))
        say(f"\n   load average after the runs: {_loadavg()}")
        say("\n== targets")
        for text, held in targets:
            say(f"  [{'ok' if held else 'MISSED'}] {text}")
        if errors:
            say(f"  [FAILED] {errors} wrong answers")
            return 1
        return 0 if all(held for _, held in targets) else 2
    finally:
        if gunicorn is not None:
            gunicorn.stop()
        if server is not None:
            server.stop()
        else:
            stop_stray_postgres(pg_base)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--file", type=Path, help="import this export instead of generating one")
    p.add_argument("--requests", type=int, default=500, help="timed pairs per scenario")
    p.add_argument("--other-requests", type=int, default=50,
                   help="requests per FHIR-only search (no target)")
    p.add_argument("--history-entries", type=int, default=20_000,
                   help="history entries to catch up in the ITI-91 run")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--database-url", help="measure this register (imported already, left as "
                   "it is but for a client added) instead of importing one")
    a = p.parse_args(argv)
    terminate_on_signal()
    try:
        with temp_dir(a.keep, "sorbench-fhir-") as workdir:
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

#!/usr/bin/env python3
"""Benchmark the change feed on PostgreSQL: catch-up, long-poll latency, its cost on the
write paths, and the NDJSON export.

    .venv/bin/python bench/bench_feed.py [--entities 200000] [--approvals 200]
                                         [--base REV] [--before REV] [--out FILE] [--keep]

Generates a SOR export of ``--entities`` (bench/generate_sor_export.py) and its changed
variant (5 % changed, 1 % of subtrees gone), starts a throwaway PostgreSQL server, and
runs two code bases side by side on it, each on a database of its own:

* **base**: the code without the feed: by default this tree with its feed's entries
  switched off (``bench/feed_off`` first on ``PYTHONPATH``: its import and approvals write
  no entry, everything else is the same code); or ``--base REV``, unpacked with ``git
  archive`` and run with this venv (``PYTHONPATH``), migrated with this tree's migrations
  (the editable install maps ``sorregistry.migrations`` here), the feed's tables left
  empty. (Imports alone, over several alternating rounds: ``bench/bench_feed_cost.py``.)
* **before** (with ``--before REV``): an earlier version of the feed, unpacked and run
  as the base is, measured as the feed is (catch-up and latency too): the write paths and
  the catch-up before and after a change of the feed, side by side in one run.
* **feed**: this working tree.

For each: ``sorregistry import-sor`` of the export (wall time, peak RSS), then of the
changed export; ``--approvals`` applications submitted, a ``VACUUM ANALYZE`` (the work
the imports left the autovacuum daemon, done before the approvals in every variant rather
than during one's), and each variant served by ``gunicorn -w 2 -k gthread --threads 4``.
Then the applications are approved one at a time over HTTP, **side by side**: the first
in every variant, then the second, ... the variants' order turning each time (p50 / p95
of the approval in each). With the feed a client long-polls ``/api/v1/changes?wait=2``
meanwhile, and the time from an approval's commit (the arrival of the ``NOTIFY sor_feed``
it sends at COMMIT at a listener of the bench's own, on the poller's clock) to the poller
holding the new organisation is the **latency** (p50 / p95; target p95 <= 100 ms).
On the feed's database, before the approvals, the **catch-up**: one client reading the
whole feed from the start, 1,000 a page, parsing each page in full in a second thread
while it fetches the next (entries/s; target >= 20,000/s; the request's and the parse's
milliseconds a page printed apart); after them ``sorregistry export --format ndjson``
(wall time, peak RSS) and the same over HTTP. The
write-path targets: import time and approval p95 with the feed within 10 % of the base.

Output: the figures, ratios feed / base, and ``uptime`` before and after (the machine is
shared: say its load beside the figures); written to ``--out`` as well.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
from bench_import import Run, run_measured
from common import (
    FEED_OFF_PATH,
    ROOT,
    find_command,
    free_port,
    load_generator,
    percentile,
    postgres_server,
    say,
    uptime,
)

from hierarchy.changes import FEED_CHANNEL

SETUP = r"""
import json, sys
from applications import service as A
from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.helpers import bearer, build_register, new_nursing_home

app = create_app()
with app.app_context():
    build_register(db.session)
    sds = bearer(db.session, "sds", cvr="29190909", name="SDS")
    reporter = bearer(db.session, "reporter", name="Bench mirror")
    actor = A.Actor(name="Aarhus", roles=("municipality",), municipality_code="0751",
                    cvr="55133018")
    # Applications as a municipality sends them: names of their own, spread over its
    # postcodes (400 look-alikes in one postcode made every approval's duplicate check
    # compare each with 200 others - a worst case, not an approval).
    places = [("8000", "Aarhus C"), ("8200", "Aarhus N"), ("8210", "Aarhus V"),
              ("8220", "Brabrand"), ("8230", "Åbyhøj"), ("8240", "Risskov"),
              ("8250", "Egå"), ("8260", "Viby J"), ("8270", "Højbjerg")]
    first = ["Solgården", "Egebo", "Lyngparken", "Bakkehuset", "Fjordbo", "Skovvang",
             "Toftegården", "Møllebo", "Engholm", "Kildebo", "Rosenhaven", "Bøgely",
             "Havkær", "Lindegården", "Vestervang", "Granhøj", "Åkanden", "Stjernehuset",
             "Birkebo", "Pilegården"]
    second = ["Nord", "Syd", "Øst", "Vest", "Midtby", "Strand", "Skov", "Ådal", "Bakke",
              "Mark", "Hede", "Eng", "Have", "Torv", "Park", "Sø", "Bro", "Mølle", "Ås",
              "Kær"]
    ids = []
    for n in range(int(sys.argv[1])):
        postcode, city = places[n % len(places)]
        name = f"Plejecenter {first[n % 20]} {second[n // 20 % 20]}"
        application = A.create_application(db.session, actor, new_nursing_home(
            institution_name=name,
            address={"street": f"Benchvej {n}", "postal_code": postcode, "city": city}))
        A.submit_application(db.session, actor, application.id)
        ids.append(application.id)
    db.session.commit()
print(json.dumps({"sds": sds["Authorization"], "reporter": reporter["Authorization"],
                  "applications": ids}))
"""


class Service:
    """gunicorn serving *tree*'s code on *url*'s database, in its own process group."""

    def __init__(self, tree: Path, env: dict[str, str], log: Path) -> None:
        self.tree, self.env, self.log = tree, env, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        gunicorn = find_command("gunicorn")
        assert gunicorn, "gunicorn is not installed"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [gunicorn, "-w", "2", "-k", "gthread", "--threads", "4", "--timeout", "120",
                 "-b", f"127.0.0.1:{self.port}", "sorregistry:create_app()"],
                env=self.env, cwd=self.tree, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gunicorn exited; see {self.log}"
            try:
                status, _, _ = self.request("GET", "/api/v1/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def request(self, method: str, path: str, token: str | None = None,
                body: bytes | None = None,
                connection: http.client.HTTPConnection | None = None
                ) -> tuple[int, bytes, dict[str, str]]:
        own = connection is None
        conn = connection or self.connection()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = token
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if own:
            conn.close()
        return response.status, data, dict(response.getheaders())


class Commits(threading.Thread):
    """LISTENs on the feed's channel as the service's watcher does: the NOTIFY each commit
    sends is delivered at COMMIT, so its arrival here is when the commit happened (within a
    loopback round trip), on the same clock as the poller's."""

    def __init__(self, server: Any, database: str) -> None:
        super().__init__(daemon=True)
        self.connection = server.connect(database, autocommit=True)
        self.connection.execute(f"LISTEN {FEED_CHANNEL}")
        self.seen: list[tuple[int, float]] = []  # (last position, arrival)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for note in self.connection.notifies(timeout=0.5):
                self.seen.append((int(note.payload), time.perf_counter()))
        self.connection.close()

    def committed(self, position: int, timeout: float = 5.0) -> float | None:
        """When the commit that took *position* was notified (the poller may hold the
        entry before this thread has noted the notification: wait for it a while)."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((at for last, at in list(self.seen) if last >= position), None)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.001)


class Poller(threading.Thread):
    """Long-polls the feed; notes when each organisation's entries arrived."""

    def __init__(self, service: Service, token: str, cursor: str) -> None:
        super().__init__(daemon=True)
        self.service, self.token, self.cursor = service, token, cursor
        self.arrived: dict[str, tuple[float, int]] = {}  # code: (arrival, position)
        self.condition = threading.Condition()
        self.stop = threading.Event()

    def run(self) -> None:
        conn = self.service.connection()
        while not self.stop.is_set():
            query = urllib.parse.urlencode({"after": self.cursor, "limit": 1000, "wait": 2})
            status, body, _ = self.service.request("GET", f"/api/v1/changes?{query}",
                                                   self.token, connection=conn)
            now = time.perf_counter()
            assert status == 200, body[:300]
            page = orjson.loads(body)
            with self.condition:
                for item in page["items"]:
                    self.arrived.setdefault(item["sor_code"], (now, item["position"]))
                self.condition.notify_all()
            self.cursor = page["next"]

    def wait_for(self, code: str, timeout: float = 10.0) -> tuple[float, int] | None:
        with self.condition:
            self.condition.wait_for(lambda: code in self.arrived, timeout)
            return self.arrived.get(code)


def catch_up(service: Service, token: str) -> tuple[int, float, str, float, float]:
    """Read the whole feed from the start, one client, 1,000 a page: entries, seconds,
    the last cursor, and the mean milliseconds a page spent in the request and in parsing.

    The client is a mirror's: one connection fetches the pages in order; each page is
    parsed in full (``orjson.loads``, every entry checked to follow the one before) by a
    second thread while the next is fetched, as a mirror applies a page while it reads
    the next. The next request needs only the page's ``next`` and ``more``, read from the
    end of the body (the route writes them last). Parsing inline, a client measures its
    own ``json.loads`` as much as the feed: a page of 1,000 is ~1.2 MB, ~60,000 objects.
    The seconds run until the last page is parsed."""
    pages: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    parsed = {"entries": 0, "position": 0, "seconds": 0.0}

    def parse() -> None:
        while (body := pages.get()) is not None:
            started = time.perf_counter()
            for item in orjson.loads(body)["items"]:
                assert item["position"] > parsed["position"], "out of order"
                parsed["position"] = item["position"]
                parsed["entries"] += 1
            parsed["seconds"] += time.perf_counter() - started

    parser = threading.Thread(target=parse, daemon=True)
    conn = service.connection()
    cursor: str | None = None
    requests = 0
    requesting = 0.0
    started = time.perf_counter()
    parser.start()
    while True:
        query = urllib.parse.urlencode({"limit": 1000, **({"after": cursor} if cursor else {})})
        asked = time.perf_counter()
        status, body, _ = service.request("GET", f"/api/v1/changes?{query}", token,
                                          connection=conn)
        requesting += time.perf_counter() - asked
        requests += 1
        assert status == 200, body[:300]
        tail = orjson.loads(b"{" + body[body.rindex(b',"next":') + 1:])
        pages.put(body)
        cursor = tail["next"]
        if not tail["more"]:
            break
    pages.put(None)
    parser.join()
    seconds = time.perf_counter() - started
    conn.close()
    assert cursor is not None
    return (int(parsed["entries"]), seconds, cursor, requesting / requests * 1000,
            parsed["seconds"] / requests * 1000)


class Variant:
    """One code base on a database of its own: imported, then served by gunicorn for the
    approvals (which run side by side with the other variants'), then, with the feed,
    its exports."""

    def __init__(self, name: str, tree: Path, server: Any, workdir: Path, feed: bool,
                 path: str | None = None) -> None:
        self.name, self.tree, self.server, self.workdir, self.feed = (
            name, tree, server, workdir, feed)
        self.database = f"bench_{name}"
        url = server.create_database(self.database)
        self.env = dict(os.environ)
        self.env.pop("FLASK_APP", None)
        self.env.update(SOR_DATABASE_URL=url, SOR_SECRET_KEY="bench", SOR_ENV="production",
                        SOR_RATELIMIT_ENABLED="false", PYTHONPATH=path or str(tree))
        self.log = workdir / f"{name}.log"
        self.cli = str(ROOT / ".venv" / "bin" / "sorregistry")
        self.result: dict[str, Any] = {"approval": [], "latency": []}
        self.service: Service | None = None
        self.poller: Poller | None = None
        self.commits: Commits | None = None
        self.made: dict[str, Any] = {}
        self.connection: http.client.HTTPConnection | None = None

    def measured(self, label: str, command: list[str]) -> Run:
        run = Run(self.name, label, command)
        # run_measured runs in ROOT: the tree's code comes first on PYTHONPATH.
        run_measured(run, self.env, self.log, timeout=3600)
        if not run.ok:
            raise RuntimeError(f"{self.name} {label} failed: {run.output_tail}")
        say(f"   {self.name} {label}: {run.seconds:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB")
        return run

    def prepare(self, files: tuple[Path, Path], approvals: int) -> None:
        """Import, re-import, make the applications, serve; with the feed, catch up."""
        say(f"== {self.name}: code in {self.tree}")
        self.measured("db upgrade", [self.cli, "db", "upgrade"])
        self.result["import"] = self.measured(
            "import", [self.cli, "import-sor", "--quiet", str(files[0])]).seconds
        self.result["reimport"] = self.measured(
            "changed re-import", [self.cli, "import-sor", "--quiet", str(files[1])]).seconds
        python = str(ROOT / ".venv" / "bin" / "python")
        setup = subprocess.run([python, "-c", SETUP, str(approvals)], env=self.env,
                               cwd=self.tree, capture_output=True, text=True, check=False)
        if setup.returncode != 0:
            raise RuntimeError(f"{self.name}: setting up applications failed: "
                               f"{setup.stderr[-2000:]}")
        self.made = json.loads(setup.stdout.strip().splitlines()[-1])
        # The imports leave the autovacuum daemon work to do on the tables they filled,
        # more of it with the feed's table: done now in every variant, so that it runs
        # during no variant's approvals (it would be the imports' cost, not theirs).
        with self.server.connect(self.database) as connection:
            connection.execute("VACUUM ANALYZE")
        self.service = Service(self.tree, self.env, self.workdir / f"{self.name}-gunicorn.log")
        self.service.start()
        if self.feed:
            entries, seconds, cursor, fetch_ms, parse_ms = catch_up(self.service,
                                                                    self.made["reporter"])
            self.result["catch_up"] = (entries, seconds)
            self.result["catch_up_page"] = (fetch_ms, parse_ms)
            say(f"   catch-up from zero: {entries} entries in {seconds:.1f} s = "
                f"{entries / seconds:,.0f} entries/s (a page: request {fetch_ms:.1f} ms, "
                f"parse {parse_ms:.1f} ms)")
            self.commits = Commits(self.server, self.database)
            self.commits.start()
            self.poller = Poller(self.service, self.made["reporter"], cursor)
            self.poller.start()
            time.sleep(0.5)
        self.connection = self.service.connection()

    def approve(self, index: int) -> None:
        """Approve the *index*-th application; with the feed, wait until the long-polling
        client holds it (the latency from the commit's NOTIFY)."""
        assert self.service is not None and self.connection is not None
        application_id = self.made["applications"][index]
        started = time.perf_counter()
        status, body, _ = self.service.request(
            "POST", f"/api/v1/applications/{application_id}/approve", self.made["sds"],
            b"{}", connection=self.connection)
        answered = time.perf_counter()
        assert status == 200, body[:500]
        self.result["approval"].append((answered - started) * 1000)
        if self.poller is not None and self.commits is not None:
            code = orjson.loads(body)["sor_code"]
            seen = self.poller.wait_for(code)
            assert seen is not None, f"the poller never saw {code}"
            arrived, position = seen
            committed = self.commits.committed(position)
            assert committed is not None, f"no NOTIFY for position {position}"
            self.result["latency"].append((arrived - committed) * 1000)

    def report(self) -> None:
        """The approvals' figures; with the feed, the latencies and the exports (the
        poller stopped first: the exports are timed alone)."""
        times = self.result["approval"]
        say(f"   {self.name} approval: p50 {percentile(times, 50):.1f} ms, p95 "
            f"{percentile(times, 95):.1f} ms ({len(times)})")
        if self.poller is not None:
            self._stop_listening()
            latencies = self.result["latency"]
            say(f"   {self.name} approval -> long poll: p50 "
                f"{percentile(latencies, 50):.1f} ms, p95 "
                f"{percentile(latencies, 95):.1f} ms, max {max(latencies):.1f} ms")
            self._exports()

    def stop(self) -> None:
        """Stop the poller, the listener and the server (whatever happened before)."""
        if self.connection is not None:
            self.connection.close()
        self._stop_listening()
        if self.service is not None:
            self.service.stop()

    def _stop_listening(self) -> None:
        for thread in (self.poller, self.commits):
            if thread is not None:
                thread.stop.set()
                thread.join(timeout=10)

    def _exports(self) -> None:
        assert self.service is not None
        out = self.workdir / "register.ndjson"
        run = self.measured("export ndjson",
                            [self.cli, "export", "--format", "ndjson", str(out)])
        self.result["export"] = (run.seconds, run.peak_rss_mb, out.stat().st_size)
        started = time.perf_counter()
        http_conn = self.service.connection()
        http_conn.request("GET", "/api/v1/export/register.ndjson",
                          headers={"Authorization": self.made["reporter"]})
        response = http_conn.getresponse()
        size = 0
        while chunk := response.read(1 << 20):
            size += len(chunk)
        http_conn.close()
        self.result["export_http"] = (time.perf_counter() - started, size)
        say(f"   export over HTTP: {self.result['export_http'][0]:.1f} s, "
            f"{size / 1e6:.0f} MB, X-Feed-Position {response.getheader('X-Feed-Position')}")


def side_by_side(variants: list[Variant], approvals: int) -> None:
    """The approvals of every variant interleaved - the first application in each, the
    second in each, ... the order of the variants turning each round - so that what the
    machine does meanwhile weighs on all of them alike."""
    say(f"== {approvals} approvals, side by side: {', '.join(v.name for v in variants)}")
    for index in range(approvals):
        turn = index % len(variants)
        for variant in variants[turn:] + variants[:turn]:
            variant.approve(index)
            time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--approvals", type=int, default=200)
    parser.add_argument("--base", default=None,
                        help="the code without the feed (git rev; default: this tree, its "
                             "feed switched off)")
    parser.add_argument("--before", default=None,
                        help="an earlier feed to compare with, side by side (git rev)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    out = args.out or ROOT / "bench" / f"results-feed-{args.entities // 1000}k.txt"
    base_rev = args.base or "this tree, feed off (bench/feed_off)"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    workdir = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    lines: list[str] = []
    load_before = uptime()
    try:
        base = _unpack(args.base, workdir / "base") if args.base else ROOT
        base_path = None if args.base else FEED_OFF_PATH
        before = _unpack(args.before, workdir / "before") if args.before else None
        generator = load_generator()
        plain, changed = workdir / "plain.xml", workdir / "changed.xml"
        started = time.perf_counter()
        generator.generate(plain, args.entities, seed=1)
        generator.generate(changed, args.entities, seed=1, mutate=0.05, drop=0.01)
        say(f"== generated {args.entities} entities (and the changed variant) in "
            f"{time.perf_counter() - started:.0f} s")
        with postgres_server(workdir / "pg") as server:
            variants = [Variant("base", base, server, workdir, feed=False, path=base_path)]
            if before is not None:
                variants.append(Variant("before", before, server, workdir, feed=True))
            variants.append(Variant("feed", ROOT, server, workdir, feed=True))
            try:
                for variant in variants:
                    variant.prepare((plain, changed), args.approvals)
                side_by_side(variants, args.approvals)
                for variant in variants:
                    variant.report()
            finally:
                for variant in variants:
                    variant.stop()
            results = {variant.name: variant.result for variant in variants}
        load_after = uptime()
        b, f = results["base"], results["feed"]
        entries, seconds = f["catch_up"]
        export_s, export_rss, export_size = f["export"]

        def row(label: str, base_v: float, feed_v: float, unit: str, target: str) -> str:
            return (f"| {label} | {base_v:.1f} {unit} | {feed_v:.1f} {unit} | "
                    f"{feed_v / base_v:.2f} | {target} |")

        if "before" in results:
            lines = _before_after(results, base_rev, args.before, head, args)
            out.write_text("\n".join(lines) + "\n")
        lines += [
            f"bench_feed.py: {args.entities:,} entities, {args.approvals} approvals, "
            f"PostgreSQL; feed = {head} (+ working tree), base = {base_rev}",
            f"load before: {load_before}",
            f"load after:  {load_after}",
            "",
            "| write path | base (no feed) | feed | feed / base | target |",
            "|---|---|---|---|---|",
            row("import", b["import"], f["import"], "s", "within 10 %"),
            row("changed re-import", b["reimport"], f["reimport"], "s", "within 10 %"),
            row("approval p50", percentile(b["approval"], 50), percentile(f["approval"], 50),
                "ms", ""),
            row("approval p95", percentile(b["approval"], 95), percentile(f["approval"], 95),
                "ms", "within 10 %"),
            "",
            f"catch-up from zero, one client, 1,000 a page: {entries:,} entries in "
            f"{seconds:.1f} s = {entries / seconds:,.0f} entries/s (target >= 20,000/s); "
            f"a page of 1,000: request {f['catch_up_page'][0]:.1f} ms, client's parse "
            f"{f['catch_up_page'][1]:.1f} ms (in a second thread, overlapping the next "
            "request)",
            f"approval's commit (its NOTIFY) -> long-polling client holding it: p50 "
            f"{percentile(f['latency'], 50):.1f} ms, p95 {percentile(f['latency'], 95):.1f} ms,"
            f" max {max(f['latency']):.1f} ms over {len(f['latency'])} (target p95 <= 100 ms)",
            f"export --format ndjson: {export_s:.1f} s, peak RSS {export_rss:.0f} MB, "
            f"{export_size / 1e6:.0f} MB; over HTTP: {f['export_http'][0]:.1f} s",
        ]
        say("")
        for line in lines:
            say(line)
        out.write_text("\n".join(lines) + "\n")
        say(f"\n(written to {out})")
        return 0
    finally:
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _unpack(rev: str, into: Path) -> Path:
    into.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _before_after(results: dict[str, dict[str, Any]], base_rev: str, before_rev: str,
                  head: str, args: argparse.Namespace) -> list[str]:
    """The table of the three variants side by side: no feed, the feed before, after."""
    b, p, f = results["base"], results["before"], results["feed"]

    def cells(label: str, values: tuple[float, float, float], unit: str, target: str) -> str:
        base_v, before_v, after_v = values
        return (f"| {label} | {base_v:.1f} {unit} | {before_v:.1f} {unit} | "
                f"{after_v:.1f} {unit} | {before_v / base_v:.2f} | {after_v / base_v:.2f} | "
                f"{target} |")

    def rate(result: dict[str, Any]) -> float:
        entries, seconds = result["catch_up"]
        return float(entries / seconds)

    return [
        f"before / after, {args.entities:,} entities, {args.approvals} approvals: base (no "
        f"feed) = {base_rev}, before = {before_rev}, after = {head} (+ working tree)",
        "",
        "| path | base (no feed) | feed before | feed after | before / base | after / base "
        "| target |",
        "|---|---|---|---|---|---|---|",
        cells("import", (b["import"], p["import"], f["import"]), "s", "within 10 %"),
        cells("changed re-import", (b["reimport"], p["reimport"], f["reimport"]), "s",
              "within 10 %"),
        cells("approval p50", tuple(percentile(r["approval"], 50) for r in (b, p, f)),
              "ms", ""),
        cells("approval p95", tuple(percentile(r["approval"], 95) for r in (b, p, f)),
              "ms", "within 10 %"),
        f"| catch-up | - | {rate(p):,.0f} /s | {rate(f):,.0f} /s | | | >= 20,000 /s |",
        f"| approval -> long poll p95 | - | {percentile(p['latency'], 95):.1f} ms | "
        f"{percentile(f['latency'], 95):.1f} ms | | | <= 100 ms |",
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())

"""The lookups' direct reads on PostgreSQL (sorregistry.reads) answer exactly as the session.

Production serves a computed lookup through the worker thread's own autocommit psycopg
connection; the other lookup tests run on a session bound to one connection (rolled back
after each test), which always takes the session path. Here two apps share one really
committed database - one with the direct reads, one with ``FAST_READS`` off - and every
lookup, filter, sort, cursor page, resolve reading and error is asked of both: the
answers must be byte for byte the same, and the direct app must not have touched its
engine (the pool) for any of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import orjson
import psycopg
import pytest
from flask import Flask
from sqlalchemy import (
    Integer,
    String,
    bindparam,
    create_engine,
    event,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidRequestError

from hierarchy import service
from hierarchy.items import ITEMS
from hierarchy.models import PAGE_STAMP, Organisation
from hierarchy.search.digests import digested, rows_digest
from hierarchy.search.keyrows import KEY_COLUMNS, key_columns
from hierarchy.search.names import NAMES, read_names
from hierarchy.search.totals import TOTALS
from hierarchy.shak_import import import_shak_file
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app, reads
from sorregistry.accounts import clients as auth
from sorregistry.accounts.clients import create_client, forget_identities
from sorregistry.database import made_session, one_of_named, session_bind
from sorregistry.extensions import db
from sorregistry.models import UTCDateTime
from sorregistry.reads import DirectReads, SessionReads
from tests.conftest import copy_template, drop_copy, fixture_path, loaded_copy
from tests.support.exports import generator

NO_CACHE = {"Cache-Control": "no-cache"}


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    module = generator()
    path = tmp_path_factory.mktemp("direct") / "register.xml"
    module.generate(path, 2500, seed=5, municipalities=1, regions=1)
    return path


def _load(session, export: Path) -> None:
    import_sor_file(session, export, actor="test")
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
    import_shak_file(session, fixture_path("shak_sample.TXT"), actor="test")


@pytest.fixture(scope="module")
def loaded(migrated_template: str, export: Path, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The register imported once for the module (2,500 entities: seconds); each test
    gets a copy of it of its own (``CREATE DATABASE ... TEMPLATE``, a fraction of one)."""
    if migrated_template.endswith(".db"):
        pytest.skip("the direct reads are PostgreSQL's; SQLite always reads through the session")
    with loaded_copy(request, migrated_template, tmp_path_factory.mktemp("direct"),
                     "sor_direct_reads", lambda session: _load(session, export)) as url:
        yield url


@pytest.fixture
def apps(loaded: str, request: pytest.FixtureRequest,
         tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    url = copy_template(request, str(make_url(loaded).database), tmp_path, "sor_direct_copy")
    direct = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    session_only = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                               "FAST_READS": False})
    try:
        yield direct, session_only
    finally:
        reads.close_connections()
        forget_identities()
        for app in (direct, session_only):
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        # A name index being built from the copy ends before it is dropped, and none of
        # it is left for the next test.
        NAMES.wait()
        NAMES.clear()
        drop_copy(request, url)


def _facts(app: Flask) -> dict:
    """Values to filter by, read from the imported register."""
    with app.app_context():
        s = db.session
        o = Organisation

        def first(*where):
            return s.execute(select(o).where(*where).order_by(o.sor_code).limit(1)).scalar_one()

        municipality = first(o.level == "IE", o.ownership == "kommunal")
        private = first(o.ydernummer.is_not(None), o.ownership == "privat")
        department = first(o.shak.is_not(None), o.level == "OE")
        institution = first(o.level == "SI", o.ownership == "kommunal")
        closed = first(o.valid_to.is_not(None))
        facts = {
            "municipality_cvr": municipality.cvr,
            "ydernummer": private.ydernummer,
            "shak": department.shak,
            "hospital": department.shak[:4],
            "sor": institution.sor_code,
            "entity_type": institution.entity_type,
            "postal_code": institution.eff_postal_code,
            "municipality_code": institution.eff_municipality_code,
            "closed": closed.sor_code,
            "closed_day": closed.valid_to.replace(year=closed.valid_to.year - 1).isoformat(),
        }
        _, facts["token"] = create_client(s, "form", cvr=municipality.cvr, roles=["reporter"])
        s.commit()
        return facts


def _urls(f: dict) -> list[str]:
    def q(path: str, **params) -> str:
        return path + ("?" + urlencode(params) if params else "")

    search = "/api/v1/organisations"
    urls = [
        q(search, name="ple", limit=20), q(search, name="PLEJE", name_match="prefix"),
        q(search, name="Sundhed", level="SI"), q(search, name="cent", ownership="kommunal"),
        q(search, name="ple", sort="code", limit=7),
        q(search, name="klinik", cvr=f["municipality_cvr"]),
        q(search, name="æøå-ukendt"), q(search, name="se", limit=5),
        q(search, entity_type=f["entity_type"]), q(search, ydernummer=f["ydernummer"]),
        q(search, ydernummer="000" + f["ydernummer"].lstrip("0")),
        q(search, shak=f["hospital"]), q(search, shak=f["shak"]),
        q(search, sor_code=f["sor"][:6]), q(search, municipality_code=f["municipality_code"]),
        q(search, postal_code=f["postal_code"]), q(search, under=f["sor"]),
        q(search, under=f["sor"], name="a"), q(search, level="IE", sort="code", limit=3),
        q(search, ownership="privat", limit=500),
        q(search, sor_code=f["closed"]), q(search, sor_code=f["closed"], active_on=f["closed_day"]),
        q(search, under="123456789012345678"), q(search, ydernummer="12x"),
        q(search, cursor="garbage"), q(search, limit=501),
        q("/api/v1/lookups/my-cvr/si"), q("/api/v1/lookups/my-cvr/all", limit=500),
        q("/api/v1/lookups/my-cvr/all", name="pleje", limit=10),
        q("/api/v1/lookups/my-cvr/all", postal_code=f["postal_code"]),
        q("/api/v1/lookups/my-cvr/all", cvr="12345678"),
    ]
    for ownership in ("statslig", "regional", "kommunal", "privat"):
        urls.append(q(f"/api/v1/lookups/ownership/{ownership}", limit=50))
        urls.append(q(f"/api/v1/lookups/ownership/{ownership}", sort="code", limit=50))
    urls.append(q("/api/v1/lookups/ownership/privat", ydernummer=f["ydernummer"]))
    for code in (f["sor"], f["ydernummer"], f["shak"], f["hospital"], f["closed"],
                 "123456789012345678", "not a code", ""):
        urls.append(q("/api/v1/resolve", code=code))
    urls.append(q("/api/v1/resolve", code=f["closed"], active_on=f["closed_day"]))
    return urls


def _walk(client, url: str, headers: dict) -> list[bytes]:
    """Every page of *url* (following ``next``), as bytes, with each status."""
    pages = []
    cursor = None
    for _ in range(200):
        joined = url + ("&" if "?" in url else "?") + f"cursor={cursor}" if cursor else url
        response = client.get(joined, headers=headers)
        pages.append(b"%d " % response.status_code + response.get_data())
        if cursor:  # a page after the first is always there
            assert response.status_code == 200, (joined, response.get_json())
        body = response.get_json(silent=True) or {}
        cursor = body.get("next") if response.status_code == 200 else None
        if not cursor:
            break
    return pages


def _name_index_read() -> str:
    """The statement a name index build reads with (in its own thread, on the engine)."""

    statement = None

    class Capture:
        def execute(self, query):
            nonlocal statement
            statement = query
            return iter(())

    list(read_names(Capture(), date.today()))
    return str(statement.compile(dialect=postgresql.psycopg.dialect()))


@pytest.mark.parametrize("name_index", [True, False], ids=["name-index", "sql-only"])
def test_direct_reads_answer_as_the_session_does(apps, monkeypatch, name_index):
    direct, session_only = apps
    facts = _facts(direct)
    headers = {"Authorization": f"Bearer {facts['token']}", **NO_CACHE}
    monkeypatch.setattr(auth, "IDENTITY_SECONDS", 3600.0)  # however slow the machine
    monkeypatch.setattr(NAMES, "enabled", name_index)
    statements: list[str] = []
    with direct.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    fast, slow = direct.test_client(), session_only.test_client()
    for client in (fast, slow):  # the client's identity, cached per worker
        assert client.get("/api/v1/resolve?code=x", headers=headers).status_code == 422
    statements.clear()
    urls = _urls(facts)
    pages = 0
    for url in urls:
        TOTALS.clear()  # each app counts for itself (the totals are per worker)
        expected = _walk(slow, url, headers)
        TOTALS.clear()
        got = _walk(fast, url, headers)
        assert got == expected, url
        pages += sum(page.startswith(b"200 ") for page in expected)
    assert pages > 60
    # Everything the direct app computed, it read on the thread's own connection:
    # no statement went through the engine, its pool or its session, except the
    # name index build (one background read per register version).
    build = _name_index_read()
    assert [s for s in statements if s != build] == []


def test_direct_reads_only_for_a_session_with_nothing_of_its_own(apps):
    """The safety of the direct reads: a session that has begun a transaction, or holds
    changes not yet flushed, reads through itself (and sees them)."""

    direct, _ = apps
    with direct.test_request_context("/api/v1/resolve?code=1"):
        session = db.session()
        assert reads.allow(session) is True
        assert isinstance(reads.reads(session), DirectReads)
        organisation = session.execute(select(Organisation).limit(1)).scalar_one()
        assert isinstance(reads.reads(session), SessionReads)  # a transaction has begun
        session.rollback()
        assert isinstance(reads.reads(session), DirectReads)
        organisation.name = "Ændret Navn"  # pending, not flushed, no transaction yet
        assert isinstance(reads.reads(session), SessionReads)
        found = reads.reads(session).rows(
            select(Organisation.name).where(Organisation.sor_code == organisation.sor_code), {})
        assert found[0].name == "Ændret Navn"  # flushed first: the session sees its own
        session.rollback()
        db.session.remove()
    with direct.test_request_context("/api/v1/resolve?code=1"):
        session = db.session()
        session.execute(select(Organisation.sor_code).limit(1)).all()
        assert reads.allow(session) is False  # begun before the route asked
        assert isinstance(reads.reads(session), SessionReads)
        db.session.remove()


def test_direct_reads_see_commits_at_once_and_survive_a_lost_connection(apps):
    direct, _ = apps
    facts = _facts(direct)
    headers = {"Authorization": f"Bearer {facts['token']}", **NO_CACHE}
    client = direct.test_client()
    url = f"/api/v1/resolve?code={facts['sor']}"
    assert client.get(url, headers=headers).status_code == 200
    with direct.app_context():

        service.close_organisation(db.session, facts["sor"], date.today(), source="staff",
                                   actor="sds")
        db.session.commit()
    assert client.get(url, headers=headers).status_code == 404  # closed today: not active
    # The server ends the thread's connection (a restart, an idle timeout): the next
    # lookup makes a new one and answers.
    with direct.app_context():
        connection = reads._connection(db.engine)
    pid = connection.info.backend_pid
    with direct.app_context():

        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        db.session.commit()
    response = client.get(f"/api/v1/resolve?code={facts['ydernummer']}", headers=headers)
    assert response.status_code == 200, response.get_json()
    with direct.app_context():
        assert reads._connection(db.engine).info.backend_pid != pid


def test_a_lists_total_is_kept_under_the_version_and_a_commit_moves_it(apps):
    """Mit CVR counts the client's units again for every computed page unless the worker
    keeps the total (hierarchy.search.totals) under the register version: kept, it is
    the total shown; a committed change (a version of its own) counts afresh."""
    direct, _ = apps
    facts = _facts(direct)
    headers = {"Authorization": f"Bearer {facts['token']}", **NO_CACHE}
    client = direct.test_client()
    url = "/api/v1/lookups/my-cvr/all?limit=5"
    TOTALS.clear()
    first = client.get(url, headers=headers).get_json()
    [(key, total)] = TOTALS.totals.items()
    assert total == first["total"] > 5
    TOTALS.put(TOTALS.version, key, 12345)  # what a kept total is taken for
    assert client.get(url, headers=headers).get_json()["total"] == 12345
    with direct.app_context():
        service.close_organisation(db.session, first["items"][0]["sor_code"], date.today(),
                                   source="staff", actor="sds")
        db.session.commit()
        o = Organisation
        active = db.session.execute(
            select(func.count()).select_from(o).where(
                o.owner_cvr == facts["municipality_cvr"], o.level.in_(["SI", "OE"]),
                o.valid_to.is_(None) | (o.valid_to > date.today()))).scalar_one()
    after = client.get(url, headers=headers).get_json()
    assert after["total"] == active < first["total"]  # counted in the new version
    assert after["items"][0]["sor_code"] != first["items"][0]["sor_code"]


def test_direct_rows_are_named_tuples_as_the_sessions_rows(apps):
    # sorregistry.reads.named_rows: each row made in C, one class per set of names.
    direct, _ = apps
    statement = (select(Organisation.sor_code, Organisation.version,
                        func.count().over().label("total"), text("1 AS \"not a name\""))
                 .order_by(Organisation.sor_code).limit(3))
    with direct.app_context():
        rows = DirectReads(db.engine).rows(statement, {})
        expected = SessionReads(db.session).rows(statement, {})
        none = DirectReads(db.engine).rows(statement.where(Organisation.sor_code == "-"), {})
        db.session.remove()
    assert len(rows) == 3 and [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert [(r.sor_code, r.version, r.total) for r in rows] == [
        (r.sor_code, r.version, r.total) for r in expected]
    assert type(rows[0]) is type(rows[2]) and rows[0]._fields[:3] == (
        "sor_code", "version", "total")
    assert none == []


def test_a_long_statement_with_percent_signs_reads_as_through_the_session(apps):
    # sorregistry.reads._Compiled: a statement goes with PostgreSQL's own $n placeholders,
    # compiled once, its text sent as it is - also one past psycopg's cache of converted
    # statements (4 kB or 50 parameters: a resolve's UNION is 5 kB), and with percent
    # signs that the %(name)s style doubles (LIKE's wildcards, the modulo operator).
    direct, _ = apps
    o = Organisation.__table__
    codes = [bindparam(f"code_{i}", type_=String) for i in range(60)]
    statement = (
        select(o.c.sor_code, (o.c.depth % 2).label("odd"),
               (literal("100% ") + o.c.level).label("shown"),
               *[func.coalesce(o.c.shak, literal(f"padding {i}")).label(f"wide_{i}")
                 for i in range(80)])
        .where(or_(o.c.sor_code.in_(codes), o.c.name_search.like(literal_column("'%pleje%'"))),
               o.c.name_search.like(bindparam("pattern")))
        .order_by(o.c.sor_code)
    )
    with direct.app_context():
        picked = db.session.execute(select(o.c.sor_code).order_by(o.c.sor_code).limit(60))
        params = {f"code_{i}": code for i, code in enumerate(picked.scalars())}
        params["pattern"] = "%"
        compiled = DirectReads(db.engine)._compiled(statement)
        rows = DirectReads(db.engine).rows(statement, params)
        expected = SessionReads(db.session).rows(statement, params)
        db.session.remove()
    assert len(compiled.sql) > 4096 and len(compiled.names) > 50
    assert b"%(" not in compiled.sql and b"$61" in compiled.sql
    assert len(rows) > 60 and [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert {r.shown[:5] for r in rows} == {"100% "} and {r.odd for r in rows} == {0, 1}


def test_a_statements_values_by_position_are_sqlalchemys_own():
    # sorregistry.reads._Compiled.parameters: each position's value found as
    # construct_params finds it (a given key, else the bind's own value) and processed as
    # the type's processor does (a time to UTC, an ARRAY's list), without it; where it
    # does more (a callable), its own path.
    engine = create_engine("postgresql+psycopg://")  # compiles; never connects
    o = Organisation.__table__
    plain = (select(o.c.sor_code)
             .where(o.c.level.in_([bindparam("level_0", type_=String), "SI"]),
                    o.c.ownership == bindparam("ownership", type_=String),
                    o.c.name_search.like(literal("%x%")), o.c.shak == bindparam("shak", None))
             .limit(bindparam("page_limit", type_=Integer)))
    processed = select(o.c.sor_code).where(
        o.c.valid_from == bindparam("day", type_=UTCDateTime))
    computed = select(o.c.sor_code).where(
        o.c.level == bindparam("level", callable_=lambda: "OE"))
    codes = select(o.c.sor_code).where(
        one_of_named(o.c.sor_code, "codes", postgresql=True), o.c.level == "SI")
    compiled = {s: reads._Compiled(s, engine) for s in (plain, processed, computed, codes)}
    assert compiled[plain].slots is not None and compiled[processed].slots is not None
    assert compiled[codes].slots is not None and compiled[computed].slots is None
    asked = ("10", "20")  # a tuple: the ARRAY's processor makes it a list
    assert compiled[codes]._constructed({"codes": asked}) == [["10", "20"], "SI"]
    # ... which psycopg dumps element by element in Python: sent as the array's literal
    # instead (its values the same: test_a_list_of_texts_is_sent_as_its_array_literal).
    assert compiled[codes].parameters({"codes": asked}) == ["{10,20}", "SI"]
    assert compiled[codes].parameters({"codes": None}) == [None, "SI"]
    for params in ({"level_0": "IE", "ownership": "privat", "page_limit": 21},
                   {"level_0": "IE", "ownership": "privat", "page_limit": 21, "shak": "1"},
                   {"level_0": "OE", "ownership": None, "page_limit": 2, "unused": 1}):
        got = compiled[plain].parameters(params)
        assert got == compiled[plain]._constructed(params)
        assert got[:2] == [params["level_0"], "SI"] and got[-1] == params["page_limit"]
    assert compiled[computed].parameters({}) == ["OE"]
    moment = datetime(2026, 12, 7, 13, tzinfo=timezone(timedelta(hours=1)))
    assert compiled[processed].parameters({"day": moment}) == compiled[
        processed]._constructed({"day": moment})
    assert compiled[processed].parameters({"day": moment})[0].tzinfo == UTC  # processed
    missing = {"level_0": "IE", "page_limit": 2}  # no ownership: SQLAlchemy's error
    with pytest.raises(InvalidRequestError, match="ownership"):
        compiled[plain].parameters(missing)


def test_every_connection_is_in_utc_so_times_decode_in_c(apps):
    # sorregistry.database.prepare_postgresql_connection: psycopg decodes a timestamptz in
    # C only for a session whose time zone is named "UTC" (the server's default here may
    # be "Etc/UTC", the same zone by another name, which goes through zoneinfo).
    direct, _ = apps
    statement = select(Organisation.updated_at).limit(1)
    with direct.app_context():
        engine_zone = db.session.execute(text("SHOW TimeZone")).scalar_one()
        (through_session,) = db.session.execute(statement).one()
        (read,) = DirectReads(db.engine).rows(statement, {})[0]
        direct_zone = reads._connection(db.engine).info.parameter_status("TimeZone")
        db.session.remove()
    assert engine_zone == "UTC" and direct_zone == "UTC"
    assert read.tzinfo is UTC and read == through_session


@pytest.mark.parametrize("path", ["/api/v1/lookups/my-cvr/all?limit=500",
                                  "/api/v1/lookups/my-cvr/si?limit=500"])
def test_a_mit_cvr_page_by_key_is_read_from_the_index_alone(apps, monkeypatch, path):
    # Migration 0025: the Mit CVR indexes carry the stamps a page read by key reads
    # (hierarchy.models.PAGE_STAMP), so the page's statement can be an index-only scan
    # (without them only an index scan, a row of the table fetched for each entry); it
    # reads the table only for pages VACUUM has not marked all-visible (autovacuum does
    # after an import). Forced onto the index (a register this small could be scanned
    # whole).
    direct, _ = apps
    facts = _facts(direct)
    statements: list[tuple[str, dict]] = []
    batch = DirectReads._batch

    def recording(self, pairs, binary, plain):
        # As sent: PostgreSQL's $n placeholders, the values in their order.
        statements.extend((self._compiled(s).sql.decode(), self._compiled(s).parameters(p))
                          for s, p in pairs)
        return batch(self, pairs, binary, plain)

    headers = {**NO_CACHE, "Authorization": f"Bearer {facts['token']}"}
    client = direct.test_client()
    monkeypatch.setattr(auth, "IDENTITY_SECONDS", 3600.0)
    assert client.get(path, headers=headers).status_code == 200  # the identity, kept
    monkeypatch.setattr(DirectReads, "_batch", recording)
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["items"]
    pages = [(sql, values) for sql, values in statements
             if "ORDER BY organisations.name_search" in sql]
    assert len(pages) == 1, statements
    sql, values = pages[0]
    assert all(f"organisations.{name}" in sql for name in PAGE_STAMP)
    # Its items all kept now, the page is kept: asked again, PostgreSQL sends the digest of
    # its rows (hierarchy.search.digests) - read from the same index alone.
    statements.clear()
    assert client.get(path, headers=headers).data == answer.data
    [(digest_sql, digest_values)] = [(sql, values) for sql, values in statements
                                     if "sha256" in sql]
    assert not [sql for sql, _ in statements if "sha256" not in sql and "ORDER BY" in sql]
    NAMES.wait()  # the name index's read (a snapshot that would hold back VACUUM) done
    with direct.app_context():
        connection = reads._connection(db.engine)
        connection.execute("VACUUM organisations")
        with connection.transaction():
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                connection.execute(f"SET LOCAL {setting} = off")
            ((plan,),) = psycopg.RawCursor(connection).execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, values).fetchall()
            ((digest_plan,),) = psycopg.RawCursor(connection).execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + digest_sql, digest_values).fetchall()
        db.session.remove()
    scans = []

    def walk(node):
        scans.append(node)
        for child in node.get("Plans", []):
            walk(child)

    index = "ix_organisations_owner_cvr_" + ("si" if "/si?" in path else "name")
    for explained in (plan, digest_plan):
        scans.clear()
        walk(explained[0]["Plan"])
        (scan,) = [node for node in scans if "Scan" in node["Node Type"]]
        assert (scan["Node Type"], scan["Index Name"]) == ("Index Only Scan", index)
        assert scan["Actual Rows"] > 0 and scan["Heap Fetches"] < scan["Actual Rows"] / 4


def test_a_computed_answer_makes_no_session(apps, monkeypatch):
    """A lookup that reads directly never makes the request's ORM session (made, closed
    and removed, it was ~35 us of a computed answer's own work)."""
    direct, _ = apps
    facts = _facts(direct)
    headers = {"Authorization": f"Bearer {facts['token']}", **NO_CACHE}
    monkeypatch.setattr(auth, "IDENTITY_SECONDS", 3600.0)  # however slow the machine
    client = direct.test_client()
    assert client.get("/api/v1/resolve?code=x", headers=headers).status_code == 422
    made: list[str] = []
    registry = db.session.registry
    make = registry.createfunc
    monkeypatch.setattr(registry, "createfunc", lambda **kw: made.append(url) or make(**kw))
    answered = 0
    for url in _urls(facts):
        made.clear()
        response = client.get(url, headers=headers)
        if response.status_code == 200:
            answered += 1
            assert made == [], url
    assert answered >= 35  # searches, lists, Mit CVR, resolve (the rest are refusals)


def test_the_version_remembered_before_the_session_waits_for_it(apps):
    """remember_register_version in a request that has made no session keeps the version
    in the request: the register's version is that while no session is made (and asking
    makes none), and a session made later takes it for its first transaction only."""
    direct, _ = apps
    with direct.app_context():
        actual = service.register_version(db.session)
        db.session.remove()
    remembered = (actual[0], "read before")  # the stamp tells it apart
    with direct.test_request_context("/api/v1/resolve?code=1"):
        assert made_session(db.session) is None
        service.remember_register_version(db.session, remembered)
        assert service.register_version(db.session) == remembered
        assert service.register_changed_in(db.session) is False
        assert reads.allow(db.session) is True
        assert isinstance(reads.reads(db.session), DirectReads)
        with direct.app_context():
            engine = db.engine
        assert session_bind(db.session) is engine
        assert made_session(db.session) is None  # none of that made one
        session = db.session()  # a read through the session: made now
        assert service.register_version(session) == remembered
        session.execute(select(Organisation.sor_code).limit(1)).all()
        assert service.register_version(session) == remembered  # its first transaction's
        session.rollback()
        assert service.register_version(session) == actual  # the next one reads its own
        db.session.remove()
    with direct.test_request_context("/api/v1/resolve?code=1"):
        assert service.register_version(db.session) == actual  # nothing kept: read
        assert made_session(db.session) is not None
        db.session.remove()


def test_the_version_remembered_before_the_session_labels_no_later_transaction(apps):
    """A first transaction that ends without asking for the version (a rollback, a commit
    of changes) leaves no remembered version for the next: that one reads its own."""
    direct, _ = apps
    with direct.app_context():
        actual = service.register_version(db.session)
        db.session.remove()
    remembered = (actual[0] - 1, "read before")
    for end in ("rollback", "commit"):
        with direct.test_request_context("/api/v1/resolve?code=1"):
            service.remember_register_version(db.session, remembered)
            session = db.session()
            session.execute(select(Organisation.sor_code).limit(1)).all()
            getattr(session, end)()  # the first transaction ends, never asked
            session.execute(select(Organisation.sor_code).limit(1)).all()
            assert service.register_version(session) == actual, end
            db.session.remove()


def test_key_rows_read_in_binary_are_the_text_formats_values(apps):
    # A page's keys are read in PostgreSQL's binary format (hierarchy.search): every key
    # column - the code, the name's sort key, updated_at with its zone, the int8 stamp -
    # comes as the text format gives it, alone and beside a count (a pipeline).
    direct, _ = apps
    statement = select(*KEY_COLUMNS).order_by(Organisation.sor_code).limit(20)
    with direct.app_context():
        engine = db.engine
        text_rows = DirectReads(engine).rows(statement, {}, plain=True)
        binary_rows = DirectReads(engine).rows(statement, {}, plain=True, binary=True)
        counted, rows = DirectReads(engine).scalar_and_rows(
            select(literal_column("20", Integer)), statement, {}, plain=True, binary=True)
    assert len(text_rows) == 20 and binary_rows == text_rows and rows == text_rows
    assert counted == 20
    assert all(type(row[-1]) is int and row[2].tzinfo is not None for row in binary_rows)
    assert [[type(value) for value in row] for row in binary_rows] == [
        [type(value) for value in row] for row in text_rows]


def test_one_statement_reads_keep_the_threads_cursor(apps):
    """A one-statement read runs on the thread's cursor, made once per connection (one for
    named rows, one for plain); a statement that fails leaves it usable, and a
    connection the server ended is made again with cursors of its own."""
    direct, _ = apps
    statement = select(Organisation.sor_code, Organisation.version).order_by(
        Organisation.sor_code).limit(2)
    with direct.app_context():
        engine = db.engine
        first = DirectReads(engine).rows(statement, {})
        assert [row.sor_code for row in first] == [row[0] for row in first]
        connection = reads._connection(engine)
        cursor = reads._cursor(connection, False)
        plain = DirectReads(engine).rows(statement, {}, plain=True)
        assert plain == [tuple(row) for row in first] and type(plain[0]) is tuple
        plain_cursor = reads._cursor(connection, True)
        assert plain_cursor is not cursor
        assert DirectReads(engine).rows(statement, {}) == first
        assert reads._cursor(reads._connection(engine), False) is cursor
        with pytest.raises(psycopg.errors.DivisionByZero):
            DirectReads(engine).rows(select(literal_column("1 / 0", Integer)), {})
        assert DirectReads(engine).rows(statement, {}) == first
        assert reads._cursor(reads._connection(engine), False) is cursor
        assert DirectReads(engine).rows(statement, {}, plain=True) == plain
        assert reads._cursor(reads._connection(engine), True) is plain_cursor
        # Several statements at once (a pipeline): plain rows too.
        counted, rows = DirectReads(engine).scalar_and_rows(
            select(literal_column("2", Integer)), statement, {}, plain=True)
        assert counted == 2 and rows == plain
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"),
                           {"pid": connection.info.backend_pid})
        db.session.commit()
        assert DirectReads(engine).rows(statement, {}) == first
        again = reads._connection(engine)
        assert again is not connection and reads._cursor(again, False) is not cursor
        assert reads._cursor(again, False).connection is again
        assert reads._cursor(again, True) is not plain_cursor
        assert DirectReads(engine).rows(statement, {}, plain=True) == plain


def test_a_kept_page_is_served_while_postgresql_finds_its_rows_digest_unchanged(apps,
                                                                                 monkeypatch):
    """hierarchy.search.digests: a list's page of 100 rows or more, kept by the worker, is
    checked by the digest of its key rows PostgreSQL makes (one row sent, not the page's);
    unchanged, the kept page and its cursor are the answer - the same bytes as the
    session's; any organisation of it changed, the rows are read and the page made again.
    Each query keeps a page of its own: another limit, day or cursor is another page."""
    direct, session_only = apps
    facts = _facts(direct)
    headers = {**NO_CACHE, "Authorization": f"Bearer {facts['token']}"}
    monkeypatch.setattr(auth, "IDENTITY_SECONDS", 3600.0)
    fast, slow = direct.test_client(), session_only.test_client()
    for client in (fast, slow):  # the client's identity, kept (read through the session)
        assert client.get("/api/v1/resolve?code=x", headers=headers).status_code == 422
    sent: list[str] = []
    batch = DirectReads._batch

    def recording(self, pairs, binary, plain):
        sent.extend(self._compiled(s).sql.decode() for s, _ in pairs)
        return batch(self, pairs, binary, plain)

    monkeypatch.setattr(DirectReads, "_batch", recording)

    def asked(url: str) -> tuple[bytes, list[str]]:
        sent.clear()
        answer = fast.get(url, headers=headers)
        assert answer.status_code == 200 and answer.headers["X-Cache"] == "miss"
        kinds = ["digest" if "sha256" in sql else "rows" for sql in sent
                 if "ORDER BY" in sql]
        return answer.data, kinds

    def expected(url: str) -> bytes:
        TOTALS.clear()
        return slow.get(url, headers=headers).data

    ITEMS.clear()
    url = "/api/v1/lookups/my-cvr/all?limit=120"
    first, kinds = asked(url)
    assert kinds == ["rows"] and orjson.loads(first)["next"]  # items rendered: not kept
    assert asked(url) == (first, ["rows"])  # every item kept: the page kept now
    assert asked(url) == (first, ["digest"])  # the digest unchanged: the kept page
    assert first == expected(url)
    # The cursor kept with the page leads on as the rows' own.
    following = url + "&cursor=" + orjson.loads(first)["next"]
    assert fast.get(following, headers=headers).data == expected(following)
    # Below 100 rows a page is read by its rows, as before.
    small = "/api/v1/lookups/my-cvr/all?limit=99"
    assert [asked(small)[1] for _ in range(3)] == [["rows"]] * 3
    # Another limit is another query: its own page, never the kept one's.
    other = "/api/v1/lookups/my-cvr/all?limit=119"
    assert asked(other)[1] == ["rows"] and asked(other)[0] == expected(other)
    assert asked(other)[1] == ["digest"]
    # The digest PostgreSQL makes is the one made in Python from the rows.
    with direct.app_context():
        keyed_rows = DirectReads(db.engine).rows(
            select(*key_columns("code")).order_by(Organisation.sor_code).limit(130), {},
            plain=True, binary=True)
        made = DirectReads(db.engine).rows(
            digested(select(*key_columns("code")).order_by(Organisation.sor_code).limit(130)),
            {}, plain=True, binary=True)
    assert made[0][0] == rows_digest(keyed_rows) and len(made[0][0]) == 32
    # One organisation of the page changed: the digest differs, the rows are read.
    unit = orjson.loads(first)["items"][7]["sor_code"]
    with direct.app_context():
        service.change_organisation(db.session, unit, {"name": "Aaa Omdøbt Enhed"},
                                    source="staff", actor="sds")
        db.session.commit()
    changed, kinds = asked(url)
    assert kinds == ["digest", "rows"] and changed == expected(url) != first
    assert orjson.loads(changed)["items"][0]["name"] == "Aaa Omdøbt Enhed"
    # The changed item was read by code, apart from the rows: the page is kept the next
    # time, its items all kept (hierarchy.items), and checked by its new digest after.
    assert asked(url) == (changed, ["digest", "rows"])
    assert asked(url) == (changed, ["digest"])


def test_a_list_of_texts_is_sent_as_its_array_literal(apps):
    """sorregistry.reads.array_text: a ``VARCHAR[]`` parameter goes as PostgreSQL's array
    literal (psycopg dumped the list element by element in Python); whatever the texts
    hold - separators, quotes, backslashes, braces, the word NULL, nothing, spaces - the
    server reads the same list back, and codes go bare."""
    direct, _ = apps
    echo = select(bindparam("values", type_=postgresql.ARRAY(String())).label("echo"))
    lists = [["6227961000016004", "6265851000016005"], ["1"], [],
             ["a,b", '"q"', "back\\slash", "NULL", "null", "", None, "æøå", "{x}", " sp ",
              "tab\tnew\nline", "'"], ["12", None], [None]]
    with direct.app_context():
        direct_reads = DirectReads(db.engine)
        for values in lists:
            [(read,)] = direct_reads.rows(echo, {"values": values}, plain=True)
            assert read == values
            [(read,)] = direct_reads.rows(echo, {"values": tuple(values)}, plain=True,
                                          binary=True)
            assert read == values
    assert reads.array_text(["6227961000016004", "12"]) == "{6227961000016004,12}"
    assert reads.array_text([1, 2]) == "{1,2}"

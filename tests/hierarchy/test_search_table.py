"""The narrow search table and the register version: always in step with the register.

``organisation_names`` repeats columns of ``organisations``; every writer keeps it
exactly equal (the SOR import on both back ends, the service's create, change and
close). Name searches read it on PostgreSQL and give the same answers as SQLite,
with exact totals. The register version changes with every committed change, so
that no cached answer outlives the state it was computed from.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from hierarchy import service
from hierarchy.lookup_routes import ANSWERS
from hierarchy.models import NAME_COLUMNS, Organisation, OrganisationName
from hierarchy.search.totals import TotalCache
from hierarchy.shak_import import import_shak_file
from hierarchy.sor_import import import_sor_file
from hierarchy.text import fold
from sorregistry import create_app
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from sorregistry.reads import close_connections
from tests.conftest import fixture_path, loaded_copy, rolled_back_app
from tests.support.exports import generator


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> tuple[Path, Path]:
    """A municipality export and its changed variant (5 % changed, 1 % of subtrees gone)."""
    gen = generator()
    base = tmp_path_factory.mktemp("names")
    plain, changed = base / "plain.xml", base / "changed.xml"
    gen.generate(plain, 1500, seed=11, municipalities=1, regions=0)
    gen.generate(changed, 1500, seed=11, municipalities=1, regions=0, mutate=0.05, drop=0.01)
    return plain, changed


@pytest.fixture(scope="module")
def imported_url(migrated_template, exports, request, tmp_path_factory) -> Iterator[str]:
    """A database with the plain export imported and committed, once per module and back
    end, for the tests that only search it (each in a transaction rolled back)."""
    with loaded_copy(request, migrated_template, tmp_path_factory.mktemp("imported"),
                     "sor_search_table",
                     lambda session: import_sor_file(session, exports[0], actor="test")) as url:
        yield url


@pytest.fixture
def imported(imported_url) -> Iterator[Flask]:
    """The app on the imported register, its transaction rolled back after the test."""
    with rolled_back_app(imported_url) as app:
        yield app


def _in_step(session) -> None:
    """The narrow table holds exactly the organisations' values, row for row."""
    session.flush()
    organisations = Organisation.__table__
    wide = set(session.execute(select(*[organisations.c[n] for n in NAME_COLUMNS])).all())
    names = OrganisationName.__table__
    narrow = set(session.execute(select(*[names.c[n] for n in NAME_COLUMNS])).all())
    assert narrow == wide
    assert len(wide) == session.execute(select(Organisation.sor_code)).all().__len__()


def test_import_writes_the_narrow_rows(session, exports):
    plain, changed = exports
    first = import_sor_file(session, plain, actor="test")
    assert first.count("OE", "new") > 0
    _in_step(session)
    again = import_sor_file(session, changed, actor="test")
    assert sum(again.count(level, "changed") for level in ("IE", "SI", "OE")) > 0
    assert sum(again.count(level, "closed") for level in ("IE", "SI", "OE")) > 0
    _in_step(session)
    # Back to the plain export: the renamed entities get their names back.
    import_sor_file(session, plain, actor="test")
    _in_step(session)


def _narrow_row(session, sor_code: str):
    names = OrganisationName.__table__
    return session.execute(select(names).where(names.c.sor_code == sor_code)).one()


OWNER = "347801000016001"
HOSPITAL = "347811000016004"
DEPARTMENT = "347821000016008"


def test_service_changes_keep_the_narrow_rows(session, exports):
    import_sor_file(session, exports[0], actor="test")
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
    _in_step(session)
    service.change_organisation(session, DEPARTMENT, {"name": "Øjenafdeling Nord"},
                                source="staff", actor="sds")
    _in_step(session)
    row = _narrow_row(session, DEPARTMENT)
    assert row.name_search == fold("Øjenafdeling Nord")
    # Moving the hospital under another owner changes what its whole subtree
    # inherits (owner CVR, ownership): the narrow rows follow.
    other_owner = session.execute(
        select(Organisation).where(Organisation.level == "IE", Organisation.sor_code != OWNER,
                                   Organisation.owner_cvr.is_not(None))
        .order_by(Organisation.sor_code).limit(1)
    ).scalar_one()
    service.change_organisation(session, HOSPITAL, {"parent_sor_code": other_owner.sor_code},
                                source="staff", actor="sds")
    _in_step(session)
    assert _narrow_row(session, DEPARTMENT).owner_cvr == other_owner.owner_cvr
    created = service.create_organisation(
        session, service.allocate_sor_code(session),
        {"level": "OE", "name": "Nyt Afsnit Zyxw", "parent_sor_code": DEPARTMENT},
        source="application", actor="kommune",
    )
    _in_step(session)
    assert _narrow_row(session, created.sor_code).name_search == "nyt afsnit zyxw"
    service.close_organisation(session, HOSPITAL, date(2024, 6, 1), source="staff", actor="sds")
    _in_step(session)
    assert _narrow_row(session, created.sor_code).valid_to == date(2024, 6, 1)


def test_commits_that_change_the_register_change_its_version(session, exports):
    import_sor_file(session, exports[0], actor="test")
    session.commit()
    before = service.register_version(session)
    session.commit()  # nothing written: the same version
    assert service.register_version(session) == before
    import_sor_file(session, exports[0], actor="test")  # unchanged: writes nothing
    session.commit()
    assert service.register_version(session) == before
    unit = session.execute(
        select(Organisation.sor_code).where(Organisation.level == "OE").limit(1)
    ).scalar_one()
    service.change_organisation(session, unit, {"phone": "12345678"}, source="staff",
                                actor="sds")
    assert service.register_changed_in(session)
    session.commit()
    after = service.register_version(session)
    assert after != before and after[0] == before[0] + 1
    assert not service.register_changed_in(session)
    import_sor_file(session, exports[1], actor="test")
    session.commit()
    assert service.register_version(session)[0] == after[0] + 1


def _headers(session) -> dict[str, str]:
    _, token = create_client(session, "form", cvr="35095748", roles=["reporter"])
    return {"Authorization": f"Bearer {token}"}


def _walk(client, url: str, headers: dict[str, str]) -> tuple[list[str], int]:
    codes: list[str] = []
    total, cursor = None, None
    for _ in range(200):
        body = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        assert body.status_code == 200, body.get_json()
        page = body.get_json()
        assert total is None or page["total"] == total
        total = page["total"]
        codes += [item["sor_code"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            return codes, total
    raise AssertionError("the cursor never ended")


def _expected(session, fragment: str, *, prefix: bool = False, level=None) -> list[Organisation]:
    today = date.today()
    return [
        o for o in session.execute(select(Organisation)).scalars()
        if (fold(o.name).startswith(fragment) if prefix else fragment in fold(o.name))
        and o.is_active_on(today) and (level is None or o.level in level)
    ]


@pytest.mark.parametrize("sort", ["name", "code"])
@pytest.mark.parametrize("fragment", ["pleje", "kom", "Rø", "a"])
def test_name_search_walks_every_match_once_with_its_exact_total(imported, fragment, sort):
    client, session = imported.test_client(), db.session
    headers = _headers(session)
    folded = fold(fragment)
    codes, total = _walk(
        client, f"/api/v1/organisations?name={fragment}&sort={sort}&limit=37", headers
    )
    expected = _expected(session, folded)
    assert len(codes) == len(set(codes)) == total == len(expected) > 0
    assert set(codes) == {o.sor_code for o in expected}
    if sort == "name":
        keys = {o.sor_code: (o.name_search, o.sor_code) for o in expected}
        assert codes == sorted(codes, key=keys.__getitem__)
    else:
        assert codes == sorted(codes, key=lambda c: (len(c), c))


def test_name_search_with_other_filters(imported):
    client, session = imported.test_client(), db.session
    headers = _headers(session)
    codes, total = _walk(client, "/api/v1/organisations?name=pleje&level=OE&limit=50", headers)
    expected = {o.sor_code for o in _expected(session, "pleje", level=["OE"])}
    assert set(codes) == expected and total == len(expected) == len(codes)
    prefix = _expected(session, "kom")[0].name_search[:6]
    codes, total = _walk(
        client, f"/api/v1/organisations?name={prefix}&name_match=prefix&limit=50", headers
    )
    expected = {o.sor_code for o in _expected(session, prefix, prefix=True)}
    assert set(codes) == expected and total == len(expected)
    unit = session.execute(
        select(Organisation).where(Organisation.ydernummer.is_not(None)).limit(1)
    ).scalar_one()
    word = fold(unit.name)[:4]
    body = client.get(f"/api/v1/organisations?name={word}&ydernummer={unit.ydernummer}",
                      headers=headers).get_json()
    assert unit.sor_code in {i["sor_code"] for i in body["items"]}


def test_cached_totals_follow_service_changes_and_imports(client, session, exports):
    plain, changed = exports
    import_sor_file(session, plain, actor="test")
    session.commit()
    headers = _headers(session)
    session.commit()
    url = "/api/v1/organisations?name=qzxj&limit=5"

    def total() -> int:
        return client.get(url, headers=headers).get_json()["total"]

    assert total() == 0
    assert total() == 0  # now from the cache on PostgreSQL
    unit = session.execute(
        select(Organisation.sor_code).where(
            Organisation.level == "OE", Organisation.valid_to.is_(None),
            Organisation.valid_from <= date.today(),
        ).order_by(Organisation.sor_code).limit(1)
    ).scalar_one()
    service.change_organisation(session, unit, {"name": "Qzxj Klinik"}, source="application",
                                actor="kommune")
    assert total() == 1  # uncommitted change, same transaction: no cache
    session.commit()
    assert total() == 1 and total() == 1
    service.close_organisation(session, unit, date.today(), source="staff", actor="sds")
    session.commit()
    assert total() == 0
    # The unit is reopened by the import (the export has it open, with its own name);
    # the cached totals are of the version before the import and are not used.
    service.change_organisation(session, unit, {"name": "Qzxj Klinik", "valid_to": None},
                                source="staff", actor="sds")
    session.commit()
    assert total() == 1 and total() == 1
    import_sor_file(session, changed, actor="test")
    session.commit()
    assert total() == len(_expected(session, "qzxj")) == 0


def test_total_cache_never_answers_for_another_version():
    cache = TotalCache(size=2)
    cache.put((1, "a"), "k", 5)
    assert cache.get((1, "a"), "k") == 5
    assert cache.get((1, "b"), "k") is None  # a rolled-back bump took 1 before
    cache.put((2, "c"), "k", 6)
    assert cache.get((1, "a"), "k") is None and cache.get((2, "c"), "k") == 6


def test_cached_answers_follow_commits_of_other_sessions(fresh_database):
    """As in production: each request a session of its own on the engine, lookups in
    autocommit mode on PostgreSQL, writers committing in other sessions."""

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    try:
        with app.app_context():
            import_sor_file(db.session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
            headers = _headers(db.session)
            db.session.commit()
        client = app.test_client()

        def get(url: str) -> dict:
            response = client.get(url, headers=headers)
            assert response.status_code == 200, response.get_json()
            return response.get_json()

        search = "/api/v1/organisations?name=oejenaf&limit=5"
        resolve = f"/api/v1/resolve?code={DEPARTMENT}"
        assert get(search)["total"] == 0 and get(search)["total"] == 0
        name = get(resolve)["interpretations"][0]["organisations"][0]["name"]
        assert get(resolve)["interpretations"][0]["organisations"][0]["name"] == name
        assert len(ANSWERS.entries) >= 2
        with app.app_context():
            before = service.register_version(db.session)
            service.change_organisation(db.session, DEPARTMENT, {"name": "Øjenafdeling Syd"},
                                        source="application", actor="kommune")
            db.session.commit()
        assert get(search)["total"] == 1
        assert get(resolve)["interpretations"][0]["organisations"][0]["name"] == (
            "Øjenafdeling Syd")
        # A SHAK import changes what resolve shows of SHAK codes: a new version too.
        with app.app_context():
            after_change = service.register_version(db.session)
            assert after_change != before
            import_shak_file(db.session, fixture_path("shak_sample.TXT"), actor="test")
            db.session.commit()
            assert service.register_version(db.session) != after_change
        # The lookups' connections go back to the pool as they came: a write in a
        # later session is still transactional and rolls back.
        with app.app_context():
            service.change_organisation(db.session, DEPARTMENT, {"name": "Rullet Tilbage"},
                                        source="staff", actor="sds")
            db.session.rollback()
            assert db.session.get(Organisation, DEPARTMENT).name == "Øjenafdeling Syd"
        assert get(search)["total"] == 1
    finally:
        close_connections()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

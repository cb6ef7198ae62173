"""The worker's in-memory name index gives exactly the SQL path's answers.

A name search the index can answer (a name, sorted by name, at most level and
ownership filters, for today) must return the same items in the same order, the same
exact total and the same cursors as the SQL path, page after page, on both back ends.
The fragments are drawn from the register's own names the way a person types them
(the first letters of a word, or a piece of one), plus Danish letters and accents
in every spelling the folding makes equal.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hierarchy import search, service
from hierarchy.models import Organisation
from hierarchy.search.names import NAMES, NameIndex, indexable
from hierarchy.search.totals import TOTALS
from hierarchy.sor_import import import_sor_file
from hierarchy.text import fold
from sorregistry import create_app, reads
from sorregistry.extensions import db
from tests.conftest import fixture_path, loaded_copy, rolled_back_app
from tests.support.exports import generator


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    module = generator()
    path = tmp_path_factory.mktemp("name-index") / "register.xml"
    # 1,200 entities, two municipalities and a region: every fragment is walked page by
    # page by the index and by SQL, so a walk costs pages x matches; a larger register
    # (it was 2,500: minutes of the suite) makes the walks longer, not the comparison
    # stronger.
    module.generate(path, 1200, seed=5, municipalities=2, regions=1)
    return path


def _load(session, export: Path) -> None:
    import_sor_file(session, export, actor="test")
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
    # Names with accents and Danish letters in several spellings, and LIKE's wildcards.
    for name, sor_code in zip(
            ["Café Ærø Sundhedshus", "Crème Brûlée Klinik", "Müller & Søn",
             "AEROE Tandpleje 50%", "Kløverløkken_2", "Ørestad Øjenklinik"],
            session.execute(select(Organisation.sor_code).where(Organisation.level == "OE")
                            .order_by(Organisation.sor_code.desc()).limit(6)).scalars().all(),
            strict=True):
        service.change_organisation(session, sor_code, {"name": name}, source="staff",
                                    actor="test")


@pytest.fixture(scope="module")
def register_url(migrated_template, export, request, tmp_path_factory) -> Iterator[str]:
    """The register the tests search, imported and committed once for the module (an
    import takes seconds): each test reads it in a transaction of its own that is
    rolled back."""
    with loaded_copy(request, migrated_template, tmp_path_factory.mktemp("register"),
                     "sor_name_index", lambda session: _load(session, export)) as url:
        yield url


@pytest.fixture
def register(register_url):
    with rolled_back_app(register_url):
        NAMES.clear()
        TOTALS.clear()
        yield db.session
        NAMES.clear()
        TOTALS.clear()


def _fragments(session, count: int, seed: int) -> list[str]:
    """What people type: the start of a word of a real name (1-6 letters), a piece from
    inside a word, the start of the name; plus letters the folding makes equal."""
    rng = random.Random(seed)
    names = sorted(session.execute(select(Organisation.name)).scalars())
    fragments: set[str] = set()
    while len(fragments) < count:
        name = rng.choice(names)
        words = re.findall(r"\S+", name)
        word = rng.choice(words)
        pick = rng.random()
        if pick < 0.6:
            fragments.add(word[:rng.randint(1, 6)])
        elif pick < 0.8 and len(word) > 3:
            start = rng.randint(0, len(word) - 3)
            fragments.add(word[start:start + rng.randint(3, 5)])
        else:
            fragments.add(name[:rng.randint(3, 12)].upper())
    return sorted(fragments) + [
        "ærø", "AERØ", "aeroe", "Ærø", "café", "CAFE", "brûlée", "brulee", "MÜLLER", "mueller",
        "søn", "soen", "ø", "Øj", "oej", "50%", "%", "_", "n_2", "& s", "  klinik  ", "qzx",
        "tandpleje", "a", "e", "en", "sen", "tan",
    ]


def _walk(session, filters: dict, limit: int, use_index: bool) -> list[tuple]:
    """Every page of a search: (items' codes, total, next) of each page."""
    NAMES.enabled = use_index
    if not use_index:
        NAMES.index = None
    TOTALS.clear()
    pages = []
    cursor = None
    try:
        for _ in range(2000):
            page = search.search(session, search.Filters(**filters), limit=limit,
                                  cursor=cursor)
            pages.append(([row.sor_code for row in page.items], page.total, page.next))
            cursor = page.next
            if cursor is None:
                break
        else:
            raise AssertionError("the walk did not end")
    finally:
        NAMES.enabled = True
    return pages


def _index_answers(session, filters: dict, limit: int) -> list[tuple]:
    pages = _walk(session, filters, limit, use_index=True)
    assert NAMES.index is not None  # the index answered (built here if needed)
    return pages


@pytest.mark.parametrize("variant", [
    {},
    {"level": ["SI", "OE"]},
    {"level": ["IE"]},
    {"ownership": "privat"},
    {"ownership": "regional", "level": ["OE"]},
    {"name_match": "prefix"},
])
def test_index_answers_equal_sql_answers(register, variant):
    for n, fragment in enumerate(_fragments(register, 40, seed=len(str(variant)))):
        filters = {"name": fragment, **variant}
        limit = (20, 9, 100)[n % 3]
        by_index = _index_answers(register, filters, limit)
        by_sql = _walk(register, filters, limit, use_index=False)
        assert by_index == by_sql, (fragment, variant)
        codes = [code for items, _, _ in by_index for code in items]
        assert len(codes) == len(set(codes)) == by_index[0][1]  # every match once, exact total


def test_folded_spellings_find_the_same_rows(register):
    answers = {}
    for spelling in ("ærø", "AERØ", "aeroe", "Ærø", "aero"):
        answers[spelling] = _index_answers(register, {"name": spelling}, 50)
    first = answers["ærø"]
    assert all(pages == first for pages in answers.values())
    found = set(first[0][0])
    names = {fold(n) for n in register.execute(
        select(Organisation.name).where(Organisation.sor_code.in_(found))).scalars()}
    assert {"cafe aero sundhedshus", "aero tandpleje 50%"} <= names
    brulee = _index_answers(register, {"name": "Brûlée"}, 20)
    assert brulee == _index_answers(register, {"name": "brulee"}, 20)
    assert brulee[0][1] == 1


def test_index_follows_the_register_version(register):
    before = _index_answers(register, {"name": "qzxjv"}, 20)
    assert before[0][1] == 0
    index = NAMES.index
    code = register.execute(select(Organisation.sor_code).where(Organisation.level == "SI")
                            .limit(1)).scalar_one()
    service.change_organisation(register, code, {"name": "Qzxjv Klinik"}, source="staff",
                                actor="test")
    # Uncommitted changes of this transaction: the SQL path answers, the index is not used.
    assert search.search(register, search.Filters(name="qzxjv")).total == 1
    register.commit()
    after = _index_answers(register, {"name": "qzxjv"}, 20)
    assert after[0][1] == 1 and NAMES.index is not index
    assert after == _walk(register, {"name": "qzxjv"}, 20, use_index=False)


def test_other_days_and_filters_take_the_sql_path(register):
    _index_answers(register, {"name": "sen"}, 20)
    index = NAMES.index
    yesterday = date.today() - timedelta(days=1)
    assert indexable(search.Filters(name="sen", active_on=yesterday), "name")
    page = search.search(register, search.Filters(name="sen", active_on=yesterday))
    assert NAMES.index is index  # not rebuilt for another day
    NAMES.index = None
    assert page.total == search.search(register, search.Filters(name="sen",
                                                                  active_on=yesterday)).total
    assert not indexable(search.Filters(name="sen", postal_code="2100"), "name")
    assert not indexable(search.Filters(name="sen"), "code")
    assert not indexable(search.Filters(name="sen", cvr="29190623"), "name")


def test_index_unit_matches_brute_force():
    rng = random.Random(3)
    alphabet = "abcdeøæå é-&%_"
    names = sorted({fold("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))
                    for _ in range(400)} - {""})
    rows = sorted((name, f"{n:06d}", rng.choice(["IE", "SI", "OE"]),
                   rng.choice(["privat", "kommunal", None]))
                  for n, name in enumerate(names * 3))
    index = NameIndex((1, "x"), date.today(), iter(rows))
    for fragment in ["a", "ab", "abc", "ae", "oe", " ", "%", "_a", "e-", "aaaa", "zz"]:
        for mode in ("contains", "prefix"):
            for levels, ownership in (([], None), (["OE"], None), ([], "privat"),
                                      (["SI", "IE"], "kommunal")):
                expected = [(r[0], r[1]) for r in rows
                            if (r[0].startswith(fragment) if mode == "prefix"
                                else fragment in r[0])
                            and (not levels or r[2] in levels)
                            and (not ownership or r[3] == ownership)]
                seen, after = [], None
                while True:
                    keys, total, more = index.search(fragment, mode, levels, ownership, 5,
                                                     after)
                    assert total == len(expected)
                    seen += keys
                    if not more:
                        break
                    after = list(keys[-1])
                assert seen == expected, (fragment, mode, levels, ownership)
    with pytest.raises(ValueError):
        NameIndex(1, date.today(), iter([("b", "1", "OE", None), ("a", "2", "OE", None)]))


def test_index_is_built_off_the_request_path_on_postgresql(fresh_database, backend):
    """On an engine (production), PostgreSQL: the first search finds no index, starts a
    build in a thread and answers by SQL; once built, the index answers."""
    if backend != "postgresql":
        pytest.skip("SQLite builds the index in the request")

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    NAMES.clear()
    try:
        with app.app_context():
            import_sor_file(db.session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
            db.session.commit()
        with app.app_context():
            first = search.search(db.session, search.Filters(name="afs"), limit=3)
            db.session.rollback()
        deadline = time.monotonic() + 30
        while NAMES.lock.locked() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert NAMES.index is not None and NAMES.last_build_seconds is not None
        with app.app_context():
            version = service.register_version(db.session)
            assert NAMES.index.version == version
            again = search.search(db.session, search.Filters(name="afs"), limit=3)
            db.session.rollback()
        assert ([r.sor_code for r in again.items], again.total, again.next) == (
            [r.sor_code for r in first.items], first.total, first.next)
        assert first.total > 0
        # Fuzzy: pg_trgm answers while the index's trigram postings are made in a thread,
        # then the index answers (its page read by the engine's fast reads), alike.
        fuzzy = search.Filters(name="Roskilde Ojenklnik afsnt", name_match="fuzzy")
        answers = []
        for _ in range(2):
            with app.test_request_context():
                assert reads.allow(db.session)  # the direct reads, as a lookup route's
                page = search.search(db.session, fuzzy, limit=5)
                answers.append(([r.sor_code for r in page.items], page.total, page.next))
                db.session.rollback()
            deadline = time.monotonic() + 30
            while not NAMES.index.fuzzy_ready():
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert answers[0] == answers[1] and answers[0][1] > 0
    finally:
        NAMES.clear()
        with app.app_context():
            db.engine.dispose()

"""Search the way people type it (issue 15): one forgiving fold, words in any order,
ranked answers, fuzzy search and suggestions; alike on SQLite and PostgreSQL.

A small register of known names (the fixtures' organisations renamed), searched over
HTTP as a reporting form does; the name index and the SQL path both answer (the index
is switched off for the second pass).
"""

from __future__ import annotations

import importlib.util
import random
import time
from array import array
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from hierarchy import search, service
from hierarchy.models import Organisation, OrganisationName
from hierarchy.search.filters import begins_word, every_word_begins, relevance
from hierarchy.search.fuzzy import (
    FUZZY_THRESHOLD,
    MadeOnce,
    float4,
    ratio,
    similar,
    similarity,
    trigrams,
)
from hierarchy.search.names import NAMES, NameIndex
from hierarchy.search.totals import TOTALS
from hierarchy.sor_import import import_sor_file
from hierarchy.text import fold
from sorregistry.accounts.clients import create_client
from tests.conftest import fixture_path

NAMES_GIVEN = [
    "Københavns Kommune Sundhedshus", "Koebenhavns Tandpleje", "KØBENHAVN Plejehjem",
    "Plejecenter Horsens", "Horsens Plejecenter Vest", "Horsens", "Akut Vesthorsens",
    "Aarhus Sundhedshus", "Århus Tandklinik", "Arhus Jordemoderklinik", "Rigshospitalet",
    "Rødovre Plejecenter", "Næstved Sygehus",
]


@pytest.fixture
def register(session):
    for name in ("Sor_small.xml", "ONE_SYGEHUS.xml", "ONE_APOTEK.xml", "ONE_PRAKSIS.xml"):
        import_sor_file(session, fixture_path(name), actor="test")
    codes = session.execute(select(Organisation.sor_code)
                            .order_by(Organisation.sor_code)).scalars().all()
    assert len(codes) >= len(NAMES_GIVEN)
    for name, code in zip(NAMES_GIVEN, codes, strict=False):
        service.change_organisation(session, code, {"name": name}, source="staff",
                                    actor="test")
    session.commit()
    NAMES.clear()
    TOTALS.clear()
    yield session
    NAMES.clear()
    TOTALS.clear()


@pytest.fixture
def headers(register):
    _, token = create_client(register, "form", cvr="29190623", roles=["reporter"])
    register.commit()
    return {"Authorization": f"Bearer {token}"}


def _get(client, headers, **query) -> dict:
    response = client.get("/api/v1/organisations", query_string=query,
                          headers={**headers, "Cache-Control": "no-cache"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _both_paths(client, headers, **query) -> dict:
    """The answer from the name index, checked equal to the SQL path's."""
    by_index = _get(client, headers, **query)
    NAMES.enabled, NAMES.index = False, None
    try:
        by_sql = _get(client, headers, **query)
    finally:
        NAMES.enabled = True
    assert by_index == by_sql, query
    return by_index


def _names(body: dict) -> list[str]:
    return [item["name"] for item in body["items"]]


def test_fold_rule():
    for group in (["kobenhavn", "koebenhavn", "københavn", "KØBENHAVN", "Kobenhavn"],
                  ["arhus", "aarhus", "århus", "AARHUS", "Århus"],
                  ["aabenraa", "åbenrå", "abenra"], ["rodovre", "roedovre", "rødovre"],
                  ["naestved", "næstved", "NÆSTVED"], ["muller", "müller", "mueller"],
                  ["malmo", "malmö", "malmø"], ["cafe", "café", "CAFÉ"], ["aero", "ærø"]):
        assert len({fold(spelling) for spelling in group}) == 1, group
    assert fold("Københavns Kommune").startswith(fold("kobenhavn"))
    assert fold("  Plejecenter\tHorsens ") == "plejecenter horsens"
    rng = random.Random(7)
    alphabet = "aeouåøæöüAEOØÅ é-"
    for _ in range(2000):
        typed = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        more = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
        assert fold(fold(typed)) == fold(typed)
        # Typing more never loses a match: the fold of a prefix begins the fold.
        if not typed.endswith(" "):
            assert fold(typed + more).startswith(fold(typed)), (typed, more)


def test_spellings_find_the_same(client, headers):
    for group in (["kobenhavn", "koebenhavn", "københavn", "KØBENHAVN"],
                  ["arhus", "aarhus", "århus"], ["rodovre", "Roedovre", "Rødovre"]):
        answers = [_both_paths(client, headers, name=spelling) for spelling in group]
        assert answers[0]["total"] > 0
        assert all(answer == answers[0] for answer in answers), group
    assert _get(client, headers, name="kobenhavn")["total"] == 3
    assert _get(client, headers, name="arhus")["total"] == 3
    prefix = _both_paths(client, headers, name="Københavns", name_match="prefix")
    assert sorted(_names(prefix)) == ["Koebenhavns Tandpleje", "Københavns Kommune Sundhedshus"]


def test_words_in_any_order_ranked(client, headers):
    body = _both_paths(client, headers, name="plej hor")
    assert _names(body)[0] == "Plejecenter Horsens"
    assert set(_names(body)) == {"Plejecenter Horsens", "Horsens Plejecenter Vest"}
    assert _get(client, headers, name="plej hor", name_match="contains")["total"] == 0
    # Exact name, then the names it begins, then a word of the name, then a substring.
    ranked = _both_paths(client, headers, name="horsens")
    assert _names(ranked) == ["Horsens", "Horsens Plejecenter Vest", "Plejecenter Horsens",
                              "Akut Vesthorsens"]
    by_name = _both_paths(client, headers, name="horsens", sort="name")
    assert _names(by_name) == ["Akut Vesthorsens", "Horsens", "Horsens Plejecenter Vest",
                               "Plejecenter Horsens"]
    # Page by page, every match once, in the same order.
    seen, cursor = [], None
    for _ in range(10):
        page = _both_paths(client, headers, name="horsens", limit=1,
                           **({"cursor": cursor} if cursor else {}))
        seen += _names(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == _names(ranked)


def test_words_with_a_regular_expressions_characters_are_text(client, headers):
    # The index tests a words search with one compiled expression: what is typed is text,
    # never a pattern - index and SQL find alike (their suggestions may differ: the SQL
    # path's come without the index's words), nothing is refused or fails.
    for typed in ("plej (hor", "ple* hor", "plej h[o", "hor. plej", "plej \\d", "(hor) ple+"):
        by_index = _get(client, headers, name=typed)
        NAMES.enabled, NAMES.index = False, None
        try:
            by_sql = _get(client, headers, name=typed)
        finally:
            NAMES.enabled = True
        assert (by_index["total"], by_index["items"]) == (by_sql["total"], by_sql["items"])
        assert by_index["total"] == 0, typed
    assert _names(_both_paths(client, headers, name="hor plej"))[0] == "Horsens Plejecenter Vest"


def test_suggestions_when_nothing_is_found(client, headers):
    body = _get(client, headers, name="Rigshopitalet")
    assert body["total"] == 0 and body["suggestions"][0] == "rigshospitalet"
    body = _get(client, headers, name="plejecentre")
    assert body["total"] == 0 and body["suggestions"][0] == "plejecenter"
    body = _get(client, headers, name="plejecentre horsens")
    assert body["suggestions"][0] == "plejecenter horsens"
    assert _get(client, headers, name="plejecenter horsens")["total"] >= 1
    assert "suggestions" not in _get(client, headers, name="horsens")
    assert _get(client, headers, name="qqqqzzzz")["suggestions"] == []


def test_fuzzy_ranks_as_pg_trgm(client, headers, register, backend):
    typed = "Rigshopitalet Horsns"
    folded = fold(typed)
    names = register.execute(select(Organisation.name_search, Organisation.sor_code)).all()
    expected = sorted((-similarity(folded, name), name, code) for name, code in names
                      if similarity(folded, name) >= FUZZY_THRESHOLD)
    # The name index (pg_trgm's measure in memory) and the SQL path (pg_trgm itself on
    # PostgreSQL) answer alike, item for item.
    body = _both_paths(client, headers, name=typed, name_match="fuzzy", limit=500)
    assert body["total"] == len(expected) and body["next"] is None
    assert [item["sor_code"] for item in body["items"]] == [code for _, _, code in expected]
    top = _both_paths(client, headers, name="Rigshopitalet", name_match="fuzzy")
    assert _names(top)[0] == "Rigshospitalet"
    if backend == "postgresql":  # the measure itself, name by name, against pg_trgm's
        for name, _ in names:
            sql = register.execute(text("SELECT similarity(:a, :b), show_trgm(:b)"),
                                   {"a": folded, "b": name}).one()
            assert float4(sql[0]) == similarity(folded, name), name  # psycopg: shortest text
            assert set(sql[1]) == set(trigrams(name)), name


def test_vectorised_ratio_is_pg_trgms():
    """NameGrams' ratios (float32 division over numpy arrays) are :func:`ratio`'s (a
    float4, as pg_trgm's CALCSML), for every count and size up to 120 trigrams."""
    grams = [f"{k:03d}" for k in range(120)]
    texts = [(b, c) for b in range(1, 121) for c in range(b + 1)]  # c typed ones of b
    sizes = array("i", [b for b, _ in texts])
    for a in (1, 7, 30, 120):  # the typed text's trigrams
        postings = {gram: array("i") for gram in grams}
        for j, (_, c) in enumerate(texts):
            for gram in grams[:min(c, a)]:
                postings[gram].append(j)
        expected = sorted((-score, j) for j, (b, c) in enumerate(texts)
                          if (score := ratio(min(c, a), a, b)) >= FUZZY_THRESHOLD)
        assert similar(frozenset(grams[:a]), postings, sizes) == expected, a


def test_made_once_in_a_thread():
    made: list[int] = []
    failures = [RuntimeError("once")]

    def make() -> list[int]:
        if failures:
            raise failures.pop()
        made.append(1)
        return made

    once = MadeOnce(make, "test-made-once")
    assert not once.ready()  # the first attempt fails in its thread (logged)
    deadline = time.monotonic() + 10
    while not once.ready():  # the next attempt makes it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert once.get() is made and made == [1]


def test_refused_searches(client, headers):
    for query in ({"name": "x", "name_match": "sounds"}, {"name": "x", "sort": "best"},
                  {"name": "horsens", "name_match": "fuzzy", "cursor": "abc"},
                  {"name": "horsens", "name_match": "fuzzy", "postal_code": "8700"}):
        response = client.get("/api/v1/organisations", query_string=query, headers=headers)
        assert response.status_code == 422, query
    # Nothing left of the name once folded: the list unfiltered by name, as before.
    assert _get(client, headers, name=" ", name_match="fuzzy")["total"] == _get(
        client, headers)["total"]
    by_name = _get(client, headers, name="horsens", sort="name", limit=1)
    response = client.get("/api/v1/organisations", headers=headers, query_string={
        "name": "horsens", "limit": 1, "cursor": by_name["next"]})
    assert response.status_code == 422  # a cursor of another order


def test_migration_refolds_stored_names(register):
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0019_fold_names.py"
    spec = importlib.util.spec_from_file_location("fold_names", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    code = register.execute(select(Organisation.sor_code)
                            .where(Organisation.name == "Rødovre Plejecenter")).scalar_one()
    for table in (Organisation, OrganisationName):  # as the older fold stored it
        register.execute(update(table).where(table.sor_code == code)
                         .values(name_search="roedovre plejecenter"))
    connection = register.connection()
    for columns in migration._COLUMNS:
        migration._refold(connection, *columns)
    for table in (Organisation, OrganisationName):
        stored = register.execute(select(table.name_search).where(table.sor_code == code))
        assert stored.scalar_one() == "rodovre plejecenter"
    register.commit()
    NAMES.clear()
    assert search.search(register, search.Filters(name="rodovre")).total == 1


def test_index_relevance_and_fuzzy_match_brute_force():
    """The name index's relevance order and fuzzy answers, page by page, against the
    definitions computed over every row."""
    rng = random.Random(5)
    syllables = ["ple", "je", "cen", "ter", "hor", "sens", "ko", "ben", "havn", " ", "-", "a"]
    names = sorted({fold("".join(rng.choice(syllables) for _ in range(rng.randint(1, 7))))
                    for _ in range(500)} - {""})
    rows = sorted((name, f"{n:06d}", rng.choice(["IE", "SI", "OE"]),
                   rng.choice(["privat", None]))
                  for n, name in enumerate(names * 2))
    index = NameIndex((1, "x"), date.today(), iter(rows))
    for typed in ["ple", "hor", "plejecenter", "plej hor", "hor ple", "sens", "a", "ko-b",
                  names[3], names[40]]:
        for mode in ("contains", "prefix", "words"):
            folded = fold(typed)
            if mode == "words":
                found = [r for r in rows if all(begins_word(r[0], w) for w in folded.split())]
            elif mode == "prefix":
                found = [r for r in rows if r[0].startswith(folded)]
            else:
                found = [r for r in rows if folded in r[0]]
            for levels in ([], ["OE"]):
                expected = sorted((relevance(r[0], folded), r[0], r[1]) for r in found
                                   if not levels or r[2] in levels)
                seen, after = [], None
                while True:
                    keys, total, more = index.search(folded, mode, levels, None, 7, after,
                                                     "relevance")
                    assert total == len(expected)
                    seen += [(relevance(name, folded), name, code) for name, code in keys]
                    if not more:
                        break
                    after = list(seen[-1])
                assert seen == expected, (typed, mode, levels)
        for ownership in (None, "privat"):
            scored = sorted((-similarity(fold(typed), r[0]), r[0], r[1]) for r in rows
                            if similarity(fold(typed), r[0]) >= FUZZY_THRESHOLD
                            and (ownership is None or r[3] == ownership))
            keys, total = index.fuzzy(fold(typed), [], ownership, 25)
            assert total == len(scored)
            assert keys == [(name, code) for _, name, code in scored[:25]], typed


def test_every_word_begins_is_begins_word_for_each_word():
    # The compiled test the index's "words" mode uses, against its definition, with the
    # separators and characters a regular expression would read as its own.
    rng = random.Random(11)
    alphabet = "ab(-/ .*+?[]^$|\\{}%_ø"
    names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
             for _ in range(3000)]
    for _ in range(300):
        words = tuple("".join(rng.choice(alphabet.replace(" ", "")) for _ in range(
            rng.randint(1, 3))) for _ in range(rng.randint(0, 3)))
        test = every_word_begins(words)
        for name in names:
            assert bool(test(name)) == all(begins_word(name, w) for w in words), (name, words)


def test_fhir_name_search_folds_alike(client, headers):
    """FHIR's ``name`` (a word starts so) takes the same fold: one function."""
    found = []
    for typed in ("kobenhavns", "københavns", "KOEBENHAVNS"):
        response = client.get("/fhir/Organization", query_string={"name": typed},
                              headers=headers)
        assert response.status_code == 200, response.get_json()
        found.append(sorted(e["resource"]["name"] for e in response.get_json()["entry"]))
    assert found[0] == found[1] == found[2] == ["Koebenhavns Tandpleje",
                                               "Københavns Kommune Sundhedshus"]

"""FHIR's name search ("a word of the name starts so", several words in any order) is the
search's ``words`` mode: the worker's name index, the narrow table and the general SQL
give the same answers, and exactly the names that hold every word at a word's start."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from hierarchy import search
from hierarchy.models import Organisation
from hierarchy.search.names import NAMES
from hierarchy.search.totals import TOTALS
from hierarchy.sor_import import import_sor_file
from hierarchy.text import fold
from tests.support.exports import generator


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("words") / "register.xml"
    generator().generate(path, 1500, seed=7, municipalities=1, regions=1)
    return path


@pytest.fixture
def register(session, export):
    import_sor_file(session, export, actor="test")
    session.commit()
    NAMES.clear()
    TOTALS.clear()
    yield session
    NAMES.clear()
    TOTALS.clear()


def _texts(session, count: int) -> list[str]:
    """Starts of words of real names, one to three of them, in any order and case."""
    rng = random.Random(11)
    names = sorted(session.execute(select(Organisation.name)).scalars())
    texts: set[str] = set()
    while len(texts) < count:
        words = re.findall(r"\w+", rng.choice(names))
        picked = rng.sample(words, min(len(words), rng.randint(1, 3)))
        text = " ".join(word[:rng.randint(1, 5)] for word in picked)
        texts.add(text.upper() if rng.random() < 0.2 else text)
    return sorted(texts) + ["pleje center", "æ", "aa", "centr ple", "-", "(", "qzx"]


def _pages(session, filters: dict, use_index: bool) -> list[tuple]:
    NAMES.enabled = use_index
    if not use_index:
        NAMES.index = None
    TOTALS.clear()
    pages, cursor = [], None
    try:
        while True:
            page = search.search(session, search.Filters(**filters), limit=25, cursor=cursor)
            pages.append(([row.sor_code for row in page.items], page.total, page.next))
            cursor = page.next
            if cursor is None:
                return pages
    finally:
        NAMES.enabled = True


def _starts_every_word(name: str, text: str) -> bool:
    return all(re.search(r"(?:^|[ \-(/])" + re.escape(word), fold(name))
               for word in fold(text).split())


def test_words_mode_alike_on_every_path(register):
    names = {code: name for code, name in register.execute(
        select(Organisation.sor_code, Organisation.name))}
    for text in _texts(register, 40):
        filters = {"name": text, "name_match": "words"}
        by_index = _pages(register, filters, use_index=True)
        by_sql = _pages(register, filters, use_index=False)
        assert by_index == by_sql, text
        everywhere = _pages(register, {**filters, "validity": "any"}, use_index=False)
        found = [code for items, _, _ in everywhere for code in items]
        expected = {code for code, name in names.items() if _starts_every_word(name, text)}
        assert set(found) == expected and len(found) == len(expected), text

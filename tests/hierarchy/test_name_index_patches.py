"""The name index follows the register from the change record, without a rebuild, and
answers exactly as a fresh build does (hierarchy.search.patches)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from hierarchy import search, service
from hierarchy.models import Organisation
from hierarchy.search.names import NAMES, NameIndex
from hierarchy.search.patches import PatchedIndex
from hierarchy.search.totals import TOTALS
from tests.hierarchy.test_forgiving_search import register  # noqa: F401 - the fixture

QUERIES = [
    {"name": "horsens"}, {"name": "plej hor"}, {"name": "kobenhavn", "sort": "name"},
    {"name": "a", "limit": 2}, {"name": "e", "level": ["OE"], "limit": 3},
    {"name": "pleje", "name_match": "prefix"}, {"name": "sund", "ownership": "privat"},
    {"name": "Rigshopitalet", "name_match": "fuzzy"}, {"name": "plejecentr hors",
                                                        "name_match": "fuzzy", "limit": 2},
    {"name": "klinik", "sort": "name", "limit": 1}, {"name": "nyt navn"},
]


def _answers(session) -> list:
    """Every page of every query: (codes, total, next)."""
    answers = []
    for query in QUERIES:
        query = dict(query)
        sort, limit = query.pop("sort", None), query.pop("limit", 50)
        cursor, pages = None, []
        for _ in range(50):
            page = search.search(session, search.Filters(**query), sort=sort, limit=limit,
                                 cursor=cursor)
            pages.append(([row.sor_code for row in page.items], page.total, page.next))
            cursor = page.next
            if cursor is None:
                break
        answers.append(pages)
    return answers


def _fresh(session) -> list:
    NAMES.clear()
    TOTALS.clear()
    answers = _answers(session)
    assert isinstance(NAMES.index, NameIndex)
    return answers


def test_changes_patch_the_index_exactly(register):  # noqa: F811 - the fixture
    _answers(register)
    base = NAMES.index
    assert isinstance(base, NameIndex) and base.position is not None
    builds = NAMES.builds
    codes = register.execute(select(Organisation.sor_code).where(Organisation.level != "IE")
                             .order_by(Organisation.sor_code)).scalars().all()
    service.change_organisation(register, codes[0], {"name": "Nyt Navn Horsens"},
                                source="staff", actor="test")
    service.change_organisation(register, codes[1], {"name": "Plejecenter Nyt Navn"},
                                source="staff", actor="test")
    register.commit()
    patched = _answers(register)
    first = NAMES.index
    assert isinstance(first, PatchedIndex) and NAMES.builds == builds
    assert first.base is base and NAMES.patches >= 1
    assert patched == _fresh(register)

    # A patch on a patch: a unit renamed again (to a name another bears), one closed
    # today (it leaves the day's index).
    NAMES.index = first
    service.change_organisation(register, codes[0], {"name": "Horsens"}, source="staff",
                                actor="test")
    service.close_organisation(register, codes[2], date.today(), source="staff",
                               actor="test")
    register.commit()
    patched = _answers(register)
    assert isinstance(NAMES.index, PatchedIndex) and NAMES.index.base is base
    assert NAMES.builds == builds + 1  # the fresh build above, none since
    assert patched == _fresh(register)
    # The same on the SQL path.
    NAMES.enabled, NAMES.index = False, None
    try:
        assert _answers(register) == patched
    finally:
        NAMES.enabled = True

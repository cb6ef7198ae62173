"""The reporting forms' lookups over HTTP, on an unseen municipality export."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from flask import Flask
from sqlalchemy import literal, select, union_all

from hierarchy import search, service
from hierarchy.items import ITEMS, ItemCache
from hierarchy.lookup_routes import ANSWERS
from hierarchy.models import Organisation, organisation_stamp
from hierarchy.schemas import organisation_item
from hierarchy.search import ITEM_COLUMNS
from hierarchy.search.keyrows import KEY_COLUMNS, code_of, key_columns, named_key, stamp_of_key
from hierarchy.search.names import NAMES
from hierarchy.search.totals import TOTALS
from hierarchy.sor_import import import_sor_file
from hierarchy.text import fold
from sorregistry.accounts.clients import create_client
from tests.conftest import loaded_copy, rolled_back_app
from tests.support.exports import generator


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    module = generator()
    path = tmp_path_factory.mktemp("lookups") / "municipality.xml"
    module.generate(path, 1500, seed=11, municipalities=1, regions=0)
    return path


def _load(session, export: Path) -> None:
    import_sor_file(session, export, actor="test")
    # A real private hospital with SHAK codes beside the municipality.
    import_sor_file(session, Path(__file__).parents[1] / "fixtures" / "ONE_SYGEHUS.xml",
                    actor="test")


@pytest.fixture(scope="module")
def register_url(migrated_template, export, request, tmp_path_factory) -> Iterator[str]:
    """The register, imported and committed once per module and back end (1,500 entities:
    seconds), not once per test."""
    with loaded_copy(request, migrated_template, tmp_path_factory.mktemp("register"),
                     "sor_lookups", lambda session: _load(session, export)) as url:
        yield url


@pytest.fixture
def app(register_url) -> Iterator[Flask]:
    """The app (and so ``client`` and ``session``) on the imported register, each test in a
    transaction rolled back; the caches start empty, as after an import of its own."""
    with rolled_back_app(register_url) as app:
        ANSWERS.clear()
        TOTALS.clear()
        NAMES.clear()
        yield app
        NAMES.wait()
        NAMES.clear()


@pytest.fixture
def register(session):
    return session


def _owner(session, ownership: str) -> Organisation:
    return session.execute(
        select(Organisation).where(Organisation.level == "IE", Organisation.ownership == ownership,
                                   Organisation.cvr.is_not(None))
        .order_by(Organisation.sor_code).limit(1)
    ).scalar_one()


KEY_NAMES = [column.key for column in KEY_COLUMNS]


def _token(session, cvr: str, role: str = "reporter", **extra) -> dict[str, str]:
    _, token = create_client(session, "form", cvr=cvr, roles=[role], **extra)
    return {"Authorization": f"Bearer {token}"}


def _walk(client, url: str, headers: dict[str, str]) -> tuple[list[dict], int]:
    items: list[dict] = []
    total = None
    cursor = None
    for _ in range(100):
        response = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        total = body["total"] if total is None else total
        assert body["total"] == total
        items.extend(body["items"])
        cursor = body["next"]
        if cursor is None:
            break
    return items, total


def _expected(session, **where) -> set[str]:
    query = select(Organisation.sor_code).where(
        Organisation.valid_to.is_(None) | (Organisation.valid_to > date.today())
    )
    for name, value in where.items():
        column = getattr(Organisation, name)
        query = query.where(column.in_(value) if isinstance(value, list) else column == value)
    return set(session.execute(query).scalars())


def test_my_cvr_si_and_all(client, register):
    municipality = _owner(register, "kommunal")
    headers = _token(register, municipality.cvr)
    institutions, total = _walk(client, "/api/v1/lookups/my-cvr/si?limit=100", headers)
    assert {i["sor_code"] for i in institutions} == _expected(
        register, owner_cvr=municipality.cvr, level="SI")
    assert total == len(institutions) and {i["level"] for i in institutions} == {"SI"}
    everything, total = _walk(client, "/api/v1/lookups/my-cvr/all?limit=500", headers)
    codes = [i["sor_code"] for i in everything]
    assert len(codes) == len(set(codes)) == total  # each unit exactly once
    assert set(codes) == _expected(register, owner_cvr=municipality.cvr, level=["SI", "OE"])
    assert {i["level"] for i in everything} == {"SI", "OE"}
    assert all(i["cvr"] == municipality.cvr for i in everything)


def test_my_cvr_comes_from_the_client_not_a_parameter(client, register):
    private = _owner(register, "privat")
    headers = _token(register, private.cvr)
    response = client.get(f"/api/v1/lookups/my-cvr/all?cvr={_owner(register, 'kommunal').cvr}",
                          headers=headers)
    assert response.status_code == 422 and "cvr" in response.get_json()["errors"]


@pytest.mark.parametrize("ownership", ["kommunal", "privat"])
def test_ownership_lists_hold_exactly_that_ownership(client, register, ownership):
    headers = _token(register, "35095748")
    items, total = _walk(client, f"/api/v1/lookups/ownership/{ownership}?limit=500", headers)
    assert {i["ownership"] for i in items} == {ownership}
    assert {i["sor_code"] for i in items} == _expected(
        register, ownership=ownership, level=["SI", "OE"])


def test_filters_narrow(client, register):
    headers = _token(register, "35095748")
    base = client.get("/api/v1/organisations?limit=1", headers=headers).get_json()["total"]
    unit = register.execute(
        select(Organisation).where(Organisation.ydernummer.is_not(None)).limit(1)
    ).scalar_one()
    by_yder = client.get(
        f"/api/v1/lookups/ownership/privat?ydernummer={int(unit.ydernummer)}", headers=headers
    ).get_json()
    assert by_yder["total"] >= 1
    assert all(i["ydernummer"] == unit.ydernummer for i in by_yder["items"])
    word = unit.name.split()[0][:4]
    by_name = client.get(f"/api/v1/organisations?name={word.upper()}&limit=500",
                         headers=headers).get_json()
    assert 0 < by_name["total"] < base
    assert all(fold(word) in fold(i["name"]) for i in by_name["items"])
    postal = unit.eff_postal_code
    by_postal = client.get(f"/api/v1/organisations?postal_code={postal}&limit=500",
                           headers=headers).get_json()
    assert all(i["address"]["postal_code"] == postal for i in by_postal["items"])
    under = client.get(f"/api/v1/organisations?under={unit.institution_sor_code}&limit=500",
                       headers=headers).get_json()
    assert all(i["institution_sor_code"] == unit.institution_sor_code for i in under["items"])
    by_level = client.get("/api/v1/organisations?level=IE&limit=1", headers=headers).get_json()
    assert 0 < by_level["total"] < base


def test_name_folding_danish_letters(client, register):
    headers = _token(register, "35095748")
    named = register.execute(
        select(Organisation).where(Organisation.name.contains("ø")).limit(1)
    ).scalar_one()
    fragment = named.name[named.name.index("ø") - 2: named.name.index("ø") + 2]
    for spelling in (fragment, fragment.upper(), fragment.replace("ø", "oe")):
        body = client.get(f"/api/v1/organisations?name={spelling}&limit=500",
                          headers=headers).get_json()
        assert named.sor_code in {i["sor_code"] for i in body["items"]} or body["next"], spelling


def test_sort_by_code_and_bad_cursor(client, register):
    headers = _token(register, "35095748")
    first = client.get("/api/v1/organisations?sort=code&limit=5", headers=headers).get_json()
    codes = [int(i["sor_code"]) for i in first["items"]]
    assert codes == sorted(codes)
    bad = client.get(f"/api/v1/organisations?sort=name&cursor={first['next']}",
                     headers=headers)
    assert bad.status_code == 422 and "cursor" in bad.get_json()["errors"]
    garbage = client.get("/api/v1/organisations?cursor=%%%", headers=headers)
    assert garbage.status_code == 422


@pytest.mark.parametrize(
    "query, field",
    [("limit=501", "limit"), ("ydernummer=abc", "ydernummer"), ("cvr=12345678", "cvr"),
     ("level=XX", "level"), ("under=123", "under"), ("active_on=yesterday", "active_on")],
)
def test_bad_filters_are_422_with_the_reason(client, register, query, field):
    headers = _token(register, "35095748")
    response = client.get(f"/api/v1/organisations?{query}", headers=headers)
    assert response.status_code == 422
    assert field in str(response.get_json()["errors"])


def test_no_token_is_401_and_bad_token_too(client, register):
    response = client.get("/api/v1/lookups/my-cvr/si")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/lookups/my-cvr/si",
                      headers={"Authorization": "Bearer nope"}).status_code == 401


def test_etag_and_cache_control(client, register):
    headers = _token(register, "35095748")
    first = client.get("/api/v1/lookups/ownership/kommunal?limit=10", headers=headers)
    assert first.headers["ETag"] and "max-age=300" in first.headers["Cache-Control"]
    again = client.get("/api/v1/lookups/ownership/kommunal?limit=10",
                       headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    for computed in ({}, {"Cache-Control": "no-cache"}):  # an answer kept, and one computed
        response = client.get("/api/v1/lookups/ownership/kommunal?limit=10",
                              headers={**headers, **computed, "If-None-Match": '"other"'})
        assert response.status_code == 200 and response.data == first.data
        assert client.get("/api/v1/lookups/ownership/kommunal?limit=10", headers={
            **headers, **computed, "If-None-Match": first.headers["ETag"]}).status_code == 304
        refused = client.get("/api/v1/lookups/ownership/kommunal?limit=10",
                             headers={**headers, **computed, "If-Match": '"other"'})
        assert refused.status_code == 412
    # The server sets Date on every answer (gunicorn drops an app's own); the app spends
    # no time making one (sorregistry.responses.conditional).
    assert "Date" not in first.headers and "Date" not in again.headers


def test_closed_units_are_found_with_an_earlier_date(client, register):
    headers = _token(register, "35095748")
    closed = register.execute(
        select(Organisation).where(Organisation.valid_to.is_not(None),
                                   Organisation.level != "IE").limit(1)
    ).scalar_one_or_none()
    if closed is None:
        pytest.skip("the generated export has no closed unit")
    now = client.get(f"/api/v1/organisations?sor_code={closed.sor_code}", headers=headers)
    assert now.get_json()["total"] == 0
    day = closed.valid_to.fromordinal(closed.valid_to.toordinal() - 1).isoformat()
    then = client.get(f"/api/v1/organisations?sor_code={closed.sor_code}&active_on={day}",
                      headers=headers)
    assert then.get_json()["total"] == 1


def _sample(session, column):
    return session.execute(
        select(column).where(column.is_not(None), Organisation.level != "IE")
        .order_by(Organisation.sor_code).limit(1)
    ).scalar_one()


@pytest.mark.parametrize(
    "parameter, column, pick",
    [
        ("entity_type", "entity_type", lambda v: v),
        ("ydernummer", "ydernummer", lambda v: v.lstrip("0")),
        ("municipality_code", "eff_municipality_code", lambda v: v),
        ("postal_code", "eff_postal_code", lambda v: v),
        ("shak", "shak", lambda v: v),
    ],
)
def test_each_filter_returns_exactly_its_rows(client, register, parameter, column, pick):
    headers = _token(register, "35095748")
    value = _sample(register, getattr(Organisation, column))
    items, total = _walk(
        client, f"/api/v1/organisations?{parameter}={pick(value)}&limit=200", headers
    )
    expected = {
        o.sor_code for o in register.execute(select(Organisation)).scalars()
        if getattr(o, column) is not None
        and (getattr(o, column).startswith(value) if parameter == "shak"
             else getattr(o, column) == value)
        and o.is_active_on(date.today())
    }
    assert {i["sor_code"] for i in items} == expected and total == len(expected)


def test_sor_code_prefix_and_name_prefix(client, register):
    headers = _token(register, "35095748")
    unit = _owner(register, "kommunal")
    body = client.get(f"/api/v1/organisations?sor_code={unit.sor_code[:-3]}&limit=500",
                      headers=headers).get_json()
    assert all(i["sor_code"].startswith(unit.sor_code[:-3]) for i in body["items"])
    assert unit.sor_code in {i["sor_code"] for i in body["items"]}
    prefix = unit.name_search[:5]
    body = client.get(f"/api/v1/organisations?name={prefix}&name_match=prefix&limit=500",
                      headers=headers).get_json()
    assert body["items"] and all(fold(i["name"]).startswith(prefix) for i in body["items"])


def test_no_cache_request_is_computed_not_taken_from_the_answer_cache(client, register):
    headers = _token(register, "35095748")
    url = "/api/v1/organisations?name=sen&limit=20"
    first = client.get(url, headers=headers)
    again = client.get(url, headers=headers)
    assert again.headers["X-Cache"] == "hit" and again.data == first.data
    for directive in ("no-cache", "max-age=0, no-cache", "no-store"):
        computed = client.get(url, headers={**headers, "Cache-Control": directive})
        assert computed.status_code == 200 and computed.headers["X-Cache"] == "miss"
        assert computed.data == first.data


def test_computed_lists_take_kept_items_and_each_change_reaches_them(client, register):
    """A computed answer renders each organisation once per state (hierarchy.items): asked
    again, every item is the kept one and the answer the same bytes; after an inherited
    change (the owner's phone) and an own change (a unit's name) the items show them, and
    equal what rendering every row afresh gives."""
    municipality = _owner(register, "kommunal")
    headers = {**_token(register, municipality.cvr), "Cache-Control": "no-cache"}
    url = "/api/v1/lookups/my-cvr/all?limit=500"
    ITEMS.clear()
    first = client.get(url, headers=headers)
    hits = ITEMS.hits
    again = client.get(url, headers=headers)
    assert again.headers["X-Cache"] == "miss"  # computed: not the answer cache
    assert ITEMS.hits - hits == len(again.get_json()["items"]) > 100
    assert again.data == first.data

    old_phone = municipality.effective["phone"]
    inheriting = {i["sor_code"] for i in _walk(client, url, headers)[0]
                  if "phone" in i["inherited"] and i["phone"] == old_phone}
    assert inheriting
    service.change_organisation(register, municipality.sor_code, {"phone": "70000000"},
                                source="staff", actor="sds:test")
    unit = next(iter(sorted(inheriting)))
    before = client.get(f"/api/v1/resolve?code={unit}", headers=headers).get_json()
    before = before["interpretations"][0]["organisations"][0]
    service.change_organisation(register, unit, {"name": "Omdøbt enhed"}, source="staff",
                                actor="sds:test")
    changed = client.get(url, headers=headers)
    items = {i["sor_code"]: i for i in _walk(client, url, headers)[0]}
    assert {code for code in inheriting if items[code]["phone"] == "70000000"} == inheriting
    assert items[unit]["name"] == "Omdøbt enhed"
    assert items[unit]["version"] == before["version"] + 1
    resolved = client.get(f"/api/v1/resolve?code={unit}", headers=headers).get_json()
    assert resolved["interpretations"][0]["organisations"][0] == items[unit]

    ITEMS.clear()
    assert client.get(url, headers=headers).data == changed.data


def test_the_stamp_tells_every_state_of_an_organisation_apart(register):
    """hierarchy.models.organisation_stamp: one value for (version, content_hash,
    derived_hash), equal for equal parts and different when any part differs - a 64-bit
    hash on PostgreSQL, the parts as text elsewhere."""
    parts = [(1, "a" * 32, "b" * 32), (2, "a" * 32, "b" * 32), (12, "a" * 32, "b" * 32),
             (1, "c" * 32, "b" * 32), (1, "a" * 32, "c" * 32), (1, "b" * 32, "a" * 32),
             (1, "a" * 31 + "b", "b" * 32), (1, "a" * 32, "b" * 31 + "a")]
    states = union_all(*(
        select(literal(position).label("position"), literal(version).label("version"),
               literal(content).label("content_hash"), literal(derived).label("derived_hash"))
        for position, (version, content, derived) in enumerate(parts + parts[:1]))).subquery()
    stamps = register.execute(select(organisation_stamp(states.c))
                              .order_by(states.c.position)).scalars().all()
    assert len(set(stamps)) == len(parts) and stamps[-1] == stamps[0]
    postgresql = register.get_bind().dialect.name == "postgresql"
    assert all(isinstance(stamp, int if postgresql else str) for stamp in stamps)
    # An organisation's row and its key row carry the same stamp.
    code = register.execute(select(Organisation.sor_code).limit(1)).scalar_one()
    full = register.execute(select(*ITEM_COLUMNS).where(Organisation.sor_code == code)).one()
    keyed = register.execute(select(*KEY_COLUMNS).where(Organisation.sor_code == code)).one()
    assert full.stamp == stamp_of_key(tuple(keyed)) is not None


def test_a_kept_item_serves_its_own_stamp_only_and_the_budget_holds(register):
    rows = [SimpleNamespace(**row._asdict()) for row in register.execute(
        select(*ITEM_COLUMNS).order_by(Organisation.sor_code).limit(40))]
    cache = ItemCache(budget=20_000)
    rendered = [orjson.dumps(organisation_item(row)) for row in rows]
    assert [orjson.dumps(item) for item in cache.items(rows)] == rendered
    assert cache.size <= 20_000 and 0 < len(cache.entries) < len(rows)
    kept = list(cache.entries)
    assert kept == [row.sor_code for row in rows[-len(kept):]]  # the most recent stay

    # A row read in another state (a lagging replica's older one, a newer one): rendered
    # from that row, never the kept item; the kept one follows the row last read.
    last = rows[-1]
    older = SimpleNamespace(**{**vars(last), "name": "Som før", "version": last.version - 1,
                               "stamp": "older"})
    misses = cache.misses
    assert orjson.loads(orjson.dumps(cache.item(older)))["name"] == "Som før"
    assert orjson.loads(orjson.dumps(cache.item(last)))["name"] == last.name
    moved = SimpleNamespace(**{**vars(last), "stamp": "moved",
                               "effective": {**last.effective, "phone": "11111111"}})
    assert orjson.loads(orjson.dumps(cache.item(moved)))["phone"] == "11111111"
    assert cache.misses - misses == 3
    hits = cache.hits
    assert orjson.dumps(cache.item(moved)) == orjson.dumps(organisation_item(moved))
    assert cache.hits - hits == 1


def test_items_found_move_up_only_from_the_older_half_and_the_used_ones_stay(register):
    """Nearly least recently used: items found move to the end of the order only from the
    older half of the budget; those used lately outlive the older ones, which go first
    when the budget is full; and a page asked again moves none of its items while the
    cache has room for them (the Mit CVR page asked all day)."""
    rows = [SimpleNamespace(**row._asdict()) for row in register.execute(
        select(*ITEM_COLUMNS).order_by(Organisation.sor_code).limit(60))]
    roomy = ItemCache()
    roomy.items(rows)
    ticks, order = roomy.ticks, list(roomy.entries)
    for _ in range(3):
        roomy.items(rows)
    assert roomy.ticks == ticks and list(roomy.entries) == order and roomy.hits == 180

    sized = ItemCache()
    sized.items(rows[:40])
    cache = ItemCache(budget=sized.size)  # holds these 40
    cache.items(rows[:40])
    order, ticks = list(cache.entries), cache.ticks
    assert ticks == cache.size  # the bytes kept so far
    cache.items(rows[30:40])  # the newer half: found, left where they are
    assert list(cache.entries) == order and cache.ticks == ticks
    cache.items(rows[:3])  # the older half: found, moved to the end in the order found
    moved = sum(cache.entries[row.sor_code][2] for row in rows[:3])
    assert list(cache.entries) == order[3:] + order[:3] and cache.ticks == ticks + moved
    cache.items(rows[:3])  # young now: not moved again
    assert list(cache.entries)[-3:] == order[:3] and cache.ticks == ticks + moved

    cache.items(rows[40:60])  # full: each new item drops the first in the order
    kept = set(cache.entries)
    assert {row.sor_code for row in rows[:3]} <= kept  # used lately: still kept
    assert not {row.sor_code for row in rows[3:10]} & kept  # the oldest unused: gone
    assert {row.sor_code for row in rows[40:60]} <= kept and cache.size <= cache.budget
    assert list(cache.entries) == sorted(cache.entries, key=lambda code: cache.entries[code][3])


def test_an_item_used_lately_outlives_the_bytes_of_half_the_budget():
    """Young and old are told by bytes, not by items: an item used while its tick is in
    the newer half stays until about half the budget has been kept since, whatever the
    sizes of the items around it (fifty small items and fifty large ones here)."""
    def row(code: str) -> tuple[str, str, int]:  # a key row: code, name, stamp
        return code, code, 1

    def kept(code: str, cost: int) -> tuple[str, int, orjson.Fragment, int]:
        return code, 1, orjson.Fragment(b"{}"), cost

    cache = ItemCache(budget=10_000)
    cache._keep([kept(f"small{i}", 20) for i in range(50)])
    cache._keep([kept(f"large{i}", 180) for i in range(50)])
    assert cache.size == 10_000
    assert cache._kept([row("large0")], code_of, stamp_of_key)[0] is not None  # moved:
    # 8,820 bytes are newer than it
    cache._keep([kept("next", 1_000), kept("then", 200), kept("more", 2_000)])
    assert "large0" in cache.entries and "large1" not in cache.entries
    assert cache.size <= cache.budget


def test_a_kept_item_costs_about_its_bytes(register):
    """Not orjson's 8 kB writing buffer per item: 32 MB of items would have held ~240 MB."""
    rows = [SimpleNamespace(**row._asdict()) for row in register.execute(
        select(*ITEM_COLUMNS).order_by(Organisation.sor_code).limit(1000))]
    cache = ItemCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache.items(rows)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1.5 * cache.size, (grown, cache.size)


@pytest.mark.parametrize("query", [
    "/api/v1/lookups/my-cvr/all?limit=500",
    "/api/v1/lookups/my-cvr/si?sort=code",
    "/api/v1/lookups/ownership/privat?limit=50",
    "/api/v1/lookups/ownership/kommunal?sort=code&limit=100",
    "/api/v1/organisations?name=sen&limit=20",
    "/api/v1/organisations?name=sen&sort=code&level=OE&limit=30",
    "/api/v1/organisations?name={two_words}&name_match=words&limit=20",
    "/api/v1/organisations?name={mistyped}&name_match=fuzzy&limit=10",
])
def test_every_path_of_a_list_shows_each_organisation_as_it_is(client, register, query):
    """A list read by key (hierarchy.search.search_keys) then its items kept or read by
    code, on each of the search's paths (the plain query, the narrow table, the name index,
    fuzzy's full rows): every item is the organisation's own rendering, and the answer is
    the same bytes with every item rendered afresh and with every item kept."""
    headers = {**_token(register, _owner(register, "kommunal").cvr), "Cache-Control": "no-cache"}
    name = register.execute(select(Organisation.name).where(Organisation.name.like("% % %"))
                            .order_by(Organisation.sor_code).limit(1)).scalar_one()
    words = name.split()
    query = query.format(two_words=f"{words[0][:4]}+{words[1][:3]}",
                         mistyped=(name[:3] + name[4:])[:20])
    ITEMS.clear()
    fresh = client.get(query, headers=headers)
    assert fresh.status_code == 200, fresh.get_json()
    items = fresh.get_json()["items"]
    assert items
    for item in items:
        organisation = register.get(Organisation, item["sor_code"])
        assert item == orjson.loads(orjson.dumps(organisation_item(organisation)))
    hits = ITEMS.hits
    kept = client.get(query, headers=headers)
    assert kept.data == fresh.data and ITEMS.hits - hits == len(items)


def test_a_page_read_by_key_renders_what_is_not_kept_and_leaves_out_what_is_gone(register):
    rows = [SimpleNamespace(**row._asdict()) for row in register.execute(
        select(*ITEM_COLUMNS).order_by(Organisation.sor_code).limit(6))]
    # Key rows as a page reads them: plain tuples of KEY_COLUMNS (the code first, the
    # stamp last).
    keys = [tuple(getattr(row, name) for name in KEY_NAMES) for row in rows]
    cache = ItemCache()
    cache.items(rows[:2])  # two kept
    asked: list[list[str]] = []

    def read(codes: list[str]) -> list[SimpleNamespace]:
        asked.append(codes)
        return [row for row in rows if row.sor_code in codes and row is not rows[4]]

    items = cache.page_items(keys, read)
    assert asked == [[row.sor_code for row in rows[2:]]]  # only what was not kept
    assert [orjson.dumps(item) for item in items] == [
        orjson.dumps(organisation_item(row)) for i, row in enumerate(rows) if i != 4]
    # A kept item under an older stamp is read again; one under its own is not.
    keys[0] = (*keys[0][:-1], "another stamp")
    asked.clear()
    cache.page_items(keys[:2], read)
    assert asked == [[rows[0].sor_code]]


def test_a_pages_array_is_kept_under_its_key_rows_and_made_again_when_any_differs(register):
    """hierarchy.items.ItemCache.page_array: the array of a page's items, kept under the
    hash of its key rows - asked again with the same rows, no look-up and no read; any
    stamp, code or order different, made again from the items."""
    rows = [SimpleNamespace(**row._asdict()) for row in register.execute(
        select(*ITEM_COLUMNS).order_by(Organisation.sor_code).limit(8))]
    keys = [tuple(getattr(row, name) for name in KEY_NAMES) for row in rows]
    asked: list[list[str]] = []

    def read(codes: list[str]) -> list[SimpleNamespace]:
        asked.append(codes)
        return [row for row in rows if row.sor_code in codes]

    def encoded(page: list[SimpleNamespace]) -> bytes:
        return orjson.dumps([organisation_item(row) for row in page])

    cache = ItemCache()
    first = cache.page_array(keys, read)  # its items read and rendered: not kept yet
    assert orjson.dumps(first) == encoded(rows) and len(asked) == 1 and not cache.pages
    first = cache.page_array(keys, read)  # every item kept under its key row's stamp
    assert orjson.dumps(first) == encoded(rows) and len(asked) == 1 and cache.pages
    hits = cache.hits
    again = cache.page_array(list(keys), read)  # the same rows, read again
    assert again is first and len(asked) == 1 and cache.hits - hits == len(keys)
    # Another stamp: made again, the changed item rendered from its row.
    changed = SimpleNamespace(**{**vars(rows[3]), "name": "Ny", "stamp": "changed"})
    read_rows = [*rows[:3], changed, *rows[4:]]
    keys_changed = [*keys[:3], (*keys[3][:-1], "changed"), *keys[4:]]

    def read_changed(codes: list[str]) -> list[SimpleNamespace]:
        asked.append(codes)
        return [row for row in read_rows if row.sor_code in codes]

    made = cache.page_array(keys_changed, read_changed)
    assert orjson.dumps(made) == encoded(read_rows) and asked[-1] == [rows[3].sor_code]
    assert cache.page_array(keys_changed, read_changed) is not made  # kept now
    assert cache.page_array(keys_changed, read_changed) is cache.page_array(keys_changed, read)
    # Another order, a shorter page: their own arrays (kept once their items are); the
    # first still kept.
    for page, expected in ((keys[::-1], rows[::-1]), (keys[:5], rows[:5])):
        assert orjson.dumps(cache.page_array(page, read)) == encoded(expected)
        kept = cache.page_array(page, read)
        assert orjson.dumps(kept) == encoded(expected) and cache.page_array(page, read) is kept
    assert cache.page_array(keys, read) is first and len(cache.pages) == 4
    # An organisation gone between the page's read and its items': left out, never kept.
    gone = ItemCache()
    for _ in range(2):
        without = gone.page_array(
            keys, lambda codes: [r for r in read(codes) if r is not rows[2]])
        assert orjson.dumps(without) == encoded(rows[:2] + rows[3:]) and not gone.pages
    # An item read by code in another state than its key row's (a change committed between
    # the two reads): shown as read, and the page never kept under the older key rows.
    newer = SimpleNamespace(**{**vars(rows[1]), "name": "Nyere", "stamp": "newer"})
    racing = ItemCache()
    for _ in range(2):
        raced = racing.page_array(keys, lambda codes: [newer if r is rows[1] else r
                                                      for r in read(codes)])
        assert orjson.loads(orjson.dumps(raced))[1]["name"] == "Nyere" and not racing.pages
    # Full rows (a fuzzy search's page) are assembled from themselves, not kept per page.
    assert orjson.dumps(gone.page_array(rows, read)) == encoded(rows) and not gone.pages


def test_kept_pages_stay_within_their_budget_the_least_recently_used_going_first(register):
    rows = [SimpleNamespace(**row._asdict()) for row in register.execute(
        select(*ITEM_COLUMNS).order_by(Organisation.sor_code).limit(12))]
    keys = [tuple(getattr(row, name) for name in KEY_NAMES) for row in rows]

    def read(codes: list[str]) -> list[SimpleNamespace]:
        return [row for row in rows if row.sor_code in codes]

    pages = [keys[i:i + 4] for i in range(0, 12, 4)] + [keys[1:5]]
    costs = []
    for page in pages:
        probe = ItemCache()
        probe.items(rows)  # every item kept: a page is kept the first time it is made
        probe.page_array(page, read)
        costs.append(probe.pages_size)
    # Room for the first three, and for the last with two of them - not for all four.
    room = max(costs[0] + costs[1] + costs[2], costs[0] + costs[2] + costs[3])
    cache = ItemCache(budget=4 * room)  # a quarter of the budget for pages
    cache.items(rows)
    for page in pages[:3]:
        cache.page_array(page, read)
    cache.page_array(pages[0], read)  # used: the most recent now
    cache.page_array(pages[3], read)  # full: the least recently used (pages[1]) goes
    kept = [(shape[1], shape[2]) for shape, _, _ in cache.pages.values()]
    assert kept == [(page[0][0], page[-1][0]) for page in (pages[2], pages[0], pages[3])]
    assert cache.pages_size <= cache.pages_budget


def test_a_kept_total_is_the_lists_and_a_transactions_own_changes_are_counted(client, register):
    municipality = _owner(register, "kommunal")
    headers = {**_token(register, municipality.cvr), "Cache-Control": "no-cache"}
    url = "/api/v1/lookups/my-cvr/all?limit=5"
    TOTALS.clear()
    first = client.get(url, headers=headers).get_json()
    [(key, total)] = TOTALS.totals.items()
    assert total == first["total"]
    TOTALS.put(TOTALS.version, key, 12345)
    assert client.get(url, headers=headers).get_json()["total"] == 12345
    # This transaction closes one of the list's units: its own change, never a kept total.
    service.close_organisation(register, first["items"][0]["sor_code"], date.today(),
                               source="staff", actor="sds:test")
    now = client.get(url, headers=headers).get_json()["total"]
    assert now < first["total"]
    assert now == len(_expected(register, owner_cvr=municipality.cvr, level=["SI", "OE"]))


@pytest.mark.parametrize("sort", ["name", "code", "updated", "relevance"])
def test_pages_read_by_key_walk_in_the_order_of_the_full_rows(register, sort):
    # A page read by key reads its own order's key columns alone (hierarchy.search.keyrows:
    # a name-sorted page no updated_at, whose decoding cost more than the rest), and its
    # cursors walk the list exactly as the full rows' do.
    filters = (search.Filters(name="sen") if sort == "relevance"
               else search.Filters(ownership="kommunal", level=["OE"]))

    def walk(read) -> list[str]:
        codes: list[str] = []
        cursor = None
        for _ in range(200):
            page = read(register, filters, sort=sort, limit=7, cursor=cursor)
            codes += [row[0] for row in page.items]  # the code first, by key or not
            cursor = page.next
            if cursor is None:
                return codes
        raise AssertionError("no end")

    walked = walk(search.search_keys)
    assert len(walked) > 14 and walked == walk(search.search)
    if sort != "relevance":  # (a name the name index answers reads the stamps by code)
        row = search.search_keys(register, filters, sort=sort, limit=3).items[0]
        assert type(row) is tuple and len(row) == len(key_columns(sort))
        named = named_key(row, sort)
        assert named._fields == tuple(column.key for column in key_columns(sort))
        assert ("updated_at" in named._fields) is (sort == "updated")
        assert (code_of(row), stamp_of_key(row)) == (named.sor_code, named.stamp)
        full = search.search(register, filters, sort=sort, limit=3).items[0]
        assert (full.sor_code, full.stamp) == (named.sor_code, named.stamp)

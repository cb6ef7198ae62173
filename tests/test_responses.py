"""The worker's answer cache (sorregistry.responses.AnswerCache): versions, budget, memory."""

from __future__ import annotations

import tracemalloc

import orjson
from flask import Flask

from sorregistry.responses import AnswerCache, etag_of, kept_bytes


def _body(n: int, items: int = 1) -> bytes:
    return orjson.dumps({"items": [{"sor_code": str(n), "name": "Plejecenter " * 60}] * items})


def test_an_answer_of_another_version_is_never_served_and_a_new_version_drops_the_old():
    cache = AnswerCache()
    cache.put(1, "a", b'{"x":1}', "e1")
    assert cache.get(1, "a") == (b'{"x":1}', "e1")
    assert cache.get(2, "a") is None
    cache.put(2, "b", b'{"x":2}', "e2")
    assert cache.get(1, "a") is None and cache.get(2, "a") is None
    assert cache.get(2, "b") == (b'{"x":2}', "e2")


def test_the_least_recently_used_go_first_and_the_budget_holds():
    size = len(_body(0))
    cache = AnswerCache(budget=size * 3, largest=size * 2)
    for n in range(3):
        cache.put(1, n, _body(n), f"e{n}")
    assert cache.get(1, 0) is not None  # 0 used again: 1 is now the least recent
    cache.put(1, 3, _body(3), "e3")
    assert [key for key in cache.entries] == [2, 0, 3] and cache.size <= size * 3
    cache.put(1, 4, b"x" * (size * 2 + 1), "big")  # larger than the largest kept
    assert cache.get(1, 4) is None


def test_the_same_answer_computed_again_is_not_copied_again():
    cache = AnswerCache()
    body = _body(1, items=25)
    cache.put(1, "a", body, "e1")
    cache.put(1, "b", _body(2), "e2")
    kept, size = cache.entries["a"][0], cache.size
    cache.put(1, "a", _body(1, items=25), "e1")  # recomputed (no-cache): the same ETag
    assert cache.entries["a"][0] is kept and cache.size == size
    assert list(cache.entries) == ["b", "a"]  # used last
    changed = _body(3)
    cache.put(1, "a", changed, "e3")  # another answer under the key: replaced
    assert cache.get(1, "a") == (changed, "e3") and cache.size == len(changed) + len(_body(2))
    cache.put(2, "a", changed, "e3")  # the same bytes in a newer version: kept afresh
    assert list(cache.entries) == ["a"] and cache.version == 2


def test_a_kept_answer_costs_its_bytes_not_the_buffer_orjson_wrote_it_in():
    # orjson's output keeps the buffer it was written in: 200 answers of ~20 kB held
    # ~6.5 MB while the budget counted 3.7 MB (and a 1 kB item 8 kB).
    cache = AnswerCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(200):
            cache.put(1, n, _body(n, items=25), "e")  # the answer sent, then only kept
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1.3 * cache.size, (grown, cache.size)
    assert kept_bytes(_body(1)) == _body(1)


def test_an_etag_names_the_bytes_under_the_apps_secret():
    body = _body(1, items=25)
    one = Flask("one")
    one.config["SECRET_KEY"] = "first"
    with one.app_context():
        etag = etag_of(body)
        assert etag == etag_of(bytes(body)) and len(etag) == 32
        assert int(etag, 16) >= 0  # hex
        assert etag != etag_of(body[:-1] + b" ") != etag_of(b"")
    again = Flask("again")  # another worker or host of the same service: the same ETags
    again.config["SECRET_KEY"] = "first"
    with again.app_context():
        assert etag_of(body) == etag
    other = Flask("other")  # another secret: other ETags (the seed is not guessable)
    other.config["SECRET_KEY"] = "second"
    with other.app_context():
        assert etag_of(body) != etag

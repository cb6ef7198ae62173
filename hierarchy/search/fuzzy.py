"""Trigram similarity as PostgreSQL's pg_trgm defines it, for fuzzy search and suggestions.

pg_trgm's ``similarity(a, b)``: each text's words (runs of letters and digits), lower
cased, each padded with two spaces in front and one behind; the set of their three-letter
pieces; ``|A ∩ B| / |A ∪ B|`` as a ``real`` (float4). :func:`similarity` computes the same
in Python, rounded to float4 as PostgreSQL rounds it, so the name index (SQLite, and the
suggestions on either back end) ranks exactly as ``similarity`` does on PostgreSQL
(tests/hierarchy/test_fuzzy.py compares the two). The texts compared are folded names
(``hierarchy.text.fold``: ASCII letters for Danish ones), where pg_trgm's idea of a letter
and Python's agree.

``name_match=fuzzy`` finds the names whose similarity to the text is at least
FUZZY_THRESHOLD (pg_trgm's default ``similarity_threshold``), most similar first. The
``suggestions`` of a search that finds nothing are the register's words nearest (by the
same measure) to each typed word that begins none (``NameIndex.suggestions``).
"""

from __future__ import annotations

import logging
import re
import struct
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from typing import Generic, TypeVar

import numpy
from sqlalchemy import Float, Integer, String, bindparam, func, select

from hierarchy.models import Organisation, OrganisationName
from hierarchy.search.filters import Filters
from hierarchy.search.matching import Condition
from hierarchy.search.statements import (
    PAGE_COLUMNS,
    NarrowShape,
    Statements,
    narrow_filters,
    remember,
)
from sorregistry.reads import Reads

logger = logging.getLogger(__name__)

FUZZY_THRESHOLD = 0.3
_WORD = re.compile(r"[^\W_]+")
_FLOAT4 = struct.Struct("f")


def trigrams(text: str) -> frozenset[str]:
    """pg_trgm's trigrams of *text* (``show_trgm``)."""
    grams: set[str] = set()
    for word in _WORD.findall(text.lower()):
        padded = "  " + word + " "
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    return frozenset(grams)


def float4(value: float) -> float:
    """*value* rounded to a PostgreSQL ``real``, as a Python float."""
    result: float = _FLOAT4.unpack(_FLOAT4.pack(value))[0]
    return result


def ratio(common: int, first: int, second: int) -> float:
    """pg_trgm's CALCSML: *common* trigrams of sets of *first* and *second*, as a real."""
    union = first + second - common
    return float4(float4(common) / float4(union)) if union else 0.0


# No count c of common trigrams of sets of a and b reaches FUZZY_THRESHOLD t below
# COMMON_SHARE * (a + b) - MARGIN: c / (a + b - c) >= t needs c >= t (a + b) / (1 + t) (less
# a margin for the rounding to a ``real``). A search computes :func:`ratio` (exact, and
# dear) only for the few names above it, not for every name sharing a trigram or two.
COMMON_SHARE = FUZZY_THRESHOLD / (1 + FUZZY_THRESHOLD)
MARGIN = 1e-4


def similarity(a: str, b: str) -> float:
    """pg_trgm's ``similarity(a, b)``."""
    ga, gb = trigrams(a), trigrams(b)
    return ratio(len(ga & gb), len(ga), len(gb))


def postings(texts: Sequence[str], yield_every: int = 0
             ) -> tuple[dict[str, array[int]], array[int]]:
    """Each trigram's list of the numbers of the *texts* that have it, and each text's
    number of trigrams: what :func:`similar` reads. With *yield_every*, the GIL is given
    up every that many texts (a build beside request threads: names.py's _YIELD_EVERY)."""
    found: dict[str, array[int]] = {}
    sizes = array("i")
    for j, text in enumerate(texts):
        if yield_every and not j % yield_every:
            time.sleep(0)
        grams = trigrams(text)
        sizes.append(len(grams))
        for gram in grams:
            posting = found.get(gram)
            if posting is None:
                found[gram] = posting = array("i")
            posting.append(j)
    return found, sizes


class NameGrams:
    """For each pg_trgm trigram, the names (by their number in *names*) holding it, and each
    name's number of trigrams: what a fuzzy search over a worker's name index reads."""

    def __init__(self, names: Sequence[str], yield_every: int) -> None:
        self.postings, self.sizes = postings(names, yield_every)

    def similar(self, grams: frozenset[str]) -> list[tuple[float, int]]:
        """(-similarity, name number) of the names at least FUZZY_THRESHOLD similar to the
        text of *grams*, most similar first (then by number: the names are sorted)."""
        return similar(grams, self.postings, self.sizes)


def similar(grams: frozenset[str], postings: dict[str, array[int]],
            sizes: array[int]) -> list[tuple[float, int]]:
    """(-similarity, number) of the texts (by their number: *postings* of each trigram,
    *sizes* their numbers of trigrams) at least FUZZY_THRESHOLD similar to the text of
    *grams*, most similar first, then by number."""
    held = [numpy.frombuffer(postings[gram], dtype=numpy.int32)
            for gram in grams if gram in postings]
    if not held:
        return []
    # Each text's count of the typed trigrams, over every text at once (a few ms at
    # 200k names, where a Python loop over the names sharing one took 100 ms); the ratio
    # only for the texts that may reach the threshold, as pg_trgm's CALCSML computes it:
    # a float4 division of the counts (exact in float32, correctly rounded as
    # :func:`ratio` rounds; tests/hierarchy/test_forgiving_search.py compares the two).
    common = numpy.bincount(numpy.concatenate(held), minlength=len(sizes))
    size, all_sizes = len(grams), numpy.frombuffer(sizes, dtype=numpy.int32)
    maybe = numpy.flatnonzero(common >= COMMON_SHARE * (size + all_sizes) - MARGIN)
    shared = common[maybe]
    scores = (shared.astype(numpy.float32)
              / (size + all_sizes[maybe] - shared).astype(numpy.float32))
    found = scores.astype(numpy.float64) >= FUZZY_THRESHOLD
    numbers, scores = maybe[found], scores[found].astype(numpy.float64)
    order = numpy.lexsort((numbers, -scores))
    return list(zip((-scores[order]).tolist(), numbers[order].tolist(), strict=True))


T = TypeVar("T")


class MadeOnce(Generic[T]):
    """A worker's structure made at its first need, once (the trigram postings of the
    names, the words: a second or two at 200k names): by the request that needs it
    (:meth:`get`), or in a thread while the requests meanwhile do without it
    (:meth:`ready`: PostgreSQL, where SQL answers meanwhile, as for the name index)."""

    def __init__(self, make: Callable[[], T], name: str) -> None:
        self._make = make
        self._name = name
        self._value: T | None = None
        self._lock = threading.Lock()  # held while it is made

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()
                value = self._value
        return value

    def ready(self) -> bool:
        """Whether it is made; if not, it is made in a thread (unless one is at it)."""
        if self._value is not None:
            return True
        if self._lock.acquire(blocking=False):
            threading.Thread(target=self._make_in_thread, name=self._name,
                             daemon=True).start()
        return False

    def _make_in_thread(self) -> None:
        try:
            if self._value is None:
                self._value = self._make()
        except Exception:  # the requests keep doing without; the next one retries
            logger.exception("making %s failed", self._name)
        finally:
            self._lock.release()


class Vocabulary:
    """The words of the register's names, with their trigrams (for suggestions)."""

    def __init__(self, names: Sequence[str], starts: Sequence[int]) -> None:
        bearers: Counter[str] = Counter()
        for j, name in enumerate(names):
            if not j % 200:
                time.sleep(0)  # let request threads have the GIL (names.py: _YIELD_EVERY)
            for word in set(_WORD.findall(name)):
                bearers[word] += starts[j + 1] - starts[j]
        self.words = sorted(bearers)
        self.bearers = [bearers[w] for w in self.words]
        self.postings, self.sizes = postings(self.words)

    def nearest(self, word: str, count: int) -> list[str]:
        """The *count* words most similar to *word* (at least FUZZY_THRESHOLD), the more
        names bear a word the earlier among equals, then in order."""
        scored = similar(trigrams(word), self.postings, self.sizes)
        scored.sort(key=lambda found: (found[0], -self.bearers[found[1]], found[1]))
        return [self.words[k] for _, k in scored[:count]]


def fuzzy_rows(reads: Reads, filters: Filters, day: date, levels: list[str],
               limit: int) -> tuple[list[tuple[str, str]], int]:
    """A fuzzy search (NameIndex.fuzzy's answer) over the narrow table's rows, where the
    index cannot answer (a CVR filter, another day, this transaction's own changes)."""
    assert filters.name is not None
    n = OrganisationName.__table__.c
    statement = select(n.name_search, n.sor_code).where(
        (n.valid_from.is_(None)) | (n.valid_from <= day),
        (n.valid_to.is_(None)) | (n.valid_to > day))
    if levels:
        statement = statement.where(n.level.in_(levels))
    if filters.ownership:
        statement = statement.where(n.ownership == filters.ownership)
    if filters.cvr:
        statement = statement.where(n.owner_cvr == filters.cvr)
    grams = trigrams(filters.name)
    scores: dict[str, float] = {}
    found = []
    for name, code in reads.rows(statement, {}):
        score = scores.get(name)
        if score is None:
            names = trigrams(name)
            scores[name] = score = ratio(len(grams & names), len(grams), len(names))
        if score >= FUZZY_THRESHOLD:
            found.append((-score, name, code))
    found.sort()
    return [(name, code) for _, name, code in found[:limit]], len(found)


_FUZZY_STATEMENTS: dict[NarrowShape, Statements] = {}


def fuzzy_statements(shape: NarrowShape) -> Statements:
    """The count and the page (its rows carry the count too: ``total``, read with the page
    in one statement) of a fuzzy name search on PostgreSQL (pg_trgm): the names
    whose ``similarity`` to the parameter ``fuzzy`` is at least ``threshold``, most similar
    first, then by name and code. ``%`` lets the trigram index find them (its threshold,
    ``pg_trgm.similarity_threshold``, is FUZZY_THRESHOLD by default)."""
    n = OrganisationName
    typed = bindparam("fuzzy", type_=String)
    score = func.similarity(n.name_search, typed)
    conditions: list[Condition] = [
        n.name_search.op("%")(typed), score >= bindparam("threshold", type_=Float),
        *narrow_filters(shape)]
    count = select(func.count()).select_from(n).where(*conditions)
    keys = (
        # The total with the page: one pass of the trigram index, not two.
        select(n.sor_code, n.name_search, score.label("score"),
               func.count().over().label("total")).where(*conditions)
        .order_by(score.desc(), n.name_search, n.sor_code)
        .limit(bindparam("page_limit", type_=Integer))
    ).subquery("page")
    page = (
        select(*PAGE_COLUMNS, keys.c.total)
        .join_from(keys, Organisation, Organisation.sor_code == keys.c.sor_code)
        .order_by(keys.c.score.desc(), keys.c.name_search, keys.c.sor_code)
    )
    return remember(_FUZZY_STATEMENTS, shape, (count, page))

"""The lookups' items, rendered once per state of an organisation and kept per worker.

A list's page is mostly rendering: "Mit CVR – Alle" reads 500 rows in well under a
millisecond of PostgreSQL's time, then builds 500 items
(:func:`hierarchy.schemas.organisation_item`: the entity type's name, two addresses) and
encodes ~470 kB of JSON - most of a computed answer's time. The same organisations are
asked for all day (a municipality's list by each of its forms, the same codes resolved),
and an organisation's item only changes when the organisation does.

So each worker keeps an organisation's item encoded (an ``orjson.Fragment``, put into the
answer as it is) under the organisation's **stamp**: one value made of its ``version``
(which every change of its own values raises) with ``content_hash`` and ``derived_hash``
(the fingerprints of its own values and of what it derives from its ancestors - effective
address and contact data, owner, ownership - which every writer keeps, since an import
tells changes apart by them). An item is a function of exactly those, so a row whose
stamp equals the kept one has the kept item; a row read with another stamp (the
organisation changed, or a lagging replica read an older state) is rendered from the row
and replaces it.

The stamp is made in SQL (``hierarchy.models.organisation_stamp``), one column instead of
three: on PostgreSQL a 64-bit hash of the two fingerprints seeded with the version (not a
cryptographic one). Two states of one organisation share a stamp by chance with odds of
about 2^-64 per change. Made to on purpose, it would take someone who can have two of an
organisation's changes approved in turn, chosen by ~2^32 tries offline, and all it would
do is show that organisation's previous approved item until its next change. A Mit CVR
page's 501 stamps are read and compared as ints rather than as two 32-character strings
and a version each: 0.13 ms less of the worker's CPU per computed page, in process.

A page read by key is kept whole too (:meth:`ItemCache.page_array`): the JSON array of
its items, under the hash of its key rows (every code in its order, its sort key and its
stamp; Python's ``hash``, its strings' keyed per process unless ``PYTHONHASHSEED`` fixes
the key) checked against their count and first and last codes. The same page read again -
the same rows, the same states - takes its array with one hash of the rows instead of a
look-up per item and the array's assembly: 0.19 ms less of the worker's CPU for a
computed Mit CVR page, in process. Any row different (an
organisation changed, gone or added, another order) makes another hash, and the array is
assembled from the items as above. Pages are kept in a quarter of the budget besides the
items, least recently used first out, and only when every item was found kept under its
key row's stamp: an item read by code is read apart from the page's rows, in a state of
its own (a change committed between the two reads, an organisation gone), so a page with
one is kept the next time it is asked, when its items are all kept. A list's page of 100
rows or more read directly is kept under its query instead, with its rows' digest and
next cursor, and then checked by the digest PostgreSQL makes of the rows it reads
(:meth:`ItemCache.kept_page`, ``hierarchy.search.digests``): one row sent, not 501.

Nothing is ever served that was not read in the same request: the rows are still read,
each answer is computed from them - what is kept is the work of rendering and assembling
rows already seen.

Least recently used items go first when the byte budget is full (32 MB: ~30,000 items,
every list a municipality's forms ask; each kept as a copy of its bytes alone,
``sorregistry.responses.kept_bytes``) - nearly: an item found is moved to the end of the
order only when it has drifted into the older half of the budget. The ticks count the
bytes of the items kept or moved so far; each item keeps the tick it was kept or moved
at, so the order is the ticks' order, and an item is "older" once more than half the
budget's bytes were kept or moved after it. One found while younger stays where it is,
and is never dropped before about half the budget (less its own cost) has been kept or
moved since its last use: everything after it and the one being kept must outgrow what
is left when it goes. A Mit CVR page asked again moved all its 500 items every time
(~0.15 us each, and three list nodes scattered over the heap touched per item); now none
while the page is asked more often than half the cache turns over.

Thread-safe: gthread workers share it.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar, cast

import orjson

from hierarchy.schemas import organisation_item
from hierarchy.search.digests import KeptPage
from hierarchy.search.keyrows import KeyRow, code_of, stamp_of_key
from hierarchy.search.statements import StampedRow
from sorregistry.responses import kept_bytes

__all__ = ["ITEMS", "ItemCache"]

Stamp = Hashable
Row = TypeVar("Row", KeyRow, StampedRow)
# An item as kept: the stamp it was rendered under, the item, its cost in bytes, and the
# tick it was kept or last moved to the end at (the module's docstring).
Entry = tuple[Stamp, orjson.Fragment, int, int]
# A page as kept (ItemCache.pages): the shape its key rows' hash is checked against (None
# for a page kept by query), the page, its cost in bytes.
_KeptPageEntry = tuple[tuple[int, str, str] | None, KeptPage, int]


# A full row's stamp and code, made in C (a key row's are read by position:
# hierarchy.search.keyrows).
stamp_of = cast(Callable[[StampedRow], Stamp], operator.attrgetter("stamp"))
code_of_row = cast(Callable[[StampedRow], str], operator.attrgetter("sor_code"))


class ItemCache:
    """Encoded items by SOR code, each under the stamp of the row it was rendered from."""

    def __init__(self, budget: int = 32 * 1024 * 1024) -> None:
        self.budget = budget
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.size = 0
        self.ticks = 0  # the bytes of the items kept or moved to the end so far
        self.hits = 0
        self.misses = 0
        self.lock = threading.Lock()
        # Pages' arrays (page_array) by their key rows' hash - (the rows' count, first
        # and last code), the page, its cost - or by their query (None, the page with its
        # digest and cursor, its cost), least recently used first; a quarter of the
        # budget besides the items'.
        self.pages: OrderedDict[Hashable, _KeptPageEntry] = OrderedDict()
        self.pages_size = 0
        self.pages_budget = budget >> 2

    def items(self, rows: Sequence[StampedRow]) -> list[orjson.Fragment]:
        """The items of *rows*, in their order: kept ones where the stamp is the row's,
        the others rendered from their rows (and kept)."""
        by_code = {row.sor_code: row for row in rows}
        return self._assembled(rows, lambda codes: [by_code[code] for code in codes],
                               code_of_row, stamp_of)

    def item(self, row: StampedRow) -> orjson.Fragment:
        return self.items([row])[0]

    def page_items(self, rows: Sequence[KeyRow | StampedRow],
                   read: Callable[[list[str]], Sequence[StampedRow]]) -> list[orjson.Fragment]:
        """The items of a page read by key (``hierarchy.search.search_keys``), in its
        order: the kept ones where the stamp is the row's, the others' rows read by code
        (*read*) and rendered. Rows with every column (a fuzzy search's) are rendered from
        themselves. An organisation not found by code any more is left out."""
        if rows and hasattr(rows[0], "effective"):
            return self.items(cast("Sequence[StampedRow]", rows))
        return self._assembled(cast("Sequence[KeyRow]", rows), read, code_of, stamp_of_key)

    def page_array(self, rows: Sequence[KeyRow | StampedRow],
                   read: Callable[[list[str]], Sequence[StampedRow]],
                   query: Hashable | None = None, digest: bytes = b"",
                   next_cursor: str | None = None) -> orjson.Fragment:
        """The JSON array of a page's items (:meth:`page_items`), kept per page too: the
        array is a function of the key rows' codes, in their order, and stamps, so a page
        whose key rows hash as those of a page made before (same count, first and last
        code) has that page's array - without a look-up per row. Kept only when every
        item was found kept under its key row's stamp. Read in the request like every
        page; what is kept is the work of assembling rows already seen.

        With a *query*, kept under it instead, with the *digest* of the rows read and
        the next cursor (``hierarchy.search.digests``), for :meth:`kept_page`."""
        if not rows or hasattr(rows[0], "effective"):  # full rows: rendered from themselves
            return orjson.Fragment(orjson.dumps(self.items(cast("Sequence[StampedRow]", rows))))
        keys = cast("Sequence[KeyRow]", rows)
        hashed = hash(tuple(keys))  # of every code, sort key and stamp (tuples of them)
        shape = (len(keys), code_of(keys[0]), code_of(keys[-1]))
        with self.lock:
            kept = self.pages.get(hashed)
            if kept is not None and kept[0] != shape:
                kept = None
            if kept is not None:
                self.pages.move_to_end(hashed)
                self.hits += shape[0]
        if kept is not None:
            if query is not None:  # kept by its rows: by its query too
                self._keep_page(query, (None, kept[1]._replace(digest=digest,
                                                                 next=next_cursor), kept[2]))
            return kept[1].array
        items, whole = self._assembled_all(keys, read, code_of, stamp_of_key)
        array = kept_bytes(orjson.dumps(items))
        fragment = orjson.Fragment(array)
        if whole:  # every item kept under its key row's stamp: the array is the rows'
            kept_page = KeptPage(digest, fragment, next_cursor, len(keys))
            if query is not None:
                self._keep_page(query, (None, kept_page, len(array) + 200))
            else:
                self._keep_page(hashed, (shape, kept_page, len(array) + 200))
        return fragment

    def kept_page(self, query: Hashable) -> KeptPage | None:
        """The page kept under *query* (:meth:`page_array`), or None."""
        with self.lock:
            kept = self.pages.get(query)
            if kept is None or kept[0] is not None:
                return None
            self.pages.move_to_end(query)
            self.hits += kept[1].size
            return kept[1]

    def _keep_page(self, key: Hashable, page: _KeptPageEntry) -> None:
        with self.lock:
            pages = self.pages
            old = pages.pop(key, None)
            if old is not None:
                self.pages_size -= old[2]
            while pages and self.pages_size + page[2] > self.pages_budget:
                self.pages_size -= pages.popitem(last=False)[1][2]
            if page[2] <= self.pages_budget:
                pages[key] = page
                self.pages_size += page[2]

    def _assembled(self, rows: Sequence[Row], read: Callable[[list[str]], Sequence[StampedRow]],
                   read_code: Callable[[Row], str],
                   read_stamp: Callable[[Row], Stamp]) -> list[orjson.Fragment]:
        """The items of *rows* (their code and stamp read by *read_code*, *read_stamp*)."""
        return self._assembled_all(rows, read, read_code, read_stamp)[0]

    def _assembled_all(self, rows: Sequence[Row],
                       read: Callable[[list[str]], Sequence[StampedRow]],
                       read_code: Callable[[Row], str], read_stamp: Callable[[Row], Stamp],
                       ) -> tuple[list[orjson.Fragment], bool]:
        """The items of *rows*, and whether every one was kept under its row's stamp
        (none read by code: those were read apart from *rows*, in a state of their own)."""
        found = self._kept(rows, read_code, read_stamp)
        missing = [read_code(row) for row, item in zip(rows, found, strict=True)
                   if item is None]
        if not missing:
            return found, True  # type: ignore[return-value]  # none is None
        rendered = self._render(read(missing))
        return [item for row, kept in zip(rows, found, strict=True)
                if (item := kept or rendered.get(read_code(row))) is not None], False

    def _kept(self, rows: Sequence[Row], read_code: Callable[[Row], str],
              read_stamp: Callable[[Row], Stamp]) -> list[orjson.Fragment | None]:
        """Per row, its kept item where the row's stamp is the kept one's, else None (a
        row's code and stamp read by *read_code* and *read_stamp*: by position for key
        rows, by name for full ones)."""
        # Once per row of every list (500 for a Mit CVR page): bound methods and local
        # counts rather than attribute lookups in the loop.
        found: list[orjson.Fragment | None] = []
        append = found.append
        hits = 0
        with self.lock:
            entries = self.entries
            get, touch = entries.get, entries.move_to_end
            # Found items older than this are moved to the end (the module's docstring).
            young = self.ticks - (self.budget >> 1)
            for row in rows:
                code = read_code(row)
                entry = get(code)
                if entry is not None and entry[0] == read_stamp(row):
                    if entry[3] < young:
                        touch(code)
                        entries[code] = (entry[0], entry[1], entry[2], self.ticks)
                        self.ticks += entry[2]
                    append(entry[1])
                    hits += 1
                else:
                    append(None)
            self.hits += hits
        return found

    def _render(self, rows: Sequence[StampedRow]) -> dict[str, orjson.Fragment]:
        rendered = []
        for row in rows:
            text = kept_bytes(orjson.dumps(organisation_item(row)))
            # the key, the stamp, the entry's tuple besides the text
            rendered.append((row.sor_code, stamp_of(row), orjson.Fragment(text), len(text) + 200))
        self._keep(rendered)
        return {code: fragment for code, _, fragment, _ in rendered}

    def _keep(self, rendered: list[tuple[str, Stamp, orjson.Fragment, int]]) -> None:
        with self.lock:
            self.misses += len(rendered)
            entries = self.entries
            for code, stamp, fragment, cost in rendered:
                old = entries.pop(code, None)
                if old is not None:
                    self.size -= old[2]
                while entries and self.size + cost > self.budget:
                    _, (_, _, dropped, _) = entries.popitem(last=False)
                    self.size -= dropped
                entries[code] = (stamp, fragment, cost, self.ticks)
                self.ticks += cost
                self.size += cost

    def clear(self) -> None:
        with self.lock:
            self.entries, self.size, self.ticks = OrderedDict(), 0, 0
            self.pages, self.pages_size = OrderedDict(), 0


# The worker's items (hierarchy.lookup_routes).
ITEMS = ItemCache()

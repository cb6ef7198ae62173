"""Exact totals of name searches and lists, kept per worker under the register version.

Counting every match of a short fragment is most of a name search's cost on
PostgreSQL (35,114 matches for "sen" in a national register). A type-ahead asks the
same fragments all day, so each worker keeps the totals it counted, filed under the
register version (``hierarchy.service.register_version``) they were counted in. The
version changes at every committed change of the register, so a total is never read
for another state of it. The lists (Mit CVR, the ownership lists) keep theirs the same way:
a municipality's 2,759 units were counted again for every computed page.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable


class TotalCache:
    """Totals by search, for one register version at a time; bounded, thread-safe.

    Entries of an older version are dropped when the first of a newer one comes; a
    full cache starts again.
    """

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.version: Hashable = None
        self.totals: dict[Hashable, int] = {}
        self.lock = threading.Lock()

    def get(self, version: Hashable, key: Hashable) -> int | None:
        with self.lock:
            return self.totals.get(key) if version == self.version else None

    def put(self, version: Hashable, key: Hashable, total: int) -> None:
        with self.lock:
            if version != self.version:
                self.version, self.totals = version, {}
            elif len(self.totals) >= self.size:
                self.totals.clear()
            self.totals[key] = total

    def clear(self) -> None:
        with self.lock:
            self.version, self.totals = None, {}


TOTALS = TotalCache()

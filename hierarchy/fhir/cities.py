"""``address-city``: FHIR's string search on the city, answered through postal codes.

The register keeps a unit's city inside its address (JSON), with no column a search could
fold and index. In Denmark the city of an address is its postal district, named by the
postal code, so a city search is a postal-code search: the postal codes whose city
matches - folded as names are (``hierarchy.text.fold``: "Århus", "Aarhus" and "AARHUS"
alike), FHIR's default "starts with", ``:contains`` anywhere, ``:exact`` as written - go
to the search's postal-code filter (either address). The (postal code, city) pairs the
register holds are read once per register version and worker (a few hundred pairs; one
pass over the addresses), like the search's cached totals.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from sqlalchemy import Select, select, union
from sqlalchemy.orm import Session

from hierarchy.fhir.parameters import Query
from hierarchy.models import Organisation
from hierarchy.search.directory import VISITING_POSTAL_CODE
from hierarchy.service import register_changed_in, register_version
from hierarchy.text import fold
from sorregistry.reads import reads

# (postal code, city as written, city folded)
Pairs = list[tuple[str, str, str]]


def _pairs_statement() -> Select[tuple[str, str]]:
    o = Organisation
    pairs = union(
        select(o.eff_postal_code.label("postal_code"),
               o.effective[("postal_address", "city")].as_string().label("city")),
        select(VISITING_POSTAL_CODE.label("postal_code"),
               o.effective[("visiting_address", "city")].as_string().label("city")),
    ).subquery("pairs")
    return select(pairs.c.postal_code, pairs.c.city).where(
        pairs.c.postal_code.is_not(None), pairs.c.city.is_not(None))


_PAIRS = _pairs_statement()


class CityPairs:
    """The register's (postal code, city) pairs of one register version, per worker."""

    def __init__(self) -> None:
        self.version: Hashable = None
        self.pairs: Pairs = []
        self.lock = threading.Lock()

    def get(self, session: Session) -> Pairs:
        version = register_version(session)
        cacheable = version is not None and not register_changed_in(session)
        with self.lock:
            if cacheable and version == self.version:
                return self.pairs
        rows = reads(session).rows(_PAIRS, {})
        pairs = sorted({(str(code), str(city), fold(str(city))) for code, city in rows})
        if cacheable:
            with self.lock:
                self.version, self.pairs = version, pairs
        return pairs


PAIRS = CityPairs()


def matching_postal_codes(pairs: Pairs, modifier: str | None, value: str) -> list[str]:
    """The postal codes whose city matches *value* as FHIR's string search has it."""
    folded = fold(value)
    if modifier == "exact":
        found = [code for code, city, _ in pairs if city == value]
    elif modifier == "contains":
        found = [code for code, _, city in pairs if folded in city]
    else:
        found = [code for code, _, city in pairs
                 if city.startswith(folded) or f" {folded}" in city]
    return list(dict.fromkeys(found))


def resolve_city(session: Session, query: Query) -> None:
    """Turn the query's city into the search's postal codes (either address)."""
    if query.city is None:
        return
    modifier, value = query.city
    codes = matching_postal_codes(PAIRS.get(session), modifier, value)
    wanted = query.filters.address_postal_codes
    if wanted:
        codes = [code for code in codes if code in wanted]
    if not codes:
        query.nothing()
        return
    wanted[:] = codes

"""What the FHIR directory asks of the search besides the API's column filters.

``hierarchy.fhir`` translates FHIR's search parameters onto ``hierarchy.search.Filters``;
the fields after ``active_on`` there are its needs, and this module makes their SQL: the
children of a unit, its subtree without itself, its ancestors, groups of alternatives
(FHIR's comma), the time of the last change, the units FHIR gives a Location, postal codes
of either address, a name exactly as written. Their statements are built once per shape
like the others (``hierarchy.search.statements``); lists of values are one array
parameter on PostgreSQL (``= ANY(:codes)``) and an expanding ``IN`` on SQLite, so a
statement's shape never depends on how many values a request sends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    bindparam,
    cast,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute

from hierarchy.models import Organisation
from hierarchy.search.filters import AlternativeKind, Filters, escape_like
from sorregistry.database import one_of_named
from sorregistry.models import UTCDateTime
from sorregistry.reads import Reads

Condition = ColumnElement[bool]
_ROOT_PATH = select(Organisation.path).where(
    Organisation.sor_code == bindparam("under", type_=String))


def _present(column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """A JSON column holding a value: neither SQL NULL nor JSON null (the ORM writes None
    as JSON null, the import's COPY as NULL)."""
    return and_(column.is_not(None), cast(column, Text) != "null")


# Whether a unit's visiting address is its own - it has a visiting or a postal address of
# its own (a missing visiting address is the unit's own postal address) - rather than one
# it inherits: the units FHIR gives a Location of their own (hierarchy.fhir).
OWN_ADDRESS = or_(_present(Organisation.visiting_address),
                  _present(Organisation.postal_address)).label("own_address")


def _owner_identifier(column: InstrumentedAttribute[Any], ownership: str | None,
                      value: Any) -> Condition:
    """An owner (IE) whose *column* is *value* (and of *ownership*, when given)."""
    o = Organisation
    conditions = [o.level == "IE", column == value]
    if ownership is not None:
        conditions.append(o.ownership == ownership)
    return and_(*conditions)


def _alternative(kind: AlternativeKind, value: Any) -> Condition:
    """One alternative: the column (or owner's identifier) of *kind* equal to *value*."""
    o = Organisation
    simple: dict[str, InstrumentedAttribute[Any]] = {
        "sor_code": o.sor_code, "ydernummer": o.ydernummer, "shak": o.shak, "gln": o.gln,
        "p_number": o.p_number, "entity_type": o.entity_type, "level": o.level,
        "institution": o.institution_sor_code,
    }
    if kind in simple:
        condition: Condition = simple[kind] == value
        return condition
    if kind == "owner_cvr":
        return _owner_identifier(o.owner_cvr, None, value)
    if kind == "municipality":
        return _owner_identifier(o.eff_municipality_code, "kommunal", value)
    return _owner_identifier(o.eff_region_code, "regional", value)


# The postal code of the unit's (effective) visiting address, from its JSON.
VISITING_POSTAL_CODE = Organisation.effective[("visiting_address", "postal_code")].as_string()
# The same on PostgreSQL as the expression index ix_organisations_visiting_postal_code_expr
# (migration 0015) has it - the path a literal, not a parameter - so the planner uses it.
_PG_VISITING_POSTAL_CODE: ColumnElement[str] = literal_column(
    "(organisations.effective #>> '{visiting_address,postal_code}')", String)


def _visiting_postal_code(postgresql: bool) -> ColumnElement[str]:
    return _PG_VISITING_POSTAL_CODE if postgresql else VISITING_POSTAL_CODE


def conditions(present: tuple[str, ...], any_of: tuple[tuple[AlternativeKind, ...], ...],
               postgresql: bool) -> list[Condition]:
    """The conditions of the directory's filters that are *present* (names of Filters'
    fields), with the kinds of each group of alternatives."""
    o = Organisation
    conditions: list[Condition] = []
    if "parent" in present:
        conditions.append(o.parent_sor_code == bindparam("parent", type_=String))
    if "below" in present:
        conditions.append(o.path.like(bindparam("below_prefix", type_=String), escape="\\"))
        conditions.append(o.sor_code != bindparam("below", type_=String))
    if "above" in present:
        conditions.append(one_of_named(o.sor_code, "above_codes", postgresql=postgresql))
    for i, kinds in enumerate(any_of):
        conditions.append(or_(*[
            _alternative(kind, bindparam(f"any_{i}_{j}", type_=String))
            for j, kind in enumerate(kinds)]))
    if "updated_from" in present:
        conditions.append(o.updated_at >= bindparam("updated_from", type_=UTCDateTime))
    if "updated_until" in present:
        conditions.append(o.updated_at < bindparam("updated_until", type_=UTCDateTime))
    if "location" in present:
        conditions.append(or_(o.level == "SI", and_(o.level == "OE", OWN_ADDRESS)))
    if "address_postal_codes" in present:
        conditions.append(or_(*[
            one_of_named(column, "address_postal_codes", postgresql=postgresql)
            for column in (o.eff_postal_code, _visiting_postal_code(postgresql))]))
    if "exact_name" in present:
        conditions.append(o.name == bindparam("exact_name", type_=String))
    if "visiting_postal_codes" in present:
        conditions.append(one_of_named(_visiting_postal_code(postgresql),
                                       "visiting_postal_codes", postgresql=postgresql))
    return conditions


# A path no organisation has: the subtree (and ancestors) of a code that names none is empty.
_NO_PATH = "(none)"


def parameters(reads: Reads, filters: Filters, params: dict[str, Any]) -> None:
    """Add the parameters of the directory's filters in *filters* to *params*. A unit named
    by ``below`` or ``above`` that is not in the register has nothing below or above it
    (FHIR's answer: no match)."""
    if filters.parent:
        params["parent"] = filters.parent
    if filters.below:
        path = reads.scalar(_ROOT_PATH, {"under": filters.below}) or _NO_PATH
        params["below_prefix"] = escape_like(path) + "%"
        params["below"] = filters.below
    if filters.above:
        path = reads.scalar(_ROOT_PATH, {"under": filters.above}) or _NO_PATH
        # A path is "/<IE>/<SI>/.../<the unit>/": the codes before the unit's own.
        params["above_codes"] = path.strip("/").split("/")[:-1]
    for i, group in enumerate(filters.any_of):
        for j, (_, value) in enumerate(group):
            params[f"any_{i}_{j}"] = value
    if filters.updated_from:
        params["updated_from"] = filters.updated_from
    if filters.updated_until:
        params["updated_until"] = filters.updated_until
    if filters.address_postal_codes:
        params["address_postal_codes"] = list(filters.address_postal_codes)
    if filters.exact_name:
        params["exact_name"] = filters.exact_name
    if filters.visiting_postal_codes:
        params["visiting_postal_codes"] = list(filters.visiting_postal_codes)

"""What a reporting form asks of the register: resolve a code, SHAK type-ahead, and
validate the institution code on a report (seed 002, section 5.2.1).

A SOR code closed and replaced by another (``hierarchy.successors``) is answered with
its closing date and the successor(s) in force: for ``SOR_SUCCESSOR_WARNING_DAYS``
after the closing as a warning (resolve answers it, validation lets the report
through), later as the error it always was, still naming the successor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    String,
    bindparam,
    func,
    literal,
    or_,
    select,
    union_all,
)

from hierarchy import identifiers as ids
from hierarchy.models import Organisation, ShakCode, organisation_stamp
from hierarchy.search.filters import escape_like
from hierarchy.search.statements import (
    ITEM_COLUMNS,
    ITEM_VALUES,
    ItemRow,
    StampedRow,
    valid_on,
)
from hierarchy.service import active_on_clause
from hierarchy.successors import ChainEnd, Successors, find_successors, warning_days
from hierarchy.text import fold
from sorregistry.database import DbSession
from sorregistry.errors import DomainError
from sorregistry.reads import reads

KIND_NAMES = {"sor": "SOR code", "shak": "SHAK code", "ydernummer": "ydernummer"}


class Malformed(DomainError, ValueError):
    """The code is none of the kinds the register knows (422); the message says why, and
    the field errors name the argument that held it (``code``, ``hospital``)."""

    status = 422

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field_errors={field: [message]})


class NothingFound(DomainError, LookupError):
    """A well-formed code that names no organisation on the day (404)."""

    status = 404


class ShakRecord(Protocol):
    """A record of the SHAK register: a ShakCode, or a row of ``shak_codes``."""

    @property
    def code(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def hospital(self) -> str: ...
    @property
    def valid_from(self) -> date: ...
    @property
    def valid_to(self) -> date | None: ...


@dataclass
class Interpretation:
    kind: str
    normalised: str
    organisations: list[StampedRow] = field(default_factory=list)
    shak: ShakRecord | None = None  # the SHAK register's record, for a SHAK reading


def _why_malformed(code: str) -> str:
    if not code:
        return "the code is empty"
    reasons = []
    for validate in (ids.validate_sor_code, ids.validate_shak, ids.normalise_ydernummer):
        try:
            validate(code)
        except ids.IdentifierError as exc:
            reasons.append(str(exc))
    return (
        f"{code!r} is neither a SOR code, a SHAK code nor a ydernummer: " + "; ".join(reasons)
    )


def resolve(session: DbSession, code: str,
            active_on: date | None = None) -> list[Interpretation]:
    """Every reading of *code* with the organisations it names on *active_on*.

    Raises Malformed when the code fits no shape. A ydernummer is not unique:
    its interpretation can hold several organisations. One statement reads the
    organisations of every reading; a SHAK reading adds the SHAK record.
    """
    code = (code or "").strip()
    kinds = ids.classify_code(code)
    if not kinds:
        raise Malformed(_why_malformed(code), field="code")
    day = active_on or date.today()
    normalised = {kind: _NORMALISE[kind](code) for kind in kinds}
    parameters: dict[str, Any] = {"day": day}
    parameters.update(normalised)
    found: dict[str, list[StampedRow]] = {kind: [] for kind in kinds}
    statements: list[tuple[Select[Any], dict[str, Any]]] = [
        (_readings_statement(tuple(kinds)), parameters)]
    if "shak" in kinds:  # the SHAK record too, in the same round trip
        statements.append((_SHAK_RECORD, {"code": normalised["shak"], "day": day}))
    results = reads(session).batch(statements)
    for row in results[0]:
        found[row.reading].append(row)
    interpretations = []
    for kind in kinds:
        interpretation = Interpretation(kind, normalised[kind], found[kind])
        if kind == "shak" and results[1]:
            interpretation.shak = results[1][0]
        interpretations.append(interpretation)
    return interpretations


@dataclass
class Replacement:
    """A SOR code closed by the day asked about that names a successor."""

    organisation: ItemRow  # a row with ITEM_COLUMNS when replacement() read it
    successors: Successors
    within_window: bool  # closed less than SOR_SUCCESSOR_WARNING_DAYS ago, a successor in force

    def message(self) -> str:
        organisation = self.organisation
        assert organisation.valid_to is not None
        text = (f"SOR code {organisation.sor_code} ({organisation.name}) closed on "
                f"{organisation.valid_to.isoformat()}")
        if self.successors.active:
            return f"{text}, replaced by {self.successors.describe()}"
        return f"{text}; none of its successors is in force"


# The organisation of one SOR code whatever its validity (built once: the fast reads).
_ORGANISATION = select(*ITEM_COLUMNS).where(Organisation.sor_code == bindparam("code"))


def replacement(session: DbSession, sor_code: str, day: date,
                window_days: int | None = None,
                organisation: ItemRow | None = None) -> Replacement | None:
    """What replaced *sor_code* (*organisation*, when the caller has read it) if it was
    closed by *day* and names a successor.

    Within the window when *day* is less than *window_days* (default:
    ``SOR_SUCCESSOR_WARNING_DAYS``) after the closing and a successor is in force on *day*.
    The organisation is read as the lookups read (``sorregistry.reads``); the walk to the
    successors, only for a code that names one, through the session.
    """
    if organisation is None:
        rows = reads(session).rows(_ORGANISATION, {"code": sor_code})
        organisation = rows[0] if rows else None
    if organisation is None or not organisation.replaced_by or organisation.valid_to is None \
            or organisation.valid_to > day:
        return None
    found = find_successors(session, {sor_code: organisation.replaced_by}, day)[sor_code]
    days = warning_days() if window_days is None else window_days
    within = bool(found.active) and (day - organisation.valid_to).days < days
    return Replacement(organisation, found, within)


def found_or_replaced(session: DbSession,
                      interpretations: list[Interpretation],
                      day: date) -> tuple[Interpretation, Replacement | None]:
    """The first reading of a code that names organisations; else, for a SOR code closed
    and replaced within the warning window, its SOR reading with the closed organisation
    and what replaced it. NothingFound names every reading - and the successor, when a
    replaced code is past the window."""
    found = next((i for i in interpretations if i.organisations), None)
    if found is not None:
        return found, None
    sor = next((i for i in interpretations if i.kind == "sor"), None)
    replaced = replacement(session, sor.normalised, day) if sor is not None else None
    if sor is not None and replaced is not None and replaced.within_window:
        # read by replacement() with ITEM_COLUMNS (no organisation given): it has a stamp
        sor.organisations = [cast(StampedRow, replaced.organisation)]
        return sor, replaced
    readings = " or ".join(f"{KIND_NAMES[i.kind]} {i.normalised}" for i in interpretations)
    message = f"no organisation active on {day.isoformat()} has {readings}"
    if replaced is not None:
        message += f": {replaced.message()}"
    raise NothingFound(message)


_NORMALISE = {
    "sor": ids.validate_sor_code,
    "shak": ids.validate_shak,
    "ydernummer": ids.normalise_ydernummer,
}
_READING_COLUMNS = {"sor": "sor_code", "shak": "shak", "ydernummer": "ydernummer"}


@functools.cache
def _readings_statement(kinds: tuple[str, ...]) -> Select[Any]:
    """One UNION ALL of the organisations each reading names, active on :day (built once
    per combination of readings; at most 500 per reading, in name order)."""
    table = Organisation.__table__
    columns = [*(table.c[column.key] for column in ITEM_VALUES), organisation_stamp(table.c)]
    parts = []
    for position, kind in enumerate(kinds):
        inner = (
            select(literal(kind).label("reading"), literal(position).label("position"),
                   *columns)
            .where(
                table.c[_READING_COLUMNS[kind]] == bindparam(kind, type_=String),
                *valid_on(table),
            )
            .order_by(table.c.name_search, table.c.sor_code)
            .limit(500)
            .subquery(f"r{position}")
        )
        parts.append(select(*inner.c))
    readings = union_all(*parts).subquery("readings")
    return select(*readings.c).order_by(
        readings.c.position, readings.c.name_search, readings.c.sor_code
    )


def shak_record(session: DbSession, code: str,
                day: date) -> ShakRecord | None:
    """The SHAK register's record of *code* in force on *day* (a row), or None."""
    rows = reads(session).rows(_SHAK_RECORD, {"code": code, "day": day})
    return rows[0] if rows else None


_shak = ShakCode.__table__
_SHAK_RECORD = (
    select(_shak)
    .where(
        _shak.c.code == bindparam("code", type_=String),
        _shak.c.valid_from <= bindparam("day", type_=Date),
        (_shak.c.valid_to.is_(None)) | (_shak.c.valid_to >= bindparam("day", type_=Date)),
    )
    .order_by(_shak.c.valid_from.desc())
    .limit(1)
)


def _shak_query(q: str | None, day: date) -> list[ColumnElement[bool]]:
    conditions = [
        ShakCode.valid_from <= day,
        (ShakCode.valid_to.is_(None)) | (ShakCode.valid_to >= day),
    ]
    if q:
        typed = q.strip()
        folded = escape_like(fold(typed))
        conditions.append(
            or_(
                ShakCode.code.like(typed.upper().replace("%", "").replace("_", "") + "%"),
                ShakCode.text_search.like("%" + folded + "%", escape="\\"),
            )
        )
    return conditions


def shak_hospitals(
    session: DbSession, q: str | None, day: date | None = None,
    limit: int = 20,
) -> tuple[list[ShakCode], int]:
    """Hospitals whose code starts with, or whose name contains, what was typed."""
    conditions = [ShakCode.kind == "hospital", *_shak_query(q, day or date.today())]
    return _shak_page(session, conditions, limit)


def shak_departments(
    session: DbSession, hospital: str, q: str | None,
    day: date | None = None, limit: int = 20,
) -> tuple[list[ShakCode], int]:
    """Departments and sections of *hospital* only, matched like the hospitals."""
    if ids.shak_kind(hospital or "") != "hospital":
        raise Malformed(f"{hospital!r} is not a SHAK hospital code (4 digits)", field="hospital")
    conditions = [
        ShakCode.hospital == hospital,
        ShakCode.kind != "hospital",
        *_shak_query(q, day or date.today()),
    ]
    return _shak_page(session, conditions, limit)


def _shak_page(session: DbSession, conditions: list[ColumnElement[bool]],
               limit: int) -> tuple[list[ShakCode], int]:
    total = session.execute(
        select(func.count()).select_from(ShakCode).where(*conditions)
    ).scalar_one()
    rows = list(
        session.execute(
            select(ShakCode).where(*conditions).order_by(ShakCode.code).limit(limit)
        ).scalars()
    )
    return rows, total


def organisations_by_shak(session: DbSession, codes: list[str],
                          day: date) -> dict[str, list[str]]:
    """SOR codes of the organisations carrying each SHAK code (one code, several entities)."""
    carriers: dict[str, list[str]] = {code: [] for code in codes}
    if not codes:
        return carriers
    for shak, sor_code in session.execute(
        select(Organisation.shak, Organisation.sor_code)
        .where(Organisation.shak.in_(codes), *active_on_clause(day))
        .order_by(Organisation.sor_code)
    ):
        if shak is not None:  # always: only carriers of codes are read
            carriers[shak].append(sor_code)
    return carriers


@dataclass
class Finding:
    field: str
    code: str
    message: str


@dataclass
class Validation:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    organisation: Organisation | None = None
    successors: list[ChainEnd] = field(default_factory=list)


def _period_findings(
    result: Validation, what: str, field_name: str, start: date, end: date,
    valid_from: date | None, valid_to: date | None,
) -> None:
    """Errors and warnings for a code valid [valid_from, valid_to) against [start, end]."""
    if valid_to is not None and valid_to <= start:
        result.errors.append(Finding(field_name, "closed", f"{what} closed on "
                                     f"{valid_to.isoformat()}, before the reporting period"))
    elif valid_to is not None and valid_to <= end:
        result.warnings.append(Finding(field_name, "closes_in_period", f"{what} closes on "
                                       f"{valid_to.isoformat()}, inside the reporting period"))
    if valid_from is not None and valid_from > end:
        result.errors.append(Finding(field_name, "not_yet_valid", f"{what} is valid only from "
                                     f"{valid_from.isoformat()}, after the reporting period"))
    elif valid_from is not None and valid_from > start:
        result.warnings.append(Finding(field_name, "starts_in_period", f"{what} is valid only "
                                       f"from {valid_from.isoformat()}, inside the period"))


def _replacement_findings(session: DbSession, result: Validation,
                          organisation: Organisation, end: date,
                          window_days: int | None) -> None:
    """Name the successors of a SOR code closed by the period's end; a code closed before
    the period only warns while its period ends within the window after the closing."""
    replaced = replacement(session, organisation.sor_code, end, window_days, organisation)
    if replaced is None or not replaced.successors.active:
        return
    result.successors = replaced.successors.active
    told = f"replaced by {replaced.successors.describe()}"
    for finding in list(result.errors):
        if finding.code != "closed":
            continue
        if replaced.within_window:
            result.errors.remove(finding)
            result.warnings.append(Finding("sor_code", "replaced", f"{replaced.message()}: "
                                           "report with the successor from now on"))
        else:
            finding.message += f"; {told}"
    for finding in result.warnings:
        if finding.code == "closes_in_period":
            finding.message += f"; {told}"


def validate_reporting_unit(
    session: DbSession,
    sor_code: str | None,
    shak_code: str | None,
    period_start: date | None,
    period_end: date | None,
    window_days: int | None = None,
) -> Validation:
    """Check the institution code of a report: exactly one of SOR or SHAK, known, and
    active throughout the period (a code closing inside it warns, one closed before it
    is an error), as SEI's "Valider" does. A SOR code replaced by another names its
    successors; closed before the period, it only warns while the period ends less than
    *window_days* (default ``SOR_SUCCESSOR_WARNING_DAYS``) after the closing."""
    result = Validation()
    sor_code = (sor_code or "").strip() or None
    shak_code = (shak_code or "").strip() or None
    if sor_code and shak_code:
        result.errors.append(Finding("shak_code", "both_codes",
                                     "give either a SOR code or a SHAK code, not both"))
        return result
    if not sor_code and not shak_code:
        result.errors.append(Finding("sor_code", "no_code",
                                     "give a SOR code or a SHAK code"))
        return result
    start = period_start or period_end or date.today()
    end = period_end or start
    if end < start:
        result.errors.append(Finding("period_end", "period", "the period ends before it starts"))
        return result
    if sor_code:
        try:
            sor_code = ids.validate_sor_code(sor_code)
        except ids.IdentifierError as exc:
            result.errors.append(Finding("sor_code", "malformed", str(exc)))
            return result
        organisation = session.get(Organisation, sor_code)
        if organisation is None:
            result.errors.append(Finding("sor_code", "unknown",
                                         f"no organisation has SOR code {sor_code}"))
            return result
        result.organisation = organisation
        _period_findings(result, f"SOR code {sor_code} ({organisation.name})", "sor_code",
                         start, end, organisation.valid_from, organisation.valid_to)
        if organisation.replaced_by and organisation.valid_to is not None \
                and organisation.valid_to <= end:
            _replacement_findings(session, result, organisation, end, window_days)
        if organisation.level == "IE":
            result.warnings.append(Finding(
                "sor_code", "owner_level",
                "this is an institution owner (IE); report the institution or unit where "
                "the treatment took place"))
        return result
    assert shak_code is not None
    try:
        shak_code = ids.validate_shak(shak_code)
    except ids.IdentifierError as exc:
        result.errors.append(Finding("shak_code", "malformed", str(exc)))
        return result
    records = list(session.execute(
        select(ShakCode).where(ShakCode.code == shak_code).order_by(ShakCode.valid_from)
    ).scalars())
    if not records:
        carriers = session.execute(
            select(Organisation).where(Organisation.shak == shak_code).limit(1)
        ).scalar_one_or_none()
        if carriers is None:
            result.errors.append(Finding("shak_code", "unknown",
                                         f"SHAK code {shak_code} is not in the register"))
        else:
            result.organisation = carriers
            result.warnings.append(Finding("shak_code", "not_in_shak_register",
                                           f"SHAK code {shak_code} is on a SOR unit but not "
                                           "in the SHAK register"))
            _period_findings(result, f"SHAK code {shak_code}", "shak_code", start, end,
                             carriers.valid_from, carriers.valid_to)
        return result
    # The code's validity is the union of its records' periods (SHAK ends are inclusive).
    valid_from = records[0].valid_from
    last = records[-1].valid_to
    valid_to = date.fromordinal(last.toordinal() + 1) if last else None
    _period_findings(result, f"SHAK code {shak_code} ({records[-1].text})", "shak_code",
                     start, end, valid_from, valid_to)
    return result

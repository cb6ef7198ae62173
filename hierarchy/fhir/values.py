"""The syntax of FHIR search values: escapes, OR lists, tokens, references, dates.

FHIR escapes ``,`` ``|`` ``$`` and ``\\`` with a backslash; a comma separates values of
which one must match (OR), a bar a token's system from its code. A date is given to some
precision and stands for the whole interval it names ("2025-01" is all of January); its
prefix (``ge``, ``lt``, ...) compares the resource's moment with that interval
(http://hl7.org/fhir/R4/search.html#date). Malformed values raise :class:`BadValue`.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hierarchy.fhir.outcome import FhirError

MAX_VALUES = 50  # values in one OR list


class BadValue(FhirError):
    """A parameter value FHIR's syntax does not allow (400, naming the parameter)."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}", field_errors={parameter: [reason]})


def _split(value: str, separator: str) -> list[str]:
    """*value* cut at each unescaped *separator*, escapes kept."""
    parts, current, escaped = [], [], False
    for ch in value:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", value)


def alternatives(parameter: str, value: str) -> list[str]:
    """The values of an OR list (escapes kept for :func:`token`; empty ones dropped)."""
    values = [part for part in _split(value, ",") if part.strip()]
    if len(values) > MAX_VALUES:
        raise BadValue(parameter, f"at most {MAX_VALUES} values separated by commas")
    return values


def token(value: str) -> tuple[str | None, str]:
    """(system, code) of a token: system None when not given ("code": any system), "" when
    given empty ("|code": no system)."""
    parts = _split(value, "|")
    if len(parts) == 1:
        return None, unescape(parts[0]).strip()
    return unescape(parts[0]).strip(), unescape("|".join(parts[1:])).strip()


def reference(parameter: str, value: str, resource_type: str) -> str:
    """The id a reference value names: ``id``, ``Type/id`` or an absolute URL ending so."""
    text = unescape(value).strip()
    if "/" not in text:
        return text
    segments = [segment for segment in text.split("/") if segment]
    if "_history" in segments:
        segments = segments[:segments.index("_history")]
    if len(segments) < 2 or segments[-2] != resource_type:
        raise BadValue(parameter, f"a reference to a {resource_type} ({resource_type}/<id>)")
    return segments[-1]


# --- dates --------------------------------------------------------------------------------

_DATE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?")
PREFIXES = ("eq", "gt", "lt", "ge", "le", "sa", "eb")
_UNSUPPORTED_PREFIXES = ("ne", "ap")


@dataclass(frozen=True)
class Bounds:
    """Moments from ``lower`` (inclusive) until ``upper`` (exclusive); None: unbounded."""

    lower: datetime | None = None
    upper: datetime | None = None

    def __and__(self, other: Bounds) -> Bounds:
        lowers = [m for m in (self.lower, other.lower) if m is not None]
        uppers = [m for m in (self.upper, other.upper) if m is not None]
        return Bounds(max(lowers, default=None), min(uppers, default=None))


_FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _interval(parameter: str, text: str) -> tuple[datetime, datetime]:
    """The interval a date or dateTime of some precision names (UTC when no zone is given)."""
    found = _DATE.fullmatch(text)
    if found is None:
        raise BadValue(parameter, f"{text!r} is not a FHIR date or dateTime "
                                  "(YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][zone])")
    parts = found.groupdict()
    try:
        zone = parts["zone"] or "Z"
        tz = UTC if zone == "Z" else datetime.strptime(zone, "%z").tzinfo
        year = int(parts["year"])
        month = int(parts["month"] or 1)
        day = int(parts["day"] or 1)
        fraction = parts["fraction"] or ""
        start = datetime(year, month, day, int(parts["hour"] or 0), int(parts["minute"] or 0),
                         int(parts["second"] or 0), int((fraction + "000000")[:6]), tzinfo=tz)
    except (ValueError, OverflowError):
        raise BadValue(parameter, f"{text!r} names no moment of the calendar") from None
    if parts["fraction"]:
        length = timedelta(microseconds=max(1, 10 ** (6 - len(fraction)))) \
            if len(fraction) <= 6 else timedelta(microseconds=1)
    elif parts["second"]:
        length = timedelta(seconds=1)
    elif parts["minute"]:
        length = timedelta(minutes=1)
    elif parts["day"]:
        length = timedelta(days=1)
    elif parts["month"]:
        length = timedelta(days=monthrange(year, month)[1])
    else:
        length = timedelta(days=366 if monthrange(year, 2)[1] == 29 else 365)
    try:
        start = start.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadValue(parameter, f"{text!r} names no moment of the calendar") from None
    try:
        end = start + length
    except OverflowError:
        end = _FAR_FUTURE
    return start, end


def date_bounds(parameter: str, value: str) -> Bounds:
    """The moments a prefixed date value (``ge2025-01-01``) admits."""
    text = value.strip()
    prefix = text[:2] if text[:2].isalpha() else "eq"
    if prefix in _UNSUPPORTED_PREFIXES:
        raise BadValue(parameter, f"the prefix {prefix} is not supported here "
                                  f"(supported: {', '.join(PREFIXES)})")
    if prefix not in PREFIXES:
        raise BadValue(parameter, f"unknown prefix {prefix!r} (supported: {', '.join(PREFIXES)})")
    if text[:2].isalpha():
        text = text[2:]
    start, end = _interval(parameter, text)
    if prefix == "eq":
        return Bounds(start, end)
    if prefix in ("gt", "sa"):
        return Bounds(lower=end)
    if prefix == "ge":
        return Bounds(lower=start)
    if prefix in ("lt", "eb"):
        return Bounds(upper=start)
    return Bounds(upper=end)  # le


def instant(parameter: str, value: str) -> datetime:
    """An instant (``_since``): the start of the moment given."""
    start, _ = _interval(parameter, value.strip())
    return start

"""The identifiers of the SOR register and their rules.

Pure functions, no Flask or database: each ``validate_*`` takes what a person typed,
returns the canonical form, or raises :class:`IdentifierError` with a reason in plain
English. The rules are in ``DOMAIN.md`` ("Identifiers and their rules").

- SOR code: the register's own id, a SNOMED CT style extension id
  ``<item id><namespace 1000016><partition 00><check digit>``.
- CVR: the Danish company number (on the IE, the owner).
- SHAK (sygehus-afdelingskode): the hospital / department / section code of the
  national SKS classification.
- ydernummer: the provider number under the national health insurance scheme.
- GLN: GS1 global location number (EAN location number).
- P-number: production-unit number of the CVR register.
- kommunekode / regionskode: municipality and region codes of addresses.
"""

from __future__ import annotations

import re

from stdnum import ean, verhoeff
from stdnum.dk import cvr as stdnum_cvr
from stdnum.exceptions import ValidationError

from hierarchy.codes import municipalities

__all__ = [
    "DANISH_SOR_NAMESPACE",
    "REGION_CODES",
    "SHAK_KINDS",
    "SOR_CODE_RE",
    "SOR_ITEM_ID_MAX",
    "IdentifierError",
    "classify_code",
    "is_sor_code",
    "make_sor_code",
    "normalise_ydernummer",
    "shak_hospital",
    "shak_kind",
    "sor_code_has_valid_check_digit",
    "validate_cvr",
    "validate_gln",
    "validate_municipality_code",
    "validate_p_number",
    "validate_region_code",
    "validate_shak",
    "validate_sor_code",
]


class IdentifierError(ValueError):
    """A code that breaks its identifier's rule; the message says why."""


# Shape only. The last digit is meant to be a Verhoeff check digit, but real data does
# not reliably honour it, so any digit is accepted.
SOR_CODE_RE = re.compile(r"^[1-9][0-9]{0,7}100001600[0-9]$")
DANISH_SOR_NAMESPACE = "1000016"
SOR_PARTITION = "00"
SOR_ITEM_ID_MAX = 99_999_999
_SOR_SUFFIX_RE = re.compile(r"100001600[0-9]$")

_DIGITS_RE = re.compile(r"^[0-9]+$")
_SHAK_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("hospital", re.compile(r"^[0-9]{4}$")),
    ("department", re.compile(r"^[0-9]{4}[0-9A-Z][0-9]$")),
    ("section", re.compile(r"^[0-9]{4}[0-9A-Z][0-9][0-9A-Z]$")),
)
SHAK_KINDS: tuple[str, ...] = tuple(kind for kind, _ in _SHAK_SHAPES)

YDERNUMMER_LENGTH = 6
YDERNUMMER_MAX_LENGTH = 9
REGION_CODES: frozenset[str] = frozenset({"1081", "1082", "1083", "1084", "1085"})


def _clean(value: object, what: str) -> str:
    """Return *value* stripped of surrounding whitespace; reject non-strings and empties."""
    if not isinstance(value, str):
        raise IdentifierError(f"{what} must be given as text, not {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned:
        raise IdentifierError(f"{what} is empty")
    return cleaned


def _is_digits(value: str) -> bool:
    """True for ASCII digits only (``str.isdigit`` also accepts e.g. superscripts)."""
    return _DIGITS_RE.fullmatch(value) is not None


# -- SOR code -----------------------------------------------------------------------------


def validate_sor_code(value: str) -> str:
    """Return the SOR code stripped of whitespace, or raise saying why it is malformed."""
    code = _clean(value, "SOR code")
    if not _is_digits(code):
        raise IdentifierError(f"SOR code {code!r} must contain digits only")
    if not 11 <= len(code) <= 18:
        raise IdentifierError(
            f"SOR code {code} has {len(code)} digits; a SOR code has 11 to 18 digits"
        )
    if code[0] == "0":
        raise IdentifierError(f"SOR code {code} must not start with 0")
    if not _SOR_SUFFIX_RE.search(code):
        raise IdentifierError(
            f"SOR code {code} is not in the Danish namespace {DANISH_SOR_NAMESPACE} "
            f"with partition {SOR_PARTITION} (it must end in "
            f"{DANISH_SOR_NAMESPACE}{SOR_PARTITION} and one digit)"
        )
    # The checks above are SOR_CODE_RE spelt out, one reason each.
    return code


def is_sor_code(value: str) -> bool:
    """Return True if *value* (stripped) has the shape of a SOR code."""
    return isinstance(value, str) and SOR_CODE_RE.fullmatch(value.strip()) is not None


def make_sor_code(item_id: int) -> str:
    """Build the SOR code for *item_id* in the Danish namespace, with a Verhoeff check digit."""
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise IdentifierError(f"SOR item id must be an integer, not {type(item_id).__name__}")
    if not 1 <= item_id <= SOR_ITEM_ID_MAX:
        raise IdentifierError(
            f"SOR item id {item_id} is out of range; it must be 1 to {SOR_ITEM_ID_MAX:,}"
        )
    stem = f"{item_id}{DANISH_SOR_NAMESPACE}{SOR_PARTITION}"
    return stem + verhoeff.calc_check_digit(stem)


def sor_code_has_valid_check_digit(value: str) -> bool:
    """Return True if *value* is SOR-shaped and its last digit is a valid Verhoeff digit."""
    return is_sor_code(value) and verhoeff.is_valid(value.strip())


# -- CVR ----------------------------------------------------------------------------------


def validate_cvr(value: str) -> str:
    """Return the 8-digit CVR number; spaces and a "DK" prefix are accepted and dropped."""
    raw = _clean(value, "CVR")
    number = stdnum_cvr.compact(raw)
    if not _is_digits(number):
        raise IdentifierError(f"CVR {raw!r} must contain digits only (an optional DK prefix)")
    if len(number) != 8:
        raise IdentifierError(f"CVR {number} has {len(number)} digits; a CVR has 8 digits")
    if number[0] == "0":
        raise IdentifierError(f"CVR {number} must not start with 0")
    try:
        return stdnum_cvr.validate(number)
    except ValidationError:
        raise IdentifierError(f"CVR {number} fails the modulus 11 check") from None


# -- SHAK ---------------------------------------------------------------------------------


def shak_kind(value: object) -> str | None:
    """Return "hospital", "department" or "section" by the code's shape, else None."""
    if not isinstance(value, str):
        return None
    code = value.strip()
    # Upper-casing non-ASCII text can yield ASCII letters ("ı" -> "I"), so refuse it first.
    if not code.isascii():
        return None
    code = code.upper()
    for kind, pattern in _SHAK_SHAPES:
        if pattern.fullmatch(code):
            return kind
    return None


def validate_shak(value: str) -> str:
    """Return the SHAK code stripped and upper-cased, or raise saying why it is malformed."""
    code = _clean(value, "SHAK code")
    if shak_kind(code) is not None:
        return code.upper()
    if not code.isascii() or not code.isalnum():
        raise IdentifierError(f"SHAK code {code!r} may contain only digits and letters A-Z")
    if len(code) not in (4, 6, 7):
        raise IdentifierError(
            f"SHAK code {code} has {len(code)} characters; a SHAK code has 4 (hospital), "
            "6 (department) or 7 (section)"
        )
    if not _is_digits(code[:4]):
        raise IdentifierError(f"SHAK code {code} must start with the 4-digit hospital code")
    raise IdentifierError(
        f"SHAK code {code} does not match its shape: the 6th character must be a digit "
        "(hospital NNNN, department NNNNAN, section NNNNANA)"
    )


def shak_hospital(value: str) -> str:
    """Return the hospital part (first 4 characters) of a valid SHAK code."""
    return validate_shak(value)[:4]


# -- ydernummer ---------------------------------------------------------------------------


def normalise_ydernummer(value: str) -> str:
    """Return the ydernummer zero-padded to 6 digits; longer ones (up to 9) are kept as is.

    The ydernummer is the provider number of the health insurance scheme; it is usually
    written without leading zeros, and SDS prefixes duplicates with "99" (hence 9 chars).
    """
    number = _clean(value, "ydernummer")
    if not _is_digits(number):
        raise IdentifierError(f"ydernummer {number!r} must contain digits only")
    if len(number) > YDERNUMMER_MAX_LENGTH:
        raise IdentifierError(
            f"ydernummer {number} has {len(number)} digits; "
            f"at most {YDERNUMMER_MAX_LENGTH} are allowed"
        )
    return number.zfill(YDERNUMMER_LENGTH)


# -- GLN, P-number, municipality, region --------------------------------------------------


def validate_gln(value: str) -> str:
    """Return the 13-digit GLN, or raise if it is not 13 digits with a GS1 check digit."""
    number = _clean(value, "GLN")
    if not _is_digits(number):
        raise IdentifierError(f"GLN {number!r} must contain digits only")
    if len(number) != 13:
        raise IdentifierError(f"GLN {number} has {len(number)} digits; a GLN has 13 digits")
    try:
        return ean.validate(number)
    except ValidationError:
        expected = ean.calc_check_digit(number[:-1])
        raise IdentifierError(
            f"GLN {number} fails the GS1 modulus 10 check (the last digit should be {expected})"
        ) from None


def validate_p_number(value: str) -> str:
    """Return the 10-digit P-number (no check digit: real ones fail modulus 11)."""
    number = _clean(value, "P-number")
    if not _is_digits(number):
        raise IdentifierError(f"P-number {number!r} must contain digits only")
    if len(number) != 10:
        raise IdentifierError(
            f"P-number {number} has {len(number)} digits; a P-number has 10 digits"
        )
    return number


def validate_municipality_code(value: str) -> str:
    """Return the 4-digit kommunekode; a 3-digit one is zero-padded ("101" -> "0101")."""
    code = _clean(value, "municipality code")
    if not _is_digits(code):
        raise IdentifierError(f"municipality code {code!r} must contain digits only")
    if len(code) not in (3, 4):
        raise IdentifierError(
            f"municipality code {code} has {len(code)} digits; a municipality code has 4"
        )
    return code.zfill(4)


def validate_kommunekode(value: str) -> str:
    """Return the kommunekode of a Danish municipality: well formed and in the code list."""

    code = validate_municipality_code(value)
    if code not in municipalities():
        raise IdentifierError(f"{code} is not a Danish kommunekode")
    return code


def validate_region_code(value: str) -> str:
    """Return the regionskode if it is one of 1081 to 1085."""
    code = _clean(value, "region code")
    if code not in REGION_CODES:
        raise IdentifierError(f"region code {code!r} is not a Danish region code (1081 to 1085)")
    return code


# -- free-typed codes ---------------------------------------------------------------------


def classify_code(value: object) -> list[str]:
    """Return the kinds ("sor", "shak", "ydernummer") a free-typed code could be, likeliest first.

    The shapes overlap only between SHAK and ydernummer (a SOR code has 11+ digits, the
    others at most 9): "2529" and "130101" are both. SHAK comes first as an exact-shape
    match, except for a leading zero, which ydernumre carry as padding and no SHAK
    code in the register has ("019062" -> ["ydernummer", "shak"]).
    """
    if not isinstance(value, str):
        return []
    code = value.strip()
    if not code:
        return []
    kinds: list[str] = []
    if is_sor_code(code):
        kinds.append("sor")
    if shak_kind(code) is not None:
        kinds.append("shak")
    if _is_digits(code) and len(code) <= YDERNUMMER_MAX_LENGTH:
        if code.startswith("0"):
            kinds.insert(0, "ydernummer")
        else:
            kinds.append("ydernummer")
    return kinds

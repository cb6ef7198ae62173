"""Rules of the SOR register's identifiers: examples from real data and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hierarchy.identifiers import (
    SOR_CODE_RE,
    IdentifierError,
    classify_code,
    is_sor_code,
    make_sor_code,
    normalise_ydernummer,
    shak_hospital,
    shak_kind,
    sor_code_has_valid_check_digit,
    validate_cvr,
    validate_gln,
    validate_municipality_code,
    validate_p_number,
    validate_region_code,
    validate_shak,
    validate_sor_code,
)

CVR_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 1)
SHAK_SHAPES = {
    "hospital": r"[0-9]{4}",
    "department": r"[0-9]{4}[0-9A-Z][0-9]",
    "section": r"[0-9]{4}[0-9A-Z][0-9][0-9A-Z]",
}


def digits(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """ASCII digit strings of the given length range."""
    return st.text(alphabet="0123456789", min_size=min_size, max_size=max_size)


def gs1_check_digit(body: str) -> str:
    """GS1 mod-10 check digit, written out here independently of stdnum."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str(-total % 10)


def cvr_remainder(number: str) -> int:
    return sum(w * int(d) for w, d in zip(CVR_WEIGHTS, number, strict=True)) % 11


def mutations(number: str) -> list[str]:
    """Every string differing from *number* in exactly one digit."""
    return [
        number[:i] + d + number[i + 1 :]
        for i in range(len(number))
        for d in "0123456789"
        if d != number[i]
    ]


def raises_identifier_error(func, value: str) -> bool:
    try:
        func(value)
    except IdentifierError:
        return True
    return False


def test_identifier_error_is_a_value_error() -> None:
    assert issubclass(IdentifierError, ValueError)


# -- SOR code -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["8321000016007", "347801000016001", "698471000016005"])
def test_real_sor_codes_are_valid(code: str) -> None:
    assert validate_sor_code(code) == code
    assert is_sor_code(code)
    assert sor_code_has_valid_check_digit(code)


def test_sor_code_is_stripped() -> None:
    assert validate_sor_code(" 8321000016007\n") == "8321000016007"
    assert is_sor_code("\t8321000016007 ")


def test_sor_code_with_a_wrong_check_digit_is_still_accepted() -> None:
    # Real data does not honour the check digit, so only its shape is checked.
    assert validate_sor_code("8321000016008") == "8321000016008"
    assert not sor_code_has_valid_check_digit("8321000016008")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("6984910000160091", "not in the Danish namespace 1000016 with partition 00"),
        ("8321000017007", "not in the Danish namespace 1000016"),
        ("8321000016107", "partition 00"),
        ("8321000016", "has 10 digits; a SOR code has 11 to 18 digits"),
        ("1000016007", "has 10 digits"),
        ("1234567891000016007", "has 19 digits"),
        ("0321000016007", "must not start with 0"),
        ("83210000160O7", "digits only"),
        ("832 1000016007", "digits only"),
        ("-8321000016007", "digits only"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_malformed_sor_codes_say_why(code: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        validate_sor_code(code)
    assert not is_sor_code(code)
    assert not sor_code_has_valid_check_digit(code)


def test_sor_code_rejects_non_ascii_digits() -> None:
    assert not raises_identifier_error(validate_sor_code, "8321000016007")
    assert raises_identifier_error(validate_sor_code, "８321000016007")  # fullwidth 8
    assert raises_identifier_error(validate_sor_code, "832100001600٧")  # Arabic-Indic 7


def test_make_sor_code_examples() -> None:
    assert make_sor_code(832) == "8321000016007"
    assert make_sor_code(34780) == "347801000016001"
    assert make_sor_code(1) == "11000016002"
    assert len(make_sor_code(99_999_999)) == 18


@pytest.mark.parametrize("item_id", [0, -1, 100_000_000])
def test_make_sor_code_rejects_out_of_range_ids(item_id: int) -> None:
    with pytest.raises(IdentifierError, match="out of range"):
        make_sor_code(item_id)


@pytest.mark.parametrize("item_id", [True, 1.0, "832"])
def test_make_sor_code_rejects_non_integers(item_id: object) -> None:
    with pytest.raises(IdentifierError, match="must be an integer"):
        make_sor_code(item_id)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=99_999_999))
@example(1)
@example(99_999_999)
def test_every_made_sor_code_is_well_formed(item_id: int) -> None:
    code = make_sor_code(item_id)
    assert SOR_CODE_RE.match(code)
    assert validate_sor_code(code) == code
    assert sor_code_has_valid_check_digit(code)
    assert code[:-10] == str(item_id)
    assert code[-10:-1] == "100001600"


@given(st.integers(min_value=1, max_value=99_999_999))
def test_exactly_one_last_digit_passes_the_check(item_id: int) -> None:
    stem = make_sor_code(item_id)[:-1]
    candidates = [stem + d for d in "0123456789"]
    assert all(validate_sor_code(c) == c for c in candidates)
    assert [c for c in candidates if sor_code_has_valid_check_digit(c)] == [make_sor_code(item_id)]


@given(st.integers(min_value=1, max_value=99_999_999))
def test_a_single_digit_typo_breaks_the_check_digit(item_id: int) -> None:
    code = make_sor_code(item_id)
    for typo in mutations(code):
        assert not (is_sor_code(typo) and sor_code_has_valid_check_digit(typo)), typo


@given(st.one_of(st.text(max_size=20), digits(0, 20), st.from_regex(SOR_CODE_RE)))
def test_validate_sor_code_agrees_with_the_regex(value: str) -> None:
    stripped = value.strip()
    if SOR_CODE_RE.match(stripped) and stripped.isascii():
        assert validate_sor_code(value) == stripped
        assert is_sor_code(value)
    else:
        assert raises_identifier_error(validate_sor_code, value)
        assert not is_sor_code(value)


# -- CVR ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["35095748", " 35095748 ", "DK35095748", "DK 35 09 57 48", "dk35095748"]
)
def test_real_cvr_is_valid_in_its_usual_spellings(value: str) -> None:
    assert validate_cvr(value) == "35095748"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("35095749", "CVR 35095749 fails the modulus 11 check"),
        ("3509574", "has 7 digits; a CVR has 8 digits"),
        ("350957480", "has 9 digits"),
        ("05095748", "must not start with 0"),
        ("3509574X", "digits only"),
        ("", "empty"),
    ],
)
def test_bad_cvr_says_why(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        validate_cvr(value)


@given(digits(7, 7).filter(lambda p: p[0] != "0"))
def test_a_cvr_prefix_has_at_most_one_check_digit(prefix: str) -> None:
    passing = [d for d in "0123456789" if not raises_identifier_error(validate_cvr, prefix + d)]
    # The check digit must make the weighted sum 0 mod 11; it does not exist when it would
    # have to be 10, so such prefixes are never issued.
    needed = -cvr_remainder(prefix + "0") % 11
    assert passing == ([] if needed == 10 else [str(needed)])


@given(digits(7, 7).filter(lambda p: p[0] != "0"))
def test_valid_cvrs_pass_and_single_digit_changes_fail(prefix: str) -> None:
    needed = -cvr_remainder(prefix + "0") % 11
    if needed == 10:
        return
    number = prefix + str(needed)
    assert validate_cvr(number) == number
    assert validate_cvr(f"DK {number}") == number
    for typo in mutations(number):
        assert raises_identifier_error(validate_cvr, typo), typo


# -- GLN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gln", ["5790002401473", "5790000141227"])
def test_real_glns_are_valid(gln: str) -> None:
    assert validate_gln(gln) == gln
    assert validate_gln(f" {gln} ") == gln


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("5790002401474", "fails the GS1 modulus 10 check (the last digit should be 3)"),
        ("579000240147", "has 12 digits; a GLN has 13 digits"),
        ("05790002401473", "has 14 digits"),
        ("57900024", "has 8 digits"),
        ("579000240147X", "digits only"),
        ("", "empty"),
    ],
)
def test_bad_gln_says_why(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        validate_gln(value)


@given(digits(12, 12))
def test_any_12_digits_with_their_check_digit_make_a_gln(body: str) -> None:
    gln = body + gs1_check_digit(body)
    assert validate_gln(gln) == gln
    for wrong in "0123456789":
        if wrong != gln[-1]:
            assert raises_identifier_error(validate_gln, body + wrong)


@given(st.one_of(digits(11, 11), digits(13, 13)))
def test_gtins_of_other_lengths_are_not_glns(body: str) -> None:
    # Valid GTIN-12 and GTIN-14 (stdnum.ean accepts both) are still not GLNs.
    gtin = body + gs1_check_digit(body)
    with pytest.raises(IdentifierError, match="a GLN has 13 digits"):
        validate_gln(gtin)


# -- SHAK ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("2529", "hospital"),
        ("252901", "department"),
        ("2529010", "section"),
        ("1301", "hospital"),
        ("130101", "department"),
        ("1500A1", "department"),
        ("1500A1A", "section"),
        ("660001F", "section"),
        ("135109U", "section"),
    ],
)
def test_real_shak_codes(code: str, kind: str) -> None:
    assert shak_kind(code) == kind
    assert validate_shak(code) == code
    assert shak_hospital(code) == code[:4]


def test_shak_is_upper_cased_and_stripped() -> None:
    assert shak_kind(" 1500a1a ") == "section"
    assert validate_shak(" 1500a1a ") == "1500A1A"
    assert shak_hospital("660001f") == "6600"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("13011A", "the 6th character must be a digit"),
        ("1301AA1", "the 6th character must be a digit"),
        ("13011", "has 5 characters"),
        ("13010101", "has 8 characters"),
        ("A30101", "must start with the 4-digit hospital code"),
        ("130-01", "only digits and letters"),
        ("1301ı1", "only digits and letters"),  # dotless i upper-cases to ASCII "I"
        ("", "empty"),
    ],
)
def test_bad_shak_says_why(value: str, reason: str) -> None:
    assert shak_kind(value) is None
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        validate_shak(value)
    with pytest.raises(IdentifierError):
        shak_hospital(value)


@pytest.mark.parametrize("kind", sorted(SHAK_SHAPES))
@given(data=st.data())
def test_every_code_of_a_shape_has_that_kind(kind: str, data: st.DataObject) -> None:
    code = data.draw(st.from_regex(rf"\A{SHAK_SHAPES[kind]}\Z"))
    assert shak_kind(code) == kind
    assert shak_kind(code.lower()) == kind
    assert validate_shak(code.lower()) == code
    assert validate_shak(validate_shak(code)) == code
    assert shak_hospital(code) == code[:4]


@given(st.one_of(st.text(max_size=9), st.text(alphabet="0123456789ABCXYZabc -", max_size=9)))
def test_shak_kind_is_exactly_the_three_shapes(value: str) -> None:
    code = value.strip()
    expected = None
    if code.isascii():
        for kind, shape in SHAK_SHAPES.items():
            if re.fullmatch(shape, code.upper()):
                expected = kind
    assert shak_kind(value) == expected
    assert raises_identifier_error(validate_shak, value) == (expected is None)


# -- ydernummer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19062", "019062"),
        ("019062", "019062"),
        (" 19062\n", "019062"),
        ("830062", "830062"),
        ("7", "000007"),
        ("99019062", "99019062"),
        ("990190620", "990190620"),
    ],
)
def test_ydernummer_is_zero_padded_to_six(value: str, expected: str) -> None:
    assert normalise_ydernummer(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1234567890", "has 10 digits; at most 9 are allowed"),
        ("019-062", "digits only"),
        ("19062A", "digits only"),
        ("", "empty"),
        ("  ", "empty"),
    ],
)
def test_bad_ydernummer_says_why(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        normalise_ydernummer(value)


@given(digits(1, 9))
def test_ydernummer_normalisation_is_idempotent(value: str) -> None:
    normal = normalise_ydernummer(value)
    assert normalise_ydernummer(normal) == normal
    assert len(normal) == max(6, len(value))
    assert normal.endswith(value)
    assert int(normal) == int(value)


@given(st.text(min_size=1, max_size=12))
def test_ydernummer_is_digits_only(value: str) -> None:
    stripped = value.strip()
    ok = re.fullmatch(r"[0-9]{1,9}", stripped) is not None
    assert raises_identifier_error(normalise_ydernummer, value) == (not ok)


# -- P-number, municipality, region -------------------------------------------------------


def test_p_number() -> None:
    assert validate_p_number(" 1003388394 ") == "1003388394"
    with pytest.raises(IdentifierError, match="has 9 digits; a P-number has 10 digits"):
        validate_p_number("100338839")
    with pytest.raises(IdentifierError, match="has 11 digits"):
        validate_p_number("10033883940")
    with pytest.raises(IdentifierError, match="digits only"):
        validate_p_number("10033883X4")


@given(digits(10, 10))
def test_any_ten_digits_make_a_p_number(value: str) -> None:
    # No check digit: real P-numbers fail modulus 11.
    assert validate_p_number(value) == value


@pytest.mark.parametrize(
    ("value", "expected"), [("101", "0101"), ("0101", "0101"), ("851", "0851"), ("0851", "0851")]
)
def test_municipality_code(value: str, expected: str) -> None:
    assert validate_municipality_code(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [("12", "has 2 digits"), ("12345", "has 5 digits"), ("10a", "digits only"), ("", "empty")],
)
def test_bad_municipality_code_says_why(value: str, reason: str) -> None:
    with pytest.raises(IdentifierError, match=re.escape(reason)):
        validate_municipality_code(value)


@given(digits(3, 4))
def test_municipality_code_is_four_digits(value: str) -> None:
    code = validate_municipality_code(value)
    assert len(code) == 4
    assert code.endswith(value)
    assert validate_municipality_code(code) == code


@pytest.mark.parametrize("code", ["1081", "1082", "1083", "1084", "1085"])
def test_region_codes(code: str) -> None:
    assert validate_region_code(f" {code} ") == code


@pytest.mark.parametrize("value", ["1080", "1086", "81", "DK-84", "0181", ""])
def test_bad_region_code(value: str) -> None:
    with pytest.raises(IdentifierError):
        validate_region_code(value)


# -- classify_code ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kinds"),
    [
        ("8321000016007", ["sor"]),
        ("6984910000160091", []),
        ("130101", ["shak", "ydernummer"]),
        ("2529", ["shak", "ydernummer"]),
        ("2529010", ["shak", "ydernummer"]),
        ("019062", ["ydernummer", "shak"]),
        ("19062", ["ydernummer"]),
        ("99019062", ["ydernummer"]),
        ("660001F", ["shak"]),
        ("660001f", ["shak"]),
        ("13011A", []),
        ("Rigshospitalet", []),
        ("", []),
        ("  ", []),
    ],
)
def test_classify_code_examples(value: str, kinds: list[str]) -> None:
    assert classify_code(value) == kinds


@given(
    st.one_of(
        st.text(max_size=20),
        digits(1, 20),
        st.from_regex(SOR_CODE_RE),
        st.from_regex(r"\A[0-9]{4}[0-9A-Za-z][0-9][0-9A-Za-z]?\Z"),
    )
)
def test_classify_code_lists_exactly_the_kinds_that_validate(value: str) -> None:
    kinds = classify_code(value)
    assert len(set(kinds)) == len(kinds)
    assert ("sor" in kinds) == (not raises_identifier_error(validate_sor_code, value))
    assert ("shak" in kinds) == (not raises_identifier_error(validate_shak, value))
    assert ("ydernummer" in kinds) == (not raises_identifier_error(normalise_ydernummer, value))
    # A SOR code is never anything else.
    assert "sor" not in kinds or kinds == ["sor"]

"""The similar-name sign of the duplicate check, on names alone."""

from __future__ import annotations

from difflib import SequenceMatcher

import pytest

from applications.service.duplicates import SIMILAR_NAME, similar_names, similar_to
from hierarchy.text import fold

PAIRS = [
    ("Plejecenter Søndergården", "Plejecentret Søndergaarden", True),  # spelling, a letter
    ("Plejehjemmet Åbo", "Plejehjemmet Aabo", True),  # folded alike
    ("Tandlægerne i Søndergade", "Søndergade", True),  # one contains the other
    ("Hjemmepleje distrikt 3", "Plejecentret Bakkegaarden", False),
    ("Bo", "Bog", False),  # too short to contain, too different by ratio
    ("", "Plejecenter", False),
    (None, "Plejecenter", False),
]


@pytest.mark.parametrize(("a", "b", "similar"), PAIRS)
def test_names_that_differ_by_a_few_letters_or_contain_each_other(a, b, similar):
    assert similar_names(a, b) is similar


def test_one_matcher_tests_many_names_as_a_fresh_one_would():
    """The prepared matcher (bounds first, then the ratio) decides each name as
    ``SequenceMatcher(None, name, wanted).ratio()`` does - in any order of names."""
    wanted = fold("Plejecentret Bakkegaarden")
    names = [fold(n) for n in ("Plejecenter Bakkegården", "Bakkegårdens Plejecenter",
                               "Plejecentret Bakkehuset", "Hjemmepleje Nord",
                               "Plejecentret Bakkegaarde", "Aktivitetscenter Bakken")]
    test = similar_to(wanted)
    for name in names + names[::-1]:
        expected = (name in wanted or wanted in name
                    or SequenceMatcher(None, name, wanted).ratio() >= SIMILAR_NAME)
        assert test(name) is expected, name

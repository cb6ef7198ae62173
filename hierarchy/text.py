"""Text folding for search: one fold for the names stored and for what is typed.

The rule (``fold``), in order:

1. lower case (``casefold``); runs of white space become one space;
2. the Nordic letters to their base letter: ``ø``/``ö`` -> ``o``, ``å`` -> ``a``, ``ü`` -> ``u``;
   ``æ``/``ä`` -> ``ae`` (what a keyboard without them writes), ``ß`` -> ``ss``; every other
   accent is removed (``é`` -> ``e``);
3. the old two-letter spellings of those letters collapse to the same base letter:
   ``aa`` -> ``a`` (Aarhus = Århus = Arhus, Aabenraa = Åbenrå = Abenra), ``oe`` -> ``o``
   (Koebenhavn = København = Kobenhavn, Roedovre = Rødovre), ``ue`` -> ``u``
   (Mueller = Müller). A longer run collapses whole (``aaa`` -> ``a``).

So "kobenhavn", "koebenhavn", "københavn" and "KØBENHAVN" all fold to ``kobenhavn``, and
"arhus", "aarhus" and "århus" to ``arhus``; "naestved" and "Næstved" to ``naestved``.

Why ``æ`` stays ``ae`` rather than ``a``: people without the letter write "ae" for it, and
folding it to ``a`` would merge common name parts (-vænge/-vange, Hæren/Haren) for little
gain. Why the digraphs collapse at all: "koebenhavn" and "kobenhavn" are both typed for
København, and only one canonical form can match both.

The trade-off, deliberate: a few unrelated spellings merge (Joensen = Jonsen, Manuel = Manul,
"poet" = "pot"): a search then finds a little more, never less. And a fragment that begins
inside a collapsed pair ("edovre" for Roedovre) no longer matches it; a fragment typed from
a word's start always does (step 3 depends only on the letter before, so the fold of a
prefix is a prefix of the fold: type-ahead never loses a match as more is typed).

``fold(fold(x)) == fold(x)``: folding twice changes nothing. The stored folded names
(``organisations.name_search``, ``organisation_names``, ``shak_codes.text_search``,
``applications.name_search``) are refolded by migration ``0019_fold_names`` when the rule
changes. Both back ends compare these folded strings only (no collation), so they answer
alike.
"""

from __future__ import annotations

import re
import unicodedata

# The letters that do not decompose into a base letter and an accent (or should not).
_LETTERS = str.maketrans(
    {
        "æ": "ae",
        "ä": "ae",
        "ø": "o",
        "œ": "oe",
        "ß": "ss",
        "đ": "d",
        "ł": "l",
        "ı": "i",
    }
)
_SPACE = re.compile(r"\s+")
# Step 3: "aa..." -> "a", "oe..." -> "o", "ue..." -> "u". One pass is a fixed point: what
# is removed never brings two letters of a pair together.
_PAIRS = re.compile(r"(?<=a)a+|(?<=[ou])e+")


def fold(text: str | None) -> str:
    """Fold *text* for comparison: lower case, accents removed, Nordic letters and their
    two-letter spellings to one form (the rule: this module's docstring)."""
    if not text:
        return ""
    folded = text.casefold().translate(_LETTERS)
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    if "a" in folded or "e" in folded:
        folded = _PAIRS.sub("", folded)
    return _SPACE.sub(" ", folded).strip()

"""Text folding for search: case- and accent-insensitive, Danish letters folded."""

from __future__ import annotations

import re
import unicodedata

# Danish (and the neighbours') letters fold to their traditional two-letter
# spellings, so "Århus", "Aarhus" and "AARHUS" all search the same.
_LETTERS = str.maketrans(
    {
        "æ": "ae",
        "ø": "oe",
        "å": "aa",
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
    }
)
_SPACE = re.compile(r"\s+")


def fold(text: str | None) -> str:
    """Fold *text* for comparison: lower case, Danish letters spelled out, accents removed."""
    if not text:
        return ""
    folded = text.casefold().translate(_LETTERS)
    if folded.isascii():
        return _SPACE.sub(" ", folded).strip()
    decomposed = unicodedata.normalize("NFKD", folded)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACE.sub(" ", stripped).strip()

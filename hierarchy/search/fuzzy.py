"""Trigram similarity as PostgreSQL's pg_trgm defines it, for fuzzy search and suggestions.

pg_trgm's ``similarity(a, b)``: each text's words (runs of letters and digits), lower
cased, each padded with two spaces in front and one behind; the set of their three-letter
pieces; ``|A ∩ B| / |A ∪ B|`` as a ``real`` (float4). :func:`similarity` computes the same
in Python, rounded to float4 as PostgreSQL rounds it, so the name index (SQLite, and the
suggestions on either back end) ranks exactly as ``similarity`` does on PostgreSQL
(tests/hierarchy/test_fuzzy.py compares the two). The texts compared are folded names
(``hierarchy.text.fold``: ASCII letters for Danish ones), where pg_trgm's idea of a letter
and Python's agree.

``name_match=fuzzy`` finds the names whose similarity to the text is at least
FUZZY_THRESHOLD (pg_trgm's default ``similarity_threshold``), most similar first. The
``suggestions`` of a search that finds nothing are the register's words nearest (by the
same measure) to each typed word that begins none (``NameIndex.suggestions``).
"""

from __future__ import annotations

import re
import struct

FUZZY_THRESHOLD = 0.3
_WORD = re.compile(r"[^\W_]+")
_FLOAT4 = struct.Struct("f")


def trigrams(text: str) -> frozenset[str]:
    """pg_trgm's trigrams of *text* (``show_trgm``)."""
    grams: set[str] = set()
    for word in _WORD.findall(text.lower()):
        padded = "  " + word + " "
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    return frozenset(grams)


def float4(value: float) -> float:
    """*value* rounded to a PostgreSQL ``real``, as a Python float."""
    result: float = _FLOAT4.unpack(_FLOAT4.pack(value))[0]
    return result


def ratio(common: int, first: int, second: int) -> float:
    """pg_trgm's CALCSML: *common* trigrams of sets of *first* and *second*, as a real."""
    union = first + second - common
    return float4(float4(common) / float4(union)) if union else 0.0


def similarity(a: str, b: str) -> float:
    """pg_trgm's ``similarity(a, b)``."""
    ga, gb = trigrams(a), trigrams(b)
    return ratio(len(ga & gb), len(ga), len(gb))

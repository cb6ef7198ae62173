"""The name search's patterns: LIKE patterns of a typed name, the word patterns of "words"
mode, and the relevance rank in SQL (:func:`relevance_rank`, the same order as
``hierarchy.search.filters.relevance``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, and_, bindparam, case, or_
from sqlalchemy.sql.elements import SQLCoreOperations

from hierarchy.search.filters import (
    WORD_SEPARATORS,
    NameMatch,
    escape_like,
    name_words,
    typed_words,
)

Condition = ColumnElement[bool]
# A statement's named parameters and their values.
Parameters = dict[str, Any]


def name_pattern(folded: str, mode: NameMatch) -> str:
    """The LIKE pattern of a (folded) name searched by *mode* (in "words" mode, the longest
    word anywhere: what the text index finds; :func:`word_parameters` narrow it)."""
    if mode == "words":
        return "%" + escape_like(name_words(folded)[0]) + "%"
    pattern = escape_like(folded)
    return pattern + "%" if mode == "prefix" else "%" + pattern + "%"


def _word_patterns(prefix: str, words: Sequence[str]) -> Parameters:
    """``{prefix}_k_0``: word *k* begins the name; ``{prefix}_k_i``: it follows separator *i*."""
    params: Parameters = {}
    for k, word in enumerate(words):
        escaped = escape_like(word)
        params[f"{prefix}_{k}_0"] = escaped + "%"
        params.update({f"{prefix}_{k}_{i}": "%" + separator + escaped + "%"
                       for i, separator in enumerate(WORD_SEPARATORS, start=1)})
    return params


def word_parameters(folded: str) -> Parameters:
    """The patterns of "words" mode: each word begins the name or follows a separator."""
    return _word_patterns("word", name_words(folded))


def _begins_word(column: SQLCoreOperations[str], k: int) -> Condition:
    """The typed word *k* (parameters ``rank_word_k_i``) begins a word of *column*."""
    return or_(*[column.like(bindparam(f"rank_word_{k}_{i}", type_=String), escape="\\")
                 for i in range(len(WORD_SEPARATORS) + 1)])


def relevance_rank(column: SQLCoreOperations[str], words: int) -> ColumnElement[int]:
    """``hierarchy.search.filters.relevance`` in SQL, for *words* typed words (parameters
    of :func:`rank_parameters`)."""
    rest = [_begins_word(column, k) for k in range(1, words)]
    return case(
        (column == bindparam("rank_exact", type_=String), 0),
        (and_(column.like(bindparam("rank_first", type_=String), escape="\\"), *rest), 1),
        (and_(*[_begins_word(column, k) for k in range(words)]), 2),
        else_=3,
    )


def rank_parameters(folded: str) -> Parameters:
    """The parameters of :func:`relevance_rank` for the (folded) text *folded*."""
    words = typed_words(folded)
    return {"rank_exact": folded, "rank_first": escape_like(words[0]) + "%",
            **_word_patterns("rank_word", words)}

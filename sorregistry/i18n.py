"""Danish pages with an English switch: ``_("Dansk tekst")`` in templates and views.

The pages are written in Danish; each package adds the English of its texts
with :func:`add_english`. The language is the start page's: ``?lang=en`` (or
``da``) switches and is remembered in a cookie. A text without an English
version is shown in Danish rather than not at all.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import has_request_context, request

LANGUAGES = ("da", "en")
_ENGLISH: dict[str, str] = {}


def add_english(texts: Mapping[str, str]) -> None:
    """Register English versions of Danish texts (Danish text -> English text)."""
    _ENGLISH.update(texts)


def current_language() -> str:
    if not has_request_context():
        return "da"
    chosen = request.args.get("lang") or request.cookies.get("lang")
    return chosen if chosen in LANGUAGES else "da"


def gettext(text: str, **values: object) -> str:
    """*text* in the page's language, with ``{name}`` placeholders filled in."""
    if current_language() == "en":
        text = _ENGLISH.get(text, text)
    return text.format(**values) if values else text


_ = gettext

"""The pages' languages: Danish texts translated through gettext catalogues (Flask-Babel).

Danish is the source language: a msgid is the Danish text as the page shows it, and
English is a translation (``<package>/translations/en/LC_MESSAGES/messages.po``, compiled
to ``messages.mo`` beside it; ``make translations`` re-extracts, updates and compiles).
A text without an English translation is shown in Danish rather than not at all.

**Catalogues.** Each package that has pages owns the catalogue of its own texts, as it
owns its templates: the app's (``sorregistry/translations``: the layout, the login) and
the catalogue beside every page blueprint's package (``hierarchy``, ``applications``,
``notifications``), found the way Flask finds a blueprint's templates, so the core names
no feature. They are merged into one gettext domain, ``messages``; a text that several
packages show (``Status``, ``Alle``) is in each one's catalogue, and
``tests/test_translations.py`` fails when two catalogues translate it differently, since
one would silently win. Where one Danish text needs two English ones a context tells
them apart: ``pgettext("outbox", "Afsender")`` is the outbox's worker ("Worker"), plain
``Afsender`` a mail's sender ("Sender").

**Negotiation**, per request: ``?lang=da|en`` (the pages remember it in the ``lang``
cookie, see ``sorregistry.pages``), then that cookie, then the first of Danish and
English in the browser's ``Accept-Language`` (in its order of preference), then
Danish. Outside a request (commands), Danish. English pages use British conventions
(``en_GB``: day before month, a 24-hour clock) for dates and numbers: Flask-Babel's
``format_date``, ``format_datetime`` and ``format_decimal`` (``dateformat``,
``datetimeformat``, ``decimalformat`` in templates); times are shown in UTC.

Views import ``_``/``gettext``, ``pgettext``, ``lazy_gettext`` (module-level tables: the
text is looked up when shown, never at import; its type is ``LazyString``),
``current_language`` and ``LANGUAGES`` from here; placeholders are gettext's ``%(name)s``.
"""

from __future__ import annotations

import os

import flask_babel
from flask import Flask, g, has_request_context, request
from flask_babel.speaklater import LazyString

__all__ = ["LANGUAGES", "LazyString", "_", "current_language", "gettext", "init_app",
           "lazy_gettext", "pgettext"]

LANGUAGES = ("da", "en")
DEFAULT_LANGUAGE = "da"
COOKIE = "lang"
# The Babel locale of each language: what dates and numbers look like.
LOCALES = {"da": "da_DK", "en": "en_GB"}
CATALOGUES = "translations"  # beside each package: <package>/translations/<lang>/LC_MESSAGES
DOMAIN = "messages"


def gettext(text: str, **values: object) -> str:
    """*text* (Danish) in the page's language, ``%(name)s`` placeholders filled in."""
    return str(flask_babel.gettext(text, **values))


_ = gettext


def pgettext(context: str, text: str, **values: object) -> str:
    """Like :func:`gettext`, for a Danish text that needs another English one in *context*."""
    return str(flask_babel.pgettext(context, text, **values))


def lazy_gettext(text: str, **values: object) -> LazyString:
    """*text*, translated each time it is shown (for tables made at import)."""
    return flask_babel.lazy_gettext(text, **values)


def current_language() -> str:
    """The language of the current request's page ("da" outside a request)."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    locale = flask_babel.get_locale()
    return str(locale.language) if locale is not None else DEFAULT_LANGUAGE


def negotiate() -> str:
    """The request's language: ``?lang=``, the ``lang`` cookie, Accept-Language, Danish."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    for chosen in (request.args.get("lang"), request.cookies.get(COOKIE)):
        if chosen in LANGUAGES:
            return chosen
    # In the browser's order of preference, by primary subtag: "da-DK, en;q=0.8" is
    # Danish (werkzeug's best_match would take the exact "en" over "da-DK").
    for tag, quality in request.accept_languages:
        language = tag.split("-")[0].lower()
        if quality > 0 and language in LANGUAGES:
            return language
    return DEFAULT_LANGUAGE


def _locale() -> str:
    return LOCALES[negotiate()]


def catalogue_directories(app: Flask) -> list[str]:
    """The app's catalogue directory and those beside its blueprints' packages."""
    roots = [app.root_path, *(blueprint.root_path for blueprint in app.blueprints.values())]
    found: list[str] = []
    for root in roots:
        directory = os.path.join(root, CATALOGUES)
        if os.path.isdir(directory) and directory not in found:
            found.append(directory)
    return found


class _Catalogues(flask_babel.Domain):  # type: ignore[misc]  # flask_babel is untyped
    """The ``messages`` domain of the app's catalogues (see :func:`catalogue_directories`),
    looked up once the app is built, so a feature needs no line to add its own."""

    def __init__(self, app: Flask) -> None:
        super().__init__(domain=DOMAIN)
        self._app = app

    @property
    def translation_directories(self) -> list[str]:
        return catalogue_directories(self._app)


def init_app(app: Flask) -> None:
    """Flask-Babel for *app*: the catalogues, the negotiation, the template helpers."""
    babel = flask_babel.Babel()  # per app: its domain caches this app's catalogues
    babel.init_app(app, default_locale=LOCALES[DEFAULT_LANGUAGE], default_domain=DOMAIN,
                   default_timezone="UTC", locale_selector=_locale)
    babel.domain_instance = _Catalogues(app)
    app.before_request(_negotiate_again)


def _negotiate_again() -> None:
    """Forget a language chosen earlier in the same application context.

    Flask-Babel keeps the request's locale on ``g``, which lives as long as the
    application context; a server makes one per request, but a context pushed around
    several requests (the tests, a command calling the test client) would keep the
    first request's language.
    """
    g.pop("_flask_babel", None)

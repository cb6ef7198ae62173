"""The gettext catalogues (sorregistry/i18n.py): complete, compiled, current, consistent.

Each package's English catalogue must hold exactly the texts its code and templates
show (extracted here in memory with ``babel.cfg``, as ``make translations`` does), each
translated, with the same placeholders; the committed ``.mo`` must be what compiling
the ``.po`` makes; and two catalogues must not translate one text two ways, since they
are merged into one gettext domain where the last would silently win.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from sorregistry import create_app
from sorregistry.i18n import DOMAIN, catalogue_directories

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = Path("en") / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\((\w+)\)s|\{(\w+)\}")
FIX = "run `make translations` and translate what it adds"


def _directories() -> list[Path]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    return [Path(directory) for directory in catalogue_directories(app)]


DIRECTORIES = _directories()


def _catalogue(directory: Path) -> Catalog:
    with open(directory / ENGLISH / f"{DOMAIN}.po", "rb") as handle:
        return read_po(handle)


def _messages(catalogue: Catalog) -> Iterator[tuple[str | None, str, str]]:
    """(context, Danish, English) of each text (the header left out)."""
    for message in catalogue:
        if message.id:
            assert isinstance(message.id, str), f"no plural forms expected: {message.id}"
            yield message.context, message.id, str(message.string or "")


def _name(directory: Path) -> str:
    return directory.parent.name


def test_every_package_with_pages_has_a_catalogue():
    assert sorted(_name(d) for d in DIRECTORIES) == [
        "applications", "hierarchy", "notifications", "sorregistry"]


@pytest.mark.parametrize("directory", DIRECTORIES, ids=_name)
def test_the_compiled_catalogue_is_the_po_compiled(directory: Path):
    """A .mo older than its .po shows old texts: compile in memory and compare."""
    compiled = io.BytesIO()
    write_mo(compiled, _catalogue(directory), use_fuzzy=False)
    committed = (directory / ENGLISH / f"{DOMAIN}.mo").read_bytes()
    assert committed == compiled.getvalue(), f"{directory}: the .mo is stale; {FIX}"


@pytest.mark.parametrize("directory", DIRECTORIES, ids=_name)
def test_the_catalogue_holds_the_texts_of_its_code_and_templates(directory: Path):
    with open(ROOT / "babel.cfg", encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle, "babel.cfg")
    package = directory.parent
    extracted = {
        (context, message)
        for _file, _line, message, _comments, context
        in extract_from_dir(str(package), method_map, options_map)
    }
    listed = {(context, danish) for context, danish, _english in _messages(_catalogue(directory))}
    assert not extracted - listed, f"texts missing from {directory}: {FIX}"
    assert not listed - extracted, f"texts no longer used in {directory}: {FIX}"


@pytest.mark.parametrize("directory", DIRECTORIES, ids=_name)
def test_every_text_is_translated_with_its_placeholders(directory: Path):
    catalogue = _catalogue(directory)
    untranslated = [danish for _context, danish, english in _messages(catalogue) if not english]
    assert not untranslated, f"{directory}: no English for {untranslated}; {FIX}"
    fuzzy = [message.id for message in catalogue if message.id and message.fuzzy]
    assert not fuzzy, f"{directory}: fuzzy (guessed) translations to check: {fuzzy}"
    for _context, danish, english in _messages(catalogue):
        assert _placeholders(danish) == _placeholders(english), (danish, english)


def _placeholders(text: str) -> set[str]:
    return {"".join(match) for match in PLACEHOLDER.findall(text)}


def test_no_text_is_translated_two_ways():
    """The catalogues are merged: one (context, Danish text) must have one English."""
    seen: dict[tuple[str | None, str], tuple[str, str]] = {}
    for directory in DIRECTORIES:
        for context, danish, english in _messages(_catalogue(directory)):
            first = seen.setdefault((context, danish), (english, _name(directory)))
            assert first[0] == english, (
                f"{danish!r} is {first[0]!r} in {first[1]} but {english!r} in "
                f"{_name(directory)}: make them agree, or tell them apart with "
                f"pgettext(context, ...)")

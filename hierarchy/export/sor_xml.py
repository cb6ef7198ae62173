"""The register as a SOR XML export, v2.0.0 or v1.0.0, in the shape of the real files.

The reference is the real files, not the schema: the v1 schema copy cannot validate
them (its postal address part is commented out). Element names, namespaces and order
follow the v2 sample (``Sor_small.xml``) and the three v1 samples; what the samples do
not show follows the v1 schema's order, under the namespaces the benchmark's generator
uses for v2 (``sor1:`` for the v1 leaf elements). Namespace prefixes are the real
files' own. A file written here imports as the register it came from, field for field
(``hierarchy.sor_xml`` reads both versions).

v1.0.0 carries what its schema defines at each level and nothing else: no CVR, no
P-number, and on addresses no kommunekode, street code, region code or coordinates
(those are v2's); an institution (SI) has no ydernummer, specialities or activity
address in v1.

Streaming: the rows come in tree order (the export's snapshot in ``path`` order: the
format is registered with ``order="path"``), each entity is written as
it arrives and only the open ancestors' closing tags are held, so memory is flat in the
register's size. The writer makes the XML text itself (escaping every value, replacing
what XML cannot hold) rather than through lxml's incremental writer: ``etree.xmlfile``
costs a context manager per element, and at ~40 elements an entity that was 330 µs an
entity against 70 µs here (20,000 entities of a generated register, the same machine and
load) - the difference between missing and meeting 60 s for 200,000. The tests parse
every document written. A row whose parent was not written (left out by ``--on``, or
the tree broken) is skipped with its subtree, counted and logged. The feed position the
snapshot was taken at (and the cursor to follow the feed from) is named in a comment
before the root element; ``CreatedAtTime`` is when the snapshot was taken.

:func:`sor_xml_writer` gives the export registry's writer (``(rows, write, info)``) of a
version; ``hierarchy.export`` registers ``sor-xml`` (v2.0.0) and ``sor-xml-v1``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hierarchy.export.rows import Row, mappings, write_function
from hierarchy.export.snapshot import ExportInfo, ExportRow, Write, Writer
from hierarchy.export.sor_xml_vocabulary import (
    ADDRESS_CODES,
    ADDRESS_POSTAL,
    ADDRESSES,
    CONTACTS,
    CVR,
    EAN_OPTION_DETAILS,
    FLAGS,
    S1,
    STATUS,
    STREET_PARTS,
    XKOM_2006,
    Name,
    Vocabulary,
    vocabulary,
)
from hierarchy.sor_xml import street_line

if TYPE_CHECKING:
    from types import TracebackType

    from hierarchy.export.rows import Output

FORMATS = ("2.0.0", "1.0.0")
MEDIA_TYPE = "application/xml"
logger = logging.getLogger(__name__)
# Pieces of text (a tag with its value, ~40 bytes) gathered before a chunk is handed on
# (an HTTP chunk, a file write): ~100-200 KB.
CHUNK_PARTS = 4096
_TABS = ["\n" + "\t" * depth for depth in range(64)]
# Characters outside XML 1.0's Char production.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Everything a value may hold that cannot be written as it is.
_SPECIAL = re.compile('[&<>"\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\r", "&#13;"))


def escape(text: str) -> str:
    """*text* as XML character data or an attribute value."""
    if not _SPECIAL.search(text):
        return text
    # A control character typed into an application: XML cannot hold it, and one such
    # value must not end the whole export.
    text = _NOT_XML.sub("\ufffd", text)
    for character, entity in _ENTITIES:
        text = text.replace(character, entity)
    return text


@dataclass(slots=True)
class ExportStats:
    """What an export wrote, and the codes it had to leave out (with their subtrees)."""

    written: dict[str, int] = field(default_factory=lambda: {"IE": 0, "SI": 0, "OE": 0})
    skipped: list[str] = field(default_factory=list)


class _Sink:
    """Collects the text written, for the generator to hand on in chunks."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        return data


def write_sor_xml(
    rows: Iterable[Row], out: Output, info: ExportInfo, version: str = "2.0.0"
) -> ExportStats:
    """Write *rows* (in tree order) to *out* as a SOR XML export of *version*."""
    write = write_function(out)
    stats = ExportStats()
    for chunk in sor_xml_chunks(rows, info, version, stats):
        write(chunk)
    return stats


def sor_xml_writer(version: str) -> Writer:
    """The export registry's writer of SOR XML *version*: the snapshot's rows (in
    ``path`` order) through ``write``, the feed position from its ``info``."""
    if version not in FORMATS:
        raise ValueError(f"unknown SOR XML version {version!r}; known: {', '.join(FORMATS)}")

    def write_rows(rows: Iterable[ExportRow], write: Write, info: ExportInfo) -> None:
        stats = write_sor_xml(mappings(rows), write, info, version)
        if stats.skipped:
            logger.warning("SOR XML %s export at feed position %d left out %d organisations "
                           "whose parent is not in it (with their units): %s", version,
                           info.position, len(stats.skipped), " ".join(stats.skipped[:20]))

    return write_rows


def sor_xml_chunks(
    rows: Iterable[Row], info: ExportInfo, version: str = "2.0.0",
    stats: ExportStats | None = None,
) -> Iterator[bytes]:
    """The export of *rows* as successive byte chunks (for a streamed HTTP answer)."""
    if version not in FORMATS:
        raise ValueError(f"unknown SOR XML version {version!r}; known: {', '.join(FORMATS)}")
    vocab = vocabulary(version)
    stats = stats if stats is not None else ExportStats()
    sink = _Sink()
    out = _Out(sink, vocab)
    # The byte order mark the real files begin with, the declaration, the position.
    sink.parts.append('\ufeff<?xml version="1.0" encoding="utf-8"?>\n'
                      f"<!--{_position_comment(info)}-->\n")
    declarations = " ".join(
        f'xmlns{":" + prefix if prefix else ""}="{escape(uri)}"'
        for prefix, uri in vocab.nsmap.items()
    )
    root = out.qualified((vocab.own, "SorTree"))
    sink.parts.append(f"<{root} {declarations}>")
    out.leaf(1, (S1, "CreatedAtTime"), info.taken_at.isoformat())
    out.leaf(1, (S1, "SnapshotDate"), info.snapshot_date.isoformat())
    tree = _Tree(out, stats)
    for row in rows:
        tree.add(row)
        if len(sink.parts) >= CHUNK_PARTS:
            yield sink.take()
    tree.close_to(0)
    sink.parts.append(f"\n</{root}>\n")
    yield sink.take()


def _position_comment(info: ExportInfo) -> str:
    """The comment naming the feed position (and the feed's cursor for it, percent-encoded
    so that no "--" can end the comment)."""
    cursor = quote(info.cursor, safe="").replace("-", "%2D")
    return (f" SOR registry export: feed-position={info.position} feed-cursor={cursor}"
            f" snapshot-date={info.snapshot_date.isoformat()} ")


class _Tree:
    """The open entity elements, from the owner down; rows come in tree order."""

    def __init__(self, out: _Out, stats: ExportStats) -> None:
        self.out = out
        self.stats = stats
        self.open: list[Name] = []  # (SOR code, level) of the open entities
        self.codes: set[str] = set()

    def add(self, row: Row) -> None:
        level: str = row["level"]
        parent = row["parent_sor_code"]
        allowed = _PARENT_LEVELS.get(level)
        if allowed is None or (parent is None) != (level == "IE") or (
            parent is not None and parent not in self.codes
        ):
            self.stats.skipped.append(row["sor_code"])
            return
        if parent is None:
            self.close_to(0)
        else:
            while self.open[-1][0] != parent:
                self._close()
            if self.open[-1][1] not in allowed:
                self.stats.skipped.append(row["sor_code"])
                return
        depth = len(self.open)
        out = self.out
        out.append(_TABS[depth + 1] + out.start(out.vocab.containers[level]))
        self.open.append((row["sor_code"], level))
        self.codes.add(row["sor_code"])
        out.entity(depth + 3, row)
        self.stats.written[level] += 1

    def close_to(self, depth: int) -> None:
        while len(self.open) > depth:
            self._close()

    def _close(self) -> None:
        code, level = self.open.pop()
        self.codes.discard(code)
        out = self.out
        out.append(_TABS[len(self.open) + 1] + out.end(out.vocab.containers[level]))


_PARENT_LEVELS: dict[str, tuple[str, ...]] = {"IE": (), "SI": ("IE",), "OE": ("SI", "OE")}


def _flag(value: object) -> str:
    return "" if value is None else ("true" if value else "false")


class _Out:
    """Writes one entity's element, field by field, in its version's order."""

    def __init__(self, sink: _Sink, vocab: Vocabulary) -> None:
        self.append = sink.parts.append
        self.vocab = vocab
        self.prefixes = {uri: prefix for prefix, uri in vocab.nsmap.items()}
        self.tags: dict[Name, Name] = {}
        self.groups: dict[tuple[int, Name], _Group] = {}
        # Each level's field writers, in the version's order (bound once, not per entity).
        self.writers = {level: [getattr(self, name) for name in names]
                        for level, names in vocab.fields.items()}

    def qualified(self, name: Name) -> str:
        prefix = self.prefixes[name[0]]  # every namespace is declared on the root
        return f"{prefix}:{name[1]}" if prefix else name[1]

    def _tags(self, name: Name) -> Name:
        try:
            return self.tags[name]
        except KeyError:
            qualified = self.qualified(name)
            self.tags[name] = tags = (f"<{qualified}>", f"</{qualified}>")
            return tags

    def start(self, name: Name) -> str:
        return self._tags(name)[0]

    def end(self, name: Name) -> str:
        return self._tags(name)[1]

    def leaf(self, depth: int, name: Name, text: str | None,
             attrib: Mapping[str, str] | None = None) -> None:
        start, end = self.tags.get(name) or self._tags(name)
        if attrib:
            pairs = "".join(f' {key}="{escape(value)}"' for key, value in attrib.items())
            start = f"{start[:-1]}{pairs}>"
        self.append(f"{_TABS[depth]}{start}{escape(text) if text else ''}{end}")

    def group(self, depth: int, name: Name) -> _Group:
        """The element *name* at *depth*, to be used with ``with`` (one object per
        depth and name, as it holds no state of its own)."""
        try:
            return self.groups[depth, name]
        except KeyError:
            self.groups[depth, name] = group = _Group(self, depth, name)
            return group

    def entity(self, depth: int, row: Row) -> None:
        level = row["level"]
        with self.group(depth - 1, self.vocab.entities[level]):
            for write_field in self.writers[level]:
                write_field(depth, row)

    # -- the fields, each writing nothing when the row has no value for it -------------

    def sor_code(self, depth: int, row: Row) -> None:
        self.leaf(depth, (S1, "SorIdentifier"), row["sor_code"])

    def name(self, depth: int, row: Row) -> None:
        self.leaf(depth, (S1, "EntityName"), row["name"])

    def entity_type(self, depth: int, row: Row) -> None:
        if row["entity_type"] is not None:
            self.leaf(depth, self.vocab.types[row["level"]], row["entity_type"])

    def _attribute(self, depth: int, row: Row, key: str, name: Name) -> None:
        value = (row["attributes"] or {}).get(key)
        if value is not None:
            self.leaf(depth, name, value)

    def local_code(self, depth: int, row: Row) -> None:
        self._attribute(depth, row, "local_code", (S1, "LocalCode"))

    def pharmacy(self, depth: int, row: Row) -> None:
        self._attribute(depth, row, "pharmacy_identifier", (S1, "PharmacyIdentifier"))

    def shak(self, depth: int, row: Row) -> None:
        if row["shak"] is not None:
            self.leaf(depth, (S1, "ShakIdentifier"), row["shak"])

    def ydernummer(self, depth: int, row: Row) -> None:
        if row["ydernummer"] is not None:
            self.leaf(depth, (S1, "ProviderIdentifier"), row["ydernummer"])

    def ean(self, depth: int, row: Row) -> None:
        vocab = self.vocab
        if row["level"] == "IE":
            if row["gln"] is not None:
                self._ean_entity(depth, row)
            return
        with self.group(depth, vocab.ean_option):
            if row["gln"] is not None:
                self._ean_entity(depth + 1, row)
            else:
                self.leaf(depth + 1, vocab.inherited_indicator, _flag(row["gln_inherited"]))

    def _ean_entity(self, depth: int, row: Row) -> None:
        details: Mapping[str, Any] = (row["attributes"] or {}).get("ean") or {}
        vocab = self.vocab
        with self.group(depth, vocab.ean_entity):
            self.leaf(depth + 1, (S1, "EanLocationCode"), row["gln"])
            for key, name in vocab.ean_details:
                if key in details:
                    value = details[key]
                    text = _flag(value) if key in EAN_OPTION_DETAILS else value
                    self.leaf(depth + 1, name, text)
            status = details.get("SorStatus")
            if status:
                with self.group(depth + 1, (S1, "SorStatus")):
                    for element in STATUS:
                        if element in status:
                            self.leaf(depth + 2, (S1, element), status[element])

    def geography(self, depth: int, row: Row) -> None:
        attributes = row["attributes"] or {}
        relation = attributes.get("geographical_parent_relation")
        code = attributes.get("geographical_parent_sor_code")
        if relation is None and code is None:
            return
        with self.group(depth, (S1, "GeographicalParent")):
            if relation is not None:
                self.leaf(depth + 1, (S1, "GeographicalParentRelation"), relation)
            if code is not None:
                self.leaf(depth + 1, (S1, "GeographicalParentSorIdentifier"), code)

    def _address(self, depth: int, row: Row, column: str) -> None:
        address: Mapping[str, str] | None = row[column]
        if not address:
            return
        parts = dict(address)
        street = parts.pop("street", None)
        if street and street != street_line(parts):
            # Written as one line (an application's address, or a changed street):
            # the line is the street name; stale parts would contradict it.
            for key in STREET_PARTS:
                parts.pop(key, None)
            parts["street_name"] = street
        with self.group(depth, (self.vocab.own, ADDRESSES[column])):
            if any(key in parts for key, _ in ADDRESS_POSTAL):
                with self.group(depth + 1, (XKOM_2006, "AddressPostal")):
                    for key, name in ADDRESS_POSTAL:
                        if key in parts:
                            attrib = _COUNTRY_SCHEME if key == "country" else None
                            self.leaf(depth + 2, name, parts[key], attrib)
            if "stairway" in parts:
                self.leaf(depth + 1, (S1, "Stairway"), parts["stairway"])
            if self.vocab.address_codes:
                for key, name in ADDRESS_CODES:
                    if key in parts:
                        self.leaf(depth + 1, name, parts[key])

    def postal(self, depth: int, row: Row) -> None:
        self._address(depth, row, "postal_address")

    def visiting(self, depth: int, row: Row) -> None:
        self._address(depth, row, "visiting_address")

    def activity(self, depth: int, row: Row) -> None:
        self._address(depth, row, "activity_address")

    def virtual(self, depth: int, row: Row) -> None:
        present = [(name, row[key]) for key, name in CONTACTS if row[key] is not None]
        if present:
            with self.group(depth, (S1, "VirtualAddressInformation")):
                for name, value in present:
                    self.leaf(depth + 1, name, value)

    def specialities(self, depth: int, row: Row) -> None:
        specialities = row["clinical_specialities"]
        if not specialities:
            return
        collection, speciality = self.vocab.specialities
        with self.group(depth, collection):
            for item in specialities:
                with self.group(depth + 1, speciality):
                    self.leaf(depth + 2, (S1, "SpecialityCode"), item.get("code"))
                    if item.get("type") is not None:
                        self.leaf(depth + 2, (S1, "SpecialityType"), item["type"])

    def status(self, depth: int, row: Row) -> None:
        dates = [(element, row[column]) for element, column in STATUS.items()]
        if any(value is not None for _, value in dates):
            with self.group(depth, (S1, "SorStatus")):
                for element, value in dates:
                    if value is not None:
                        self.leaf(depth + 1, (S1, element), value.isoformat())

    def _codes(self, depth: int, codes: list[str] | None, name: Name) -> None:
        if codes:
            with self.group(depth, name):
                for code in codes:
                    self.leaf(depth + 1, (S1, "SorIdentifier"), code)

    def replaces(self, depth: int, row: Row) -> None:
        self._codes(depth, row["replaces"], (self.vocab.own, "ReplacesEntityCollection"))

    def replaced_by(self, depth: int, row: Row) -> None:
        self._codes(depth, row["replaced_by"], (self.vocab.own, "ReplacedByEntityCollection"))

    def cvr(self, depth: int, row: Row) -> None:
        if row["cvr"] is not None:
            self.leaf(depth, (CVR, "CVRnumberIdentifier"), row["cvr"])

    def p_number(self, depth: int, row: Row) -> None:
        if row["p_number"] is not None:
            self.leaf(depth, (CVR, "ProductionUnitIdentifier"), row["p_number"])

    def unit_information(self, depth: int, row: Row) -> None:
        attributes = row["attributes"] or {}
        present = [(element, attributes[key]) for element, key in FLAGS if key in attributes]
        if present:
            with self.group(depth, (S1, "OrganizationalUnitInformation")):
                for element, value in present:
                    self.leaf(depth + 1, (S1, element), _flag(value))

    def local_attributes(self, depth: int, row: Row) -> None:
        local: Mapping[str, str] = (row["attributes"] or {}).get("local_attributes") or {}
        if local:
            with self.group(depth, (S1, "LocalAttributeCollection")):
                for element in sorted(local):
                    self.leaf(depth + 1, (S1, element), local[element])


_COUNTRY_SCHEME = {"scheme": "iso3166-alpha2"}


class _Group:
    """An element with children: indented like the real files, closed on its own line."""

    __slots__ = ("_append", "_start", "_end")

    def __init__(self, out: _Out, depth: int, name: Name) -> None:
        self._append = out.append
        start, end = out._tags(name)
        self._start = _TABS[depth] + start
        self._end = _TABS[depth] + end

    def __enter__(self) -> None:
        self._append(self._start)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._append(self._end)


__all__ = ["FORMATS", "MEDIA_TYPE", "ExportStats", "sor_xml_chunks", "sor_xml_writer",
           "write_sor_xml"]

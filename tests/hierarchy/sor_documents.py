"""SOR XML documents compared as parsed documents, normalising only what an export may
change: namespace prefixes, whitespace, the creation time and the snapshot date."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from lxml import etree

from hierarchy.export.rows import Row, mappings
from hierarchy.export.snapshot import ExportInfo, open_snapshot
from hierarchy.export.sor_xml import write_sor_xml

# The header elements whose text an export writes anew.
FRESH = {"CreatedAtTime", "SnapshotDate"}
ENTITY_CONTAINERS = {"InstitutionOwnerEntity", "HealthInstitutionEntity",
                     "OrganizationalUnitEntity"}

Node = tuple[str, tuple[tuple[str, str], ...], str, tuple[Any, ...]]


def parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(remove_blank_text=True, remove_comments=True, remove_pis=True,
                             resolve_entities=False, no_network=True)
    return etree.fromstring(data, parser)


def canonical(element: etree._Element, sort_siblings: bool = False) -> Node:
    """The element as a tuple: {namespace}name, attributes, stripped text, children.

    Prefixes vanish (lxml names elements by namespace); so does whitespace between
    elements. With *sort_siblings*, sibling entities are put in SOR code order (the
    register writes them so; a generated file has its own order).
    """
    name = etree.QName(element).localname
    text = "" if name in FRESH else (element.text or "").strip()
    children = [canonical(child, sort_siblings) for child in element]
    if sort_siblings:
        children.sort(key=_entity_order)
    return (element.tag, tuple(sorted(element.attrib.items())), text, tuple(children))


def _entity_order(node: Node) -> tuple[int, str]:
    tag = node[0].rpartition("}")[2]
    if tag not in ENTITY_CONTAINERS:
        return (0, "")  # everything else keeps its place before the entities
    entity = node[3][0]
    code = next(child[2] for child in entity[3] if child[0].endswith("}SorIdentifier"))
    return (1, code)


def first_difference(expected: Node, actual: Node, path: str = "") -> str | None:
    """Where two canonical documents first differ, said in words (None: equal)."""
    here = f"{path}/{expected[0].rpartition('}')[2]}"
    if expected[0] != actual[0]:
        return f"{here}: element {actual[0]} where {expected[0]} was expected"
    if expected[1] != actual[1]:
        return f"{here}: attributes {actual[1]} where {expected[1]} were expected"
    if expected[2] != actual[2]:
        return f"{here}: text {actual[2]!r} where {expected[2]!r} was expected"
    for index, (a, b) in enumerate(zip(expected[3], actual[3], strict=False)):
        found = first_difference(a, b, f"{here}[{index}]")
        if found:
            return found
    if len(expected[3]) != len(actual[3]):
        return f"{here}: {len(actual[3])} children where {len(expected[3])} were expected"
    return None


def export_info(position: int, cursor: str, taken_at: datetime,
                on: date | None = None) -> ExportInfo:
    """The snapshot's description a writer is given, made up for a writer's test."""
    return ExportInfo(format="test", position=position, cursor=cursor, on=on,
                      all_history=False, count=0, taken_at=taken_at)


def register_rows(session: Any, on: date | None = None) -> Iterator[Row]:
    """The register's rows as the export's snapshot reads them (parents first), as
    mappings: on the test's session, so in its transaction."""
    return mappings(open_snapshot(session, format="test", order="path", on=on).rows())


def export(session: Any, info: ExportInfo, version: str = "2.0.0") -> bytes:
    out = io.BytesIO()
    write_sor_xml(register_rows(session), out, info, version)
    return out.getvalue()

"""SOR XML export: the real samples re-export as themselves (v1 and v2), a generated
register makes the round trip export -> import into an empty database unchanged, and the
writer copes with what a register can hold."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from hierarchy import sor_xml as reader
from hierarchy.export.sor_xml import ExportStats, sor_xml_chunks, write_sor_xml
from hierarchy.export.sor_xml_vocabulary import (
    ADDRESS_CODES,
    ADDRESS_POSTAL,
    CONTACTS,
    EAN_OPTION_DETAILS,
    FLAGS,
    STATUS,
    vocabulary,
)
from hierarchy.models import Organisation, table_of
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app
from sorregistry.extensions import db
from tests.conftest import fixture_path
from tests.hierarchy.sor_documents import (
    canonical,
    export,
    export_info,
    first_difference,
    parse,
    register_rows,
)
from tests.support.exports import generator

INFO = export_info(1234, "c-1--x", datetime(2024, 5, 1, 2, 0, tzinfo=UTC))
MALFORMED = "6984910000160091"  # the hand-made unit of Sor_small.xml, skipped by the import
# Written by the import itself, not values of the register.
IMPORT_STAMPS = {"created_at", "updated_at"}


def _expected(name: str) -> etree._Element:
    root = parse(fixture_path(name).read_bytes())
    for identifier in root.iter("{*}SorIdentifier"):
        if identifier.text == MALFORMED:
            unit = identifier.getparent()
            container = unit.getparent()
            container.getparent().remove(container)
            break
    return root


@pytest.mark.parametrize("name", ["ONE_APOTEK.xml", "ONE_PRAKSIS.xml", "ONE_SYGEHUS.xml"])
def test_real_v1_sample_reexports_as_itself(session, name):
    import_sor_file(session, fixture_path(name), actor="test")
    exported = parse(export(session, INFO, "1.0.0"))
    assert first_difference(canonical(_expected(name)), canonical(exported)) is None


def test_real_v2_sample_reexports_as_itself_less_its_malformed_entity(session):
    result = import_sor_file(session, fixture_path("Sor_small.xml"), actor="test")
    assert result.problem_count == 1
    expected = _expected("Sor_small.xml")
    assert MALFORMED not in etree.tostring(expected).decode()
    exported = parse(export(session, INFO, "2.0.0"))
    assert first_difference(canonical(expected), canonical(exported)) is None


def test_a_changed_sample_is_told_from_the_original(session):
    """The comparison the tests above rely on sees a one-letter change, an element out of
    order and a namespace changed."""
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="test")
    exported = parse(export(session, INFO, "1.0.0"))
    original = _expected("ONE_SYGEHUS.xml")
    renamed = copy.deepcopy(original)
    next(renamed.iter("{*}EntityName")).text = "Roskilde Ojenklinik"
    assert "text" in (first_difference(canonical(renamed), canonical(exported)) or "")
    reordered = copy.deepcopy(original)
    status = next(reordered.iter("{*}SorStatus"))
    status.append(status[0])  # FromDate last
    assert first_difference(canonical(reordered), canonical(exported))
    moved = copy.deepcopy(original)
    street = next(moved.iter("{*}StreetName"))
    street.tag = "{http://rep.oio.dk/ebxml/xml/schemas/dkcc/2003/02/13/}StreetName"
    assert "element" in (first_difference(canonical(moved), canonical(exported)) or "")


def test_the_export_names_its_feed_position_and_cursor(session):
    import_sor_file(session, fixture_path("ONE_PRAKSIS.xml"), actor="test")
    data = export(session, INFO)
    assert data.startswith(b"\xef\xbb\xbf<?xml")
    comment = next(node for node in etree.fromstring(data).itersiblings(preceding=True)
                   if isinstance(node, etree._Comment))
    assert "feed-position=1234" in comment.text
    # "--" cannot stand in a comment: the cursor is percent-encoded.
    assert "feed-cursor=c%2D1%2D%2Dx" in comment.text
    assert "snapshot-date=2024-05-01" in comment.text
    root = parse(data)
    assert root.findtext("{*}SnapshotDate") == "2024-05-01"
    assert root.findtext("{*}CreatedAtTime") == "2024-05-01T02:00:00+00:00"


def _table(session: Any) -> dict[str, dict[str, Any]]:
    organisations = table_of(Organisation)
    rows = session.execute(select(organisations)).mappings()
    return {row["sor_code"]: {k: v for k, v in row.items() if k not in IMPORT_STAMPS}
            for row in rows}


def _import_into_empty(url: str, path: Path) -> dict[str, dict[str, Any]]:
    other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with other.app_context():
        try:
            result = import_sor_file(db.session, path, actor="test")
            assert result.problem_count == 0
            db.session.commit()
            return _table(db.session)
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("generated") / "register.xml"
    generator().generate(path, 2000, seed=1, municipalities=1, regions=1)
    return path


def test_a_generated_register_round_trips_through_sor_xml_v2(session, generated, fresh_database,
                                                            tmp_path):
    first = import_sor_file(session, generated, actor="test")
    assert first.total == 2000 and first.problem_count == 0
    exported = tmp_path / "exported.xml"
    with exported.open("wb") as out:
        stats = write_sor_xml(register_rows(session), out, INFO)
    assert sum(stats.written.values()) == 2000 and stats.skipped == []

    original = _table(session)
    again = _import_into_empty(fresh_database, exported)
    assert again.keys() == original.keys()
    differences = [(code, column) for code, row in original.items()
                   for column, value in row.items() if again[code][column] != value]
    assert differences == []
    # What the test compares is there: successors, effective values, closed units.
    rows = original.values()
    assert sum(1 for row in rows if row["replaced_by"]) > 0
    assert sum(1 for row in rows if row["replaces"]) > 0
    assert sum(1 for row in rows if row["valid_to"] is not None) > 0
    assert sum(1 for row in rows if row["inherited"]) > 500
    assert sum(1 for row in rows if row["gln"] and row["level"] != "IE") > 0
    assert sum(1 for row in rows if row["clinical_specialities"]) > 0


def test_the_generated_file_is_reproduced_element_for_element(session, generated):
    """Everything the generator writes comes back in its place and namespace (siblings in
    SOR code order: the register does not keep a file's order of siblings)."""
    import_sor_file(session, generated, actor="test")
    expected = canonical(parse(generated.read_bytes()), sort_siblings=True)
    actual = canonical(parse(export(session, INFO)), sort_siblings=True)
    assert first_difference(expected, actual) is None


# -- the writer alone, on rows as a register can hold them ---------------------------------

def _row(code: str, level: str, parent: str | None, **values: Any) -> dict[str, Any]:
    row = {column.name: None for column in table_of(Organisation).columns}
    row.update(sor_code=code, level=level, parent_sor_code=parent, name=f"Enhed {code}",
               gln_inherited=False, path="/")
    row.update(values)
    return row


IE, SI, OE, OE2 = ("1000016001", "2000016001", "3000016001", "4000016001")


def _written(rows: list[dict[str, Any]], version: str = "2.0.0") -> etree._Element:
    return parse(b"".join(sor_xml_chunks(rows, INFO, version)))


def test_a_row_whose_parent_is_not_written_is_skipped_with_its_subtree():
    stats = ExportStats()
    rows = [_row(IE, "IE", None), _row(OE, "OE", SI), _row(OE2, "OE", OE),
            _row(SI, "SI", IE), _row("5000016001", "SI", SI)]
    data = b"".join(sor_xml_chunks(rows, INFO, "2.0.0", stats))
    root = parse(data)
    assert [e.text for e in root.iter("{*}SorIdentifier")] == [IE, SI]
    assert stats.skipped == [OE, OE2, "5000016001"]
    assert stats.written == {"IE": 1, "SI": 1, "OE": 0}


def test_every_value_is_escaped_and_what_xml_cannot_hold_is_replaced_not_fatal():
    name = "Klinik\x01 <A&B> \"æøå\" ]]> a\rb\ud800 &amp;"
    rows = [_row(IE, "IE", None, name=name, attributes={"local_code": "</sor1:LocalCode>"},
                 postal_address={"street_name": "Vej", "country": 'D"K'})]
    root = _written(rows)
    assert root.findtext(".//{*}EntityName") == (
        "Klinik\ufffd <A&B> \"æøå\" ]]> a\rb\ufffd &amp;")
    assert root.findtext(".//{*}LocalCode") == "</sor1:LocalCode>"
    assert root.find(".//{*}CountryIdentificationCode").text == 'D"K'
    assert root.find(".//{*}CountryIdentificationCode").get("scheme") == "iso3166-alpha2"


def test_an_address_typed_as_one_line_is_written_as_its_street_name():
    """An application's address is one line; a changed line outranks stale parts."""
    typed = {"street": "Nygade 3, 2. tv", "postal_code": "8000", "city": "Aarhus C"}
    changed = {"street": "Nygade 3", "street_name": "Vestergade", "building": "12",
               "postal_code": "8000", "city": "Aarhus C", "municipality_code": "0751"}
    for address in (typed, changed):
        root = _written([_row(IE, "IE", None, postal_address=address)])
        postal = root.find(".//{*}AddressPostal")
        assert postal.findtext("{*}StreetName") == address["street"]
        assert postal.find("{*}StreetBuildingIdentifier") is None
        # The import reads it back as the same line.
        assert reader.street_line({"street_name": postal.findtext("{*}StreetName")}) == (
            address["street"])


def test_v1_leaves_out_what_only_v2_carries():
    rows = [_row(IE, "IE", None, cvr="35095748", p_number="1003388394",
                 postal_address={"street_name": "Østergade", "postal_code": "9700",
                                 "municipality_code": "0810", "etrs89_easting": "557481.680"}),
            _row(SI, "SI", IE, ydernummer="019062")]
    v1 = etree.tostring(_written(rows, "1.0.0")).decode()
    v2 = etree.tostring(_written(rows, "2.0.0")).decode()
    for element in ("CVRnumberIdentifier", "ProductionUnitIdentifier", "MunicipalityCode",
                    "CoordETRS89z32EMeasure", "ProviderIdentifier"):
        assert element not in v1 and element in v2


def test_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match="unknown SOR XML version"):
        list(sor_xml_chunks([], INFO, "3.0.0"))


def test_every_value_the_import_keeps_has_its_place_in_the_export():
    address_keys = {key for key, _ in (*ADDRESS_POSTAL, *ADDRESS_CODES)} | {"stairway", "street"}
    assert set(reader.ADDRESS_PARTS.values()) | {"street"} <= address_keys
    assert set(reader.CONTACT_PARTS.values()) == {key for key, _ in CONTACTS}
    assert set(reader.STATUS_PARTS.values()) == set(STATUS.values())
    assert set(reader.FLAG_ELEMENTS.values()) == {key for _, key in FLAGS}
    for version in ("1.0.0", "2.0.0"):
        written = {key for key, _ in vocabulary(version).ean_details}
        assert set(reader.EAN_DETAILS.values()) == written
    assert EAN_OPTION_DETAILS <= set(reader.EAN_DETAILS.values())

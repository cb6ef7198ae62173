"""The SOR import fills in the other side of a replacement the export gives on one side only,
and a re-import of the same export changes nothing - on both back ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.sor_import import import_sor_file
from sorregistry.accounts.clients import create_client

OWNER = ids.make_sor_code(8000)
CLINIC = ids.make_sor_code(8001)
OTHER_OWNER = ids.make_sor_code(8500)
OTHER_CLINIC = ids.make_sor_code(8501)


def code(n: int) -> str:
    return ids.make_sor_code(8100 + n)


A, B, C, D = code(1), code(2), code(3), code(4)

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<SorTree xmlns="urn:oio:sundhedsstyrelsen:organisation:1.0.0"
         xmlns:xkom="http://rep.oio.dk/xkom.dk/xml/schemas/2005/03/15/">
  <SnapshotDate>2024-06-01</SnapshotDate>
  <InstitutionOwnerEntity>
    <InstitutionOwner>
      <SorIdentifier>{owner}</SorIdentifier>
      <EntityName>Ejer {owner}</EntityName>
      <OwnerType>550891000005100</OwnerType>
      <VirtualAddressInformation>
        <TelephoneNumberIdentifier>70000000</TelephoneNumberIdentifier>
      </VirtualAddressInformation>
      <SorStatus><FromDate>2015-01-01</FromDate><FirstFromDate>2015-01-01</FirstFromDate>
      </SorStatus>
    </InstitutionOwner>
    <HealthInstitutionEntity>
      <HealthInstitution>
        <SorIdentifier>{clinic}</SorIdentifier>
        <EntityName>Klinik {clinic}</EntityName>
        <InstitutionType>22232009</InstitutionType>
        <OptionalEanLocationCode><EntityInheritedIndicator>false</EntityInheritedIndicator>
        </OptionalEanLocationCode>
        <GeographicalParent><GeographicalParentRelation>1</GeographicalParentRelation>
        </GeographicalParent>
        <SorStatus><FromDate>2015-01-01</FromDate><FirstFromDate>2015-01-01</FirstFromDate>
        </SorStatus>
      </HealthInstitution>
"""
_UNIT = """      <OrganizationalUnitEntity>
        <OrganizationalUnit>
          <SorIdentifier>{code}</SorIdentifier>
          <EntityName>{name}</EntityName>
          <UnitType>550811000005108</UnitType>
          <OptionalEanLocationCode><EntityInheritedIndicator>false</EntityInheritedIndicator>
          </OptionalEanLocationCode>
          <GeographicalParent><GeographicalParentRelation>2</GeographicalParentRelation>
          </GeographicalParent>
          <SorStatus><FromDate>2015-01-01</FromDate>{to}<FirstFromDate>2015-01-01</FirstFromDate>
          </SorStatus>{replaces}{replaced_by}
        </OrganizationalUnit>
      </OrganizationalUnitEntity>
"""
_TAIL = """    </HealthInstitutionEntity>
  </InstitutionOwnerEntity>
</SorTree>
"""


def _codes(element: str, codes: list[str] | None) -> str:
    if not codes:
        return ""
    inner = "".join(f"<SorIdentifier>{c}</SorIdentifier>" for c in codes)
    return f"\n          <{element}>{inner}</{element}>"


def export(path: Path, units: list[dict], *, owner: str = OWNER, clinic: str = CLINIC) -> Path:
    """A v1 export: one owner, one clinic, its *units* ({code, closed?, replaces?,
    replaced_by?}) in the order given."""
    body = [_HEAD.format(owner=owner, clinic=clinic)]
    for unit in units:
        closed = unit.get("closed")
        body.append(_UNIT.format(
            code=unit["code"], name=unit.get("name", f"Enhed {unit['code'][:4]}"),
            to=f"<ToDate>{closed}</ToDate>" if closed else "",
            replaces=_codes("ReplacesEntityCollection", unit.get("replaces")),
            replaced_by=_codes("ReplacedByEntityCollection", unit.get("replaced_by")),
        ))
    body.append(_TAIL)
    path.write_text("".join(body), encoding="utf-8")
    return path


def sides(session, sor_code: str) -> tuple:
    organisation = service.get_organisation(session, sor_code)
    return organisation.replaces, organisation.replaced_by, organisation.version


def linked(result) -> int:
    return sum(result.count(level, "linked") for level in ("IE", "SI", "OE"))


def changed(result) -> int:
    return sum(result.count(level, action) for level in ("IE", "SI", "OE")
               for action in ("new", "changed", "closed", "linked"))


@pytest.mark.parametrize("order", ["predecessor first", "successor first"])
def test_replaced_by_alone_fills_in_replaces(session, tmp_path, order):
    units = [{"code": A, "closed": "2020-01-01", "replaced_by": [B]}, {"code": B}]
    if order == "successor first":
        units.reverse()
    result = import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    assert sides(session, B)[:2] == ([A], None)
    assert sides(session, A)[:2] == (None, [B])
    # Read first, B is completed as it streams (one version); read second, its side is
    # only known at the end and is written as a version of its own.
    assert linked(result) == (0 if order == "predecessor first" else 1)
    again = import_sor_file(session, export(tmp_path / "y.xml", units), actor="import")
    assert changed(again) == 0 and result.total == again.total


def test_replaces_alone_fills_in_replaced_by(session, tmp_path):
    units = [{"code": A, "closed": "2020-01-01"}, {"code": B, "closed": "2020-01-01"},
             {"code": C, "replaces": [A, B]}]
    import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    assert sides(session, A)[:2] == (None, [C])
    assert sides(session, B)[:2] == (None, [C])
    assert sides(session, C)[:2] == ([A, B], None)
    again = import_sor_file(session, export(tmp_path / "y.xml", units), actor="import")
    assert changed(again) == 0


def test_both_sides_given_add_nothing(session, tmp_path):
    units = [{"code": A, "closed": "2020-01-01", "replaced_by": [B]},
             {"code": B, "replaces": [A]}]
    result = import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    assert linked(result) == 0 and sides(session, B) == ([A], None, 1)


def test_a_link_the_export_drops_leaves_both_sides(session, tmp_path):
    with_link = [{"code": B}, {"code": A, "closed": "2020-01-01", "replaced_by": [B]}]
    import_sor_file(session, export(tmp_path / "x.xml", with_link), actor="import")
    assert sides(session, B)[:2] == ([A], None)
    without = [{"code": B}, {"code": A, "closed": "2020-01-01"}]
    result = import_sor_file(session, export(tmp_path / "y.xml", without), actor="import")
    assert sides(session, A)[:2] == (None, None)
    assert sides(session, B)[:2] == (None, None)
    assert linked(result) == 1  # B, read before the file said A had dropped it
    again = import_sor_file(session, export(tmp_path / "z.xml", without), actor="import")
    assert changed(again) == 0


def test_a_new_link_in_a_later_export_is_filled_in(session, tmp_path):
    units = [{"code": B}, {"code": A}]
    import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    merged = [{"code": B}, {"code": A, "closed": "2024-05-31", "replaced_by": [B]}]
    import_sor_file(session, export(tmp_path / "y.xml", merged), actor="import")
    replaces, _, version = sides(session, B)
    assert replaces == [A] and version == 2
    history = service.organisation_history(session, B)
    assert history[-1].source == "import" and "replacement filled in" in history[-1].reference


def test_the_other_end_outside_the_export_is_filled_in(session, tmp_path):
    elsewhere = [{"code": D}]
    import_sor_file(session, export(tmp_path / "other.xml", elsewhere, owner=OTHER_OWNER,
                                    clinic=OTHER_CLINIC), actor="import")
    units = [{"code": A, "closed": "2020-01-01", "replaced_by": [D]}]
    result = import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    assert sides(session, D) == ([A], None, 2) and linked(result) == 1
    # The other owner's next export says nothing of A: its side stays, as A still says so.
    again = import_sor_file(session, export(tmp_path / "other2.xml", elsewhere,
                                            owner=OTHER_OWNER, clinic=OTHER_CLINIC),
                            actor="import")
    assert changed(again) == 0 and sides(session, D)[0] == [A]


def test_a_code_the_register_lacks_is_kept_as_stated(session, tmp_path):
    unknown = ids.make_sor_code(8999)
    units = [{"code": A, "closed": "2020-01-01", "replaced_by": [unknown, B]}, {"code": B}]
    result = import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    assert sides(session, A)[:2] == (None, [unknown, B])
    assert sides(session, B)[:2] == ([A], None) and linked(result) == 0


def test_the_imported_chain_answers_with_its_successor(client, session, tmp_path):
    units = [{"code": A, "closed": "2019-01-01", "replaced_by": [B]},
             {"code": B, "closed": "2021-01-01", "replaced_by": [C]}, {"code": C}]
    import_sor_file(session, export(tmp_path / "x.xml", units), actor="import")
    _, token = create_client(session, "form", cvr="35095748", roles=["reporter"])
    item = client.get(f"/api/v1/organisations/{A}",
                      headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [s["sor_code"] for s in item["successors"]] == [C]
    assert sides(session, C)[0] == [B] and sides(session, B)[0] == [A]

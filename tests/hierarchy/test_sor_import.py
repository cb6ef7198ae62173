"""SOR XML import: both versions, inheritance, history, closing, and refusal of bad files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hierarchy import service, sor_import
from hierarchy.models import ImportRun, Organisation, OrganisationVersion
from hierarchy.sor_import import MassWithdrawalError, import_sor_file, import_sor_files
from hierarchy.sor_xml import SorFileError
from tests.conftest import fixture_path

SYGEHUS = fixture_path("ONE_SYGEHUS.xml")
PRAKSIS = fixture_path("ONE_PRAKSIS.xml")
APOTEK = fixture_path("ONE_APOTEK.xml")
SMALL_V2 = fixture_path("Sor_small.xml")


def _variant(tmp_path: Path, source: Path, *replacements: tuple[str, str]) -> Path:
    text = source.read_text(encoding="utf-8-sig")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    target = tmp_path / f"variant-{len(list(tmp_path.iterdir()))}-{source.name}"
    target.write_text(text, encoding="utf-8")
    return target


def _state(session) -> list[tuple]:
    organisations = session.execute(
        select(Organisation.sor_code, Organisation.version, Organisation.content_hash,
               Organisation.derived_hash, Organisation.valid_to).order_by(Organisation.sor_code)
    ).all()
    versions = session.execute(select(func.count()).select_from(OrganisationVersion)).scalar()
    runs = session.execute(select(func.count()).select_from(ImportRun)).scalar()
    return [*organisations, ("versions", versions), ("runs", runs)]


def test_v1_hospital_with_shak_and_specialities(session):
    result = import_sor_file(session, SYGEHUS, actor="test")
    assert result.format == "sor-xml-1.0.0"
    assert result.snapshot_date == date(2010, 1, 26)
    assert (result.count("IE", "new"), result.count("SI", "new"), result.count("OE", "new")) == (
        1, 1, 2)
    owner = service.get_organisation(session, "347801000016001")
    hospital = service.get_organisation(session, "347811000016004")
    section = service.get_organisation(session, "347831000016005")
    assert owner.level == "IE" and owner.ownership == "privat"
    assert hospital.shak == "2529" and hospital.entity_type == "22232009"
    assert section.shak == "2529010"
    assert section.parent_sor_code == "347821000016008"
    assert section.institution_sor_code == "347811000016004"
    assert section.owner_sor_code == "347801000016001"
    assert section.path == "/347801000016001/347811000016004/347821000016008/347831000016005/"
    assert section.depth == 3
    assert section.clinical_specialities == [{"code": "394594003", "type": "51000095001"}]
    assert section.attributes["reporting_level"] is True
    assert section.first_valid_from == date(2009, 10, 8)
    # The owner's address and contact data reach the section through inheritance.
    assert section.effective["postal_address"]["postal_code"] == "4000"
    assert section.effective["phone"] == "46361266"
    assert set(section.inherited) >= {"postal_address", "phone", "email", "website"}
    assert section.eff_postal_code == "4000"
    assert owner.inherited == []


def test_v1_practice_ydernummer_and_gln_inheritance(session):
    import_sor_file(session, PRAKSIS, actor="test")
    unit = service.get_organisation(session, "8341000016002")
    assert unit.ydernummer == "019062"
    assert unit.clinical_specialities[0]["code"] == "408443003"
    # GLN flagged as inherited: the unit uses the owner's location number.
    assert unit.gln is None and unit.effective["gln"] == "5790000141227"
    assert "gln" in unit.inherited
    assert unit.effective["fax"] == "48300109"


def test_v2_owner_with_cvr_and_coordinates(session):
    result = import_sor_file(session, SMALL_V2, actor="test")
    assert result.format == "sor-xml-2.0.0"
    owner = service.get_organisation(session, "698471000016005")
    assert owner.cvr == "35095748" and owner.gln == "5790002401473"
    assert owner.postal_address["municipality_code"] == "0810"
    assert owner.postal_address["region_code"] == "1081"
    assert owner.postal_address["street"] == "Østergade 70"
    assert owner.postal_address["etrs89_northing"] == "6347032.450"
    institution = service.get_organisation(session, "698481000016007")
    assert institution.owner_cvr == "35095748"
    assert institution.ownership == "privat"
    assert institution.email == "baadsgaardfodterapi@gmail.com"
    assert institution.effective["gln"] == "5790002401473" and "gln" in institution.inherited
    unit = service.get_organisation(session, "698491000016009")
    assert unit.effective["email"] == "baadsgaardfodterapi@gmail.com"
    assert unit.effective["visiting_address"]["city"] == "Brønderslev"
    assert unit.eff_municipality_code == "0810"


def test_invalid_entity_is_skipped_and_reported(session):
    result = import_sor_file(session, SMALL_V2, actor="test")
    assert result.problem_count == 1
    problem = result.problems[0]
    assert problem["sor_code"] == "6984910000160091"
    assert problem["line"] == 111
    assert "namespace 1000016" in problem["problems"][0]
    assert session.get(Organisation, "6984910000160091") is None
    assert result.count("OE", "skipped") == 1
    assert "line 111" in result.summary()


def test_strict_import_refuses_invalid_entities(session):
    before = _state(session)
    with pytest.raises(SorFileError, match="strict") as caught:
        import_sor_file(session, SMALL_V2, actor="test", strict=True)
    assert caught.value.line == 111
    assert _state(session) == before


@pytest.mark.parametrize("batch", [sor_import.LOOKUP_BATCH, 1])
def test_reimport_is_stable(session, monkeypatch, batch):
    # Batch 1: every row classified by a look-up of its own (import_read).
    monkeypatch.setattr(sor_import, "LOOKUP_BATCH", batch)
    import_sor_files(session, [SYGEHUS, PRAKSIS, APOTEK, SMALL_V2], actor="test")
    before = _state(session)
    again = import_sor_files(session, [SYGEHUS, PRAKSIS, APOTEK, SMALL_V2], actor="test")
    assert again.total == 13
    assert sum(c["unchanged"] for c in again.counts.values()) == 13
    after = _state(session)
    # Only the import-run log grows; no organisation, no version changes.
    assert after[:-1] == before[:-1]
    assert after[-1][1] == before[-1][1] + 1


def test_change_makes_a_version_and_history_reads_as_of(session, tmp_path):
    import_sor_file(session, SYGEHUS, actor="first import")
    first_recorded = service.get_organisation(session, "347821000016008").updated_at
    changed = _variant(
        tmp_path, SYGEHUS,
        ("Roskilde Øjenklinik, afdeling", "Roskilde Øjenklinik, Øjenafdelingen"),
    )
    result = import_sor_file(session, changed, actor="second import")
    assert result.count("OE", "changed") == 1 and result.count("OE", "unchanged") == 1
    unit = service.get_organisation(session, "347821000016008")
    assert unit.name == "Roskilde Øjenklinik, Øjenafdelingen" and unit.version == 2
    assert unit.name_search == "roskilde ojenklinik, ojenafdelingen"

    history = service.organisation_history(session, "347821000016008")
    assert [entry.version for entry in history] == [1, 2]
    assert history[1].changes == {
        "name": ("Roskilde Øjenklinik, afdeling", "Roskilde Øjenklinik, Øjenafdelingen")
    }
    assert history[1].actor == "second import" and history[1].source == "import"
    assert history[0].superseded_at == history[1].recorded_at
    assert history[1].reference.startswith("import-run:")

    then = service.get_version_as_of(session, "347821000016008", first_recorded)
    assert then.snapshot["name"] == "Roskilde Øjenklinik, afdeling"
    now = service.get_version_as_of(session, "347821000016008", datetime.now(UTC))
    assert now.version == 2
    with pytest.raises(service.NotFound):
        service.get_version_as_of(
            session, "347821000016008", first_recorded - timedelta(days=1)
        )
    register_then = service.register_as_of(session, first_recorded)
    assert len(register_then) == 4
    assert {v.snapshot["name"] for v in register_then} >= {"Roskilde Øjenklinik, afdeling"}


def test_inherited_change_updates_units_without_new_versions(session, tmp_path):
    import_sor_file(session, SYGEHUS, actor="test")
    changed = _variant(tmp_path, SYGEHUS, ("46361266", "46360000"))
    result = import_sor_file(session, changed, actor="test")
    assert result.count("IE", "changed") == 1
    assert result.count("OE", "derived") == 2 and result.count("SI", "derived") == 1
    unit = service.get_organisation(session, "347831000016005")
    assert unit.effective["phone"] == "46360000" and unit.version == 1
    assert len(service.organisation_history(session, "347831000016005")) == 1


def test_missing_entity_is_closed_not_deleted(session, tmp_path):
    import_sor_files(session, [SYGEHUS, PRAKSIS], actor="test")
    text = SYGEHUS.read_text(encoding="utf-8-sig")
    start = text.index("\t\t\t\t<OrganizationalUnitEntity>\n\t\t\t\t\t<OrganizationalUnit>\n"
                       "\t\t\t\t\t\t<SorIdentifier>347831000016005")
    end = text.index("</OrganizationalUnitEntity>", start) + len("</OrganizationalUnitEntity>")
    without = tmp_path / "without-section.xml"
    without.write_text(text[:start] + text[end:], encoding="utf-8")
    result = import_sor_file(session, without, actor="test")
    assert result.count("OE", "closed") == 1
    section = session.get(Organisation, "347831000016005")
    assert section is not None and section.valid_to == date(2010, 1, 26)
    assert section.version == 2
    history = service.organisation_history(session, "347831000016005")
    assert history[-1].changes == {"valid_to": (None, "2010-01-26")}
    assert "closed" in history[-1].reference
    assert not section.is_active_on(date(2010, 1, 26))
    assert section.is_active_on(date(2010, 1, 25))
    # The practice's owner is not in the file: by default it is left alone ...
    assert session.get(Organisation, "8341000016002").valid_to is None
    # ... and closing again changes nothing.
    again = import_sor_file(session, without, actor="test")
    assert again.count("OE", "closed") == 0


def test_full_import_closes_owners_missing_from_the_file(session):
    import_sor_files(session, [SYGEHUS, PRAKSIS], actor="test")
    result = import_sor_file(session, SYGEHUS, actor="test", scope="full")
    assert sum(c["closed"] for c in result.counts.values()) == 3
    assert session.get(Organisation, "8341000016002").valid_to == date(2010, 1, 26)
    # Reappearing in a later export reopens it, as a new version.
    reopened = import_sor_files(session, [SYGEHUS, PRAKSIS], actor="test")
    assert reopened.count("OE", "changed") == 1
    assert session.get(Organisation, "8341000016002").valid_to is None


def _open_count(session) -> int:
    return session.execute(
        select(func.count()).select_from(Organisation).where(Organisation.valid_to.is_(None))
    ).scalar_one()


def test_full_import_closing_more_than_the_share_is_refused(session):
    import_sor_files(session, [SYGEHUS, PRAKSIS], actor="test")
    before = _state(session)
    held = _open_count(session)
    with pytest.raises(MassWithdrawalError) as refused:
        import_sor_file(session, SYGEHUS, actor="test", scope="full", max_withdrawal_share=0.10)
    assert f"3 of the {held} open entities" in str(refused.value)
    assert _state(session) == before
    # A share that allows it, and the override (None), both close.
    allowed = import_sor_file(session, SYGEHUS, actor="test", scope="full",
                              max_withdrawal_share=0.5)
    assert sum(c["closed"] for c in allowed.counts.values()) == 3


def test_full_import_of_a_file_without_entities_is_refused(session, tmp_path):
    import_sor_files(session, [SYGEHUS, PRAKSIS], actor="test")
    before = _state(session)
    text = PRAKSIS.read_text(encoding="utf-8-sig")
    start = text.index("<InstitutionOwnerEntity>")
    end = text.rindex("</InstitutionOwnerEntity>") + len("</InstitutionOwnerEntity>")
    empty = tmp_path / "empty.xml"
    empty.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(MassWithdrawalError, match="no open entities at all"):
        import_sor_file(session, empty, actor="test", scope="full", max_withdrawal_share=1.0)
    assert _state(session) == before
    # Without --full, an empty export closes nothing and is harmless.
    import_sor_file(session, empty, actor="test", max_withdrawal_share=0.10)
    assert _open_count(session) == _open_in(before)


def _open_in(state: list[tuple]) -> int:
    return sum(1 for row in state if len(row) == 5 and row[4] is None)


def test_no_close_scope_only_adds_and_updates(session, tmp_path):
    import_sor_file(session, SYGEHUS, actor="test")
    result = import_sor_file(session, PRAKSIS, actor="test", scope="none")
    assert not any(c["closed"] for c in result.counts.values())


@pytest.mark.parametrize(
    "cut, message",
    [
        (2500, "not well-formed XML"),
        (40, "not well-formed XML"),
    ],
)
def test_truncated_file_is_refused_and_changes_nothing(session, tmp_path, cut, message):
    import_sor_file(session, SYGEHUS, actor="test")
    before = _state(session)
    data = SMALL_V2.read_bytes()
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(data[:cut])
    with pytest.raises(SorFileError, match=message) as caught:
        import_sor_file(session, truncated, actor="test")
    assert caught.value.line is not None and str(caught.value).startswith("line ")
    assert _state(session) == before


_LAUGHS = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))


@pytest.mark.parametrize(
    "doctype, name",
    [
        ("<!DOCTYPE SorTree>", "Roskilde Øjenklinik"),
        ('<!DOCTYPE SorTree [<!ENTITY navn "Ny klinik">]>', "&navn; Roskilde"),
        ('<!DOCTYPE SorTree [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"),
        ('<!DOCTYPE SorTree SYSTEM "http://127.0.0.1:9/sor.dtd">', "Roskilde Øjenklinik"),
        (f'<!DOCTYPE SorTree [<!ENTITY l0 "ha">{_LAUGHS}]>', "&l9;"),
    ],
    ids=["bare", "internal-entity", "external-entity", "external-dtd", "billion-laughs"],
)
def test_a_doctype_is_refused_outright_and_changes_nothing(session, tmp_path, doctype, name):
    import_sor_file(session, SYGEHUS, actor="test")
    before = _state(session)
    text = SYGEHUS.read_text(encoding="utf-8-sig")
    declaration, rest = text.split("\n", 1)
    hostile = tmp_path / "doctype.xml"
    hostile.write_text(
        f"{declaration}\n{doctype}\n"
        + rest.replace("<EntityName>Roskilde Øjenklinik<", f"<EntityName>{name}<", 1),
        encoding="utf-8",
    )
    with pytest.raises(SorFileError) as caught:
        import_sor_file(session, hostile, actor="test", scope="full")
    if "l9" in doctype:
        # libxml2 stops the flood itself, while it reads the DTD, before any element.
        assert "entity amplification" in str(caught.value)
    else:
        assert "DOCTYPE" in str(caught.value) and "is not allowed" in str(caught.value)
        assert caught.value.line == 7  # where reading stopped: the root start tag's end
    assert _state(session) == before


def test_an_undeclared_entity_is_refused_not_cut(session, tmp_path):
    before = _state(session)
    text = SYGEHUS.read_text(encoding="utf-8-sig")
    hostile = tmp_path / "entity.xml"
    hostile.write_text(text.replace("Roskilde Øjenklinik<", "Roskilde &navn; Øjenklinik<", 1),
                       encoding="utf-8")
    with pytest.raises(SorFileError, match="not well-formed XML"):
        import_sor_file(session, hostile, actor="test")
    assert _state(session) == before


def test_truncated_after_valid_entities_changes_nothing(session, tmp_path):
    data = SMALL_V2.read_bytes()
    cut = data.index(b"</HealthInstitutionEntity>")
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(data[:cut])
    with pytest.raises(SorFileError, match="line"):
        import_sor_file(session, truncated, actor="test")
    assert service.register_is_empty(session)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not well-formed|empty"),
        (b"hello", "not well-formed"),
        (b"<?xml version='1.0'?><html><body/></html>", "not a SOR XML export"),
        (b"<SorTree xmlns='urn:example'/>", "not a SOR XML export"),
        (
            b"<SorTree xmlns='urn:oio:nsi:2.0.0'><HealthInstitutionEntity/></SorTree>",
            "HealthInstitutionEntity found inside SorTree; expected IE",
        ),
    ],
)
def test_files_that_are_not_exports_are_refused(session, tmp_path, content, message):
    path = tmp_path / "bad.xml"
    path.write_bytes(content)
    with pytest.raises(SorFileError, match=message):
        import_sor_file(session, path, actor="test")
    assert service.register_is_empty(session)


def test_external_entities_are_not_resolved(session, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = SYGEHUS.read_text(encoding="utf-8-sig").replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE SorTree [<!ENTITY x SYSTEM '
        f'"file://{secret}">]>',
    ).replace("<EntityName>Roskilde Øjenklinik</EntityName>", "<EntityName>&x;</EntityName>", 1)
    path = tmp_path / "hostile.xml"
    path.write_text(hostile, encoding="utf-8")
    try:
        import_sor_file(session, path, actor="test")
    except SorFileError:
        return  # refusing the file is as good as ignoring the entity
    names = session.execute(select(Organisation.name)).scalars().all()
    assert not any("TOP-SECRET" in name for name in names)


@pytest.mark.parametrize("batch", [sor_import.LOOKUP_BATCH, 1])
def test_duplicate_sor_code_in_file_is_refused(session, tmp_path, monkeypatch, batch):
    # Batch 1: the second one is found in a later look-up than the first (import_read).
    monkeypatch.setattr(sor_import, "LOOKUP_BATCH", batch)
    duplicate = _variant(tmp_path, SYGEHUS, ("347831000016005", "347821000016008"))
    with pytest.raises(SorFileError, match="347821000016008 appears twice"):
        import_sor_file(session, duplicate, actor="test")
    assert service.register_is_empty(session)


def test_invalid_identifier_names_the_field(session, tmp_path):
    bad = _variant(tmp_path, SMALL_V2, ("35095748", "35095749"))
    result = import_sor_file(session, bad, actor="test")
    assert result.count("IE", "skipped") == 1
    assert "CVRnumberIdentifier" in result.problems[0]["problems"][0]
    # Its institutions and units cannot be placed without it.
    assert result.count("SI", "skipped") == 1
    assert service.register_is_empty(session)


def test_moving_an_institution_updates_its_subtree(session, tmp_path):
    import_sor_files(session, [PRAKSIS, APOTEK], actor="test")
    apotek = APOTEK.read_text(encoding="utf-8-sig")
    praksis = PRAKSIS.read_text(encoding="utf-8-sig")
    # Move the practice's institution under the pharmacy's owner.
    si_start = praksis.index("\t\t<HealthInstitutionEntity>")
    si_end = praksis.index("</HealthInstitutionEntity>") + len("</HealthInstitutionEntity>")
    institution = praksis[si_start:si_end]
    owner_end = apotek.index("\t</InstitutionOwnerEntity>")
    combined = apotek[:owner_end] + institution + "\n" + apotek[owner_end:]
    path = tmp_path / "moved.xml"
    path.write_text(combined, encoding="utf-8")
    result = import_sor_file(session, path, actor="test", scope="none")
    assert result.count("SI", "changed") == 1  # its parent changed
    unit = service.get_organisation(session, "8341000016002")
    apotek_owner = session.execute(
        select(Organisation).where(Organisation.level == "IE",
                                   Organisation.name != "Michael Filtenborg")
    ).scalar_one()
    assert unit.owner_sor_code == apotek_owner.sor_code
    assert unit.path.startswith(f"/{apotek_owner.sor_code}/")
    assert unit.version == 1  # moved with its institution, not changed itself

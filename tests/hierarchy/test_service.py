"""Changes made outside imports: by staff and by approved applications."""

from __future__ import annotations

from datetime import date

import pytest

from hierarchy import service
from hierarchy.sor_import import import_sor_file
from tests.conftest import fixture_path

OWNER = "347801000016001"
HOSPITAL = "347811000016004"
DEPARTMENT = "347821000016008"
SECTION = "347831000016005"


@pytest.fixture
def register(session):
    import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="import")
    return session


def test_staff_change_is_a_version_and_reaches_the_units(register):
    session = register
    service.change_organisation(
        session, OWNER, {"phone": "70000000"}, source="staff", actor="sds:anne",
        reference="ticket 17",
    )
    owner = service.get_organisation(session, OWNER)
    assert owner.version == 2 and owner.phone == "70000000"
    section = service.get_organisation(session, SECTION)
    assert section.effective["phone"] == "70000000" and section.version == 1
    history = service.organisation_history(session, OWNER)
    assert history[-1].source == "staff" and history[-1].actor == "sds:anne"
    assert history[-1].changes == {"phone": ("46361266", "70000000")}
    # The next nightly import of the unchanged export sees the difference and
    # records it as the export's version: the national export is the source of truth.
    result = import_sor_file(session, fixture_path("ONE_SYGEHUS.xml"), actor="import")
    assert result.count("IE", "changed") == 1


def test_change_that_changes_nothing_records_nothing(register):
    service.change_organisation(register, OWNER, {"phone": "46361266"}, source="staff",
                                actor="sds")
    assert len(service.organisation_history(register, OWNER)) == 1


def test_imported_and_service_fingerprints_agree(register):
    # Touch and restore: the service computes the same fingerprint as the import.
    service.change_organisation(register, DEPARTMENT, {"name": "X"}, source="staff", actor="s")
    service.change_organisation(register, DEPARTMENT, {"name": "Roskilde Øjenklinik, afdeling"},
                                source="staff", actor="s")
    result = import_sor_file(register, fixture_path("ONE_SYGEHUS.xml"), actor="import")
    assert result.count("OE", "unchanged") == 2


def test_create_under_an_owner(register):
    created = service.create_organisation(
        register, "12345671000016006",
        {"level": "SI", "parent_sor_code": OWNER, "name": "Ny klinik",
         "entity_type": "547011000005103", "valid_from": date(2026, 1, 1)},
        source="application", actor="application:12", reference="application:12",
    )
    assert created.ownership == "privat" and created.owner_sor_code == OWNER
    assert created.institution_sor_code == created.sor_code
    assert created.effective["phone"] == "46361266" and "phone" in created.inherited
    history = service.organisation_history(register, created.sor_code)
    assert history[0].source == "application"


@pytest.mark.parametrize(
    "values, field",
    [
        ({"level": "OE", "parent_sor_code": OWNER, "name": "x"}, "parent_sor_code"),
        ({"level": "SI", "name": "x"}, "parent_sor_code"),
        ({"level": "SI", "parent_sor_code": "999991000016004", "name": "x"}, "parent_sor_code"),
        ({"level": "SI", "parent_sor_code": OWNER, "name": ""}, "name"),
        ({"level": "SI", "parent_sor_code": OWNER, "name": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_creations_are_refused(register, values, field):
    with pytest.raises(service.InvalidChange) as caught:
        service.create_organisation(register, "12345671000016006", values, source="staff",
                                    actor="sds")
    assert field in caught.value.errors


def test_cannot_reuse_a_sor_code(register):
    with pytest.raises(service.InvalidChange, match="already in the register"):
        service.create_organisation(register, SECTION, {"level": "IE", "name": "x"},
                                    source="staff", actor="sds")


def test_closing_closes_the_subtree_and_keeps_history(register):
    service.close_organisation(register, HOSPITAL, date(2026, 12, 31), source="staff",
                               actor="sds")
    for code in (HOSPITAL, DEPARTMENT, SECTION):
        organisation = service.get_organisation(register, code)
        assert organisation.valid_to == date(2026, 12, 31)
        assert organisation.is_active_on(date(2026, 12, 30))
        assert not organisation.is_active_on(date(2026, 12, 31))
    assert service.get_organisation(register, OWNER).valid_to is None


def test_moving_under_itself_is_refused(register):
    with pytest.raises(service.InvalidChange, match="under itself"):
        service.change_organisation(register, DEPARTMENT, {"parent_sor_code": SECTION},
                                    source="staff", actor="sds")

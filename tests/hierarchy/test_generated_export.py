"""An unseen export of a realistic shape: one municipality and its private practices."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from hierarchy import service
from hierarchy.models import Organisation, OrganisationVersion
from hierarchy.sor_import import import_sor_file
from hierarchy.sor_xml import SorFileError
from tests.support.exports import generator


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    gen = generator()
    paths = {name: folder / f"{name}.xml" for name in ("base", "changed")}
    gen.generate(paths["base"], 1500, seed=7, municipalities=1, regions=0)
    gen.generate(paths["changed"], 1500, seed=7, municipalities=1, regions=0,
                 mutate=0.05, drop=0.02)
    return paths


def _levels(session) -> dict[str, int]:
    return dict(session.execute(
        select(Organisation.level, func.count()).group_by(Organisation.level)
    ).all())


def test_municipality_export_imports_and_reimports_stably(session, exports):
    first = import_sor_file(session, exports["base"], actor="test")
    assert first.total == 1500 and first.problem_count == 0
    assert sum(first.count(level, "new") for level in ("IE", "SI", "OE")) == 1500
    levels = _levels(session)
    assert sum(levels.values()) == 1500
    municipality = session.execute(
        select(Organisation).where(Organisation.ownership == "kommunal",
                                   Organisation.level == "IE")
    ).scalar_one()
    under = session.execute(
        select(func.count()).where(Organisation.path.like(f"{municipality.path}%"))
    ).scalar_one()
    assert under > 400
    versions = session.execute(select(func.count()).select_from(OrganisationVersion)).scalar()

    again = import_sor_file(session, exports["base"], actor="test")
    assert sum(again.count(level, "unchanged") for level in ("IE", "SI", "OE")) == 1500
    assert session.execute(
        select(func.count()).select_from(OrganisationVersion)
    ).scalar() == versions


def test_changed_export_updates_and_closes(session, exports):
    import_sor_file(session, exports["base"], actor="test")
    result = import_sor_file(session, exports["changed"], actor="test")
    changed = sum(result.count(level, "changed") for level in ("IE", "SI", "OE"))
    closed = sum(result.count(level, "closed") for level in ("IE", "SI", "OE"))
    assert changed > 30 and closed > 0
    # Nothing is deleted: every entity of the first export is still there.
    assert sum(_levels(session).values()) == 1500
    assert session.execute(
        select(func.count()).where(Organisation.valid_to.is_not(None))
    ).scalar_one() >= closed
    # Re-importing the changed export is stable too.
    again = import_sor_file(session, exports["changed"], actor="test")
    assert not any(again.count(level, action) for level in ("IE", "SI", "OE")
                   for action in ("new", "changed", "closed"))


def test_truncated_municipality_export_changes_nothing(session, exports, tmp_path):
    import_sor_file(session, exports["base"], actor="test")
    before = session.execute(
        select(Organisation.sor_code, Organisation.version, Organisation.content_hash)
        .order_by(Organisation.sor_code)
    ).all()
    data = exports["changed"].read_bytes()
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SorFileError, match=r"^line \d+: the file is not well-formed XML"):
        import_sor_file(session, truncated, actor="test")
    after = session.execute(
        select(Organisation.sor_code, Organisation.version, Organisation.content_hash)
        .order_by(Organisation.sor_code)
    ).all()
    assert after == before


def test_awkward_characters_survive_the_bulk_load(session, tmp_path):
    source = Path(__file__).parents[1] / "fixtures" / "ONE_SYGEHUS.xml"
    text = source.read_text(encoding="utf-8-sig").replace(
        "<EntityName>Roskilde Øjenklinik, afdeling</EntityName>",
        "<EntityName>Afd. \\N\t&quot;Ø&quot; \\ back&#13;slash</EntityName>",
    )
    path = tmp_path / "awkward.xml"
    path.write_text(text, encoding="utf-8")
    import_sor_file(session, path, actor="test")
    unit = service.get_organisation(session, "347821000016008")
    assert unit.name == 'Afd. \\N\t"Ø" \\ back\rslash'
    again = import_sor_file(session, path, actor="test")
    assert again.count("OE", "unchanged") == 2

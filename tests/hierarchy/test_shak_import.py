from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from hierarchy.models import ShakCode
from hierarchy.shak_format import ShakFormatError
from hierarchy.shak_import import MassWithdrawalError, import_shak_file
from tests.conftest import fixture_path

SAMPLE = fixture_path("shak_sample.TXT")
FULL_REGISTER = Path(__file__).parents[3] / "shared/data/sor/shak/SHAKCOMPLETE.TXT"


def _count(session) -> int:
    return session.execute(select(func.count()).select_from(ShakCode)).scalar_one()


def test_sample_imports_with_history(session):
    result = import_shak_file(session, SAMPLE, actor="test")
    assert result.records == _count(session) == 58
    assert result.added == 58 and result.withdrawn == 0
    rigshospitalet = session.execute(
        select(ShakCode).where(ShakCode.code == "1301")
    ).scalar_one()
    assert rigshospitalet.kind == "hospital" and rigshospitalet.text == "Rigshospitalet"
    assert rigshospitalet.valid_to is None
    sections = session.execute(
        select(ShakCode).where(ShakCode.code == "1301011").order_by(ShakCode.valid_from)
    ).scalars().all()
    assert len(sections) >= 2  # the same code with its earlier texts
    assert sections[0].valid_to is not None and sections[0].hospital == "1301"
    assert all(row.text_search == row.text_search.lower() for row in sections)


def test_reimport_reports_no_change(session):
    import_shak_file(session, SAMPLE, actor="test")
    again = import_shak_file(session, SAMPLE, actor="test")
    assert (again.added, again.changed, again.withdrawn, again.unchanged) == (0, 0, 0, 58)
    assert _count(session) == 58


def test_bad_file_changes_nothing(session, tmp_path):
    import_shak_file(session, SAMPLE, actor="test")
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.TXT"
    broken.write_bytes(b"".join(lines[:10]) + lines[10][:100] + b"\r\n" + b"".join(lines[11:]))
    with pytest.raises(ShakFormatError) as caught:
        import_shak_file(session, broken, actor="test")
    assert caught.value.line == 11
    assert _count(session) == 58


def test_two_records_for_one_code_and_start_name_both(session, tmp_path):
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    twice = tmp_path / "twice.TXT"
    twice.write_bytes(b"".join(lines[:6]) + lines[2] + b"".join(lines[6:]))
    record = lines[2].decode("iso-8859-1")
    code, start = record[3:23].strip(), record[23:31]
    with pytest.raises(ShakFormatError) as caught:
        import_shak_file(session, twice, actor="test")
    assert caught.value.line == 7
    assert str(caught.value) == (
        f"SHAK file line 7: SHAK code {code} has a second record starting "
        f"{start[:4]}-{start[4:6]}-{start[6:]} (the first is on line 3)"
    )
    assert _count(session) == 0


@pytest.mark.skipif(not FULL_REGISTER.exists(), reason="the shared data folder is not beside")
def test_the_real_register_imports(session):
    result = import_shak_file(session, FULL_REGISTER, actor="test")
    assert result.records == 19428
    assert result.counts == {"hospital": 1017, "department": 1899, "section": 16512}
    assert _count(session) == 19428


def _snapshot(session) -> list[tuple]:
    return session.execute(
        select(ShakCode.code, ShakCode.valid_from, ShakCode.text, ShakCode.import_run_id)
        .order_by(ShakCode.code, ShakCode.valid_from)
    ).all()


@pytest.mark.parametrize("content", [b"", b"\r\n", b"\n\n"], ids=["0-byte", "crlf", "blank"])
def test_empty_file_is_refused_and_changes_nothing(session, tmp_path, content):
    import_shak_file(session, SAMPLE, actor="test")
    before = _snapshot(session)
    empty = tmp_path / "SHAKCOMPLETE.TXT"
    empty.write_bytes(content)
    with pytest.raises(MassWithdrawalError, match="no SHAK records at all"):
        import_shak_file(session, empty, actor="test", max_withdrawal_share=0.10)
    assert _snapshot(session) == before


def test_empty_file_is_refused_even_by_an_empty_register(session, tmp_path):
    empty = tmp_path / "SHAKCOMPLETE.TXT"
    empty.write_bytes(b"")
    with pytest.raises(MassWithdrawalError):
        import_shak_file(session, empty, actor="test", max_withdrawal_share=1.0)


def test_excerpt_is_refused_and_changes_nothing(session, tmp_path):
    import_shak_file(session, SAMPLE, actor="test")
    before = _snapshot(session)
    excerpt = tmp_path / "excerpt.TXT"
    excerpt.write_bytes(b"".join(SAMPLE.read_bytes().splitlines(keepends=True)[:20]))
    with pytest.raises(MassWithdrawalError) as refused:
        import_shak_file(session, excerpt, actor="test", max_withdrawal_share=0.10)
    assert "38 of the 58 SHAK records" in str(refused.value)
    assert "SOR_MAX_WITHDRAWAL_SHARE=0.1" in str(refused.value)
    assert _snapshot(session) == before


def test_withdrawal_within_the_share_and_the_override(session, tmp_path):
    import_shak_file(session, SAMPLE, actor="test")
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    fewer = tmp_path / "fewer.TXT"
    fewer.write_bytes(b"".join(lines[:-5]))  # 5 of 58: under 10 %
    assert import_shak_file(session, fewer, actor="test", max_withdrawal_share=0.10).withdrawn == 5
    excerpt = tmp_path / "excerpt.TXT"
    excerpt.write_bytes(b"".join(lines[:20]))
    result = import_shak_file(session, excerpt, actor="test", max_withdrawal_share=None)
    assert result.withdrawn == 33 and _count(session) == 20

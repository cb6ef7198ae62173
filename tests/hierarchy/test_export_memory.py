"""Exports hold a chunk of rows and the open ancestors, never the register: the peak of
memory traced while exporting 20,000 organisations is that of exporting 5,000."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import insert

from hierarchy.export.csv_format import write_csv
from hierarchy.export.rows import Row
from hierarchy.export.sor_xml import write_sor_xml
from hierarchy.models import Organisation, table_of
from tests.hierarchy.sor_documents import export_info, register_rows

INFO = export_info(1, "c1", datetime(2024, 5, 1, tzinfo=UTC))
ADDRESS = {"street_name": "Østergade", "building": "70", "street": "Østergade 70",
           "postal_code": "9700", "city": "Brønderslev", "country": "DK",
           "municipality_code": "0810", "region_code": "1081"}


def _organisations(first: int, count: int) -> list[dict[str, Any]]:
    """*count* organisations in trees of ten: an owner, an institution, eight units (two
    levels deep), as the import would have stored them."""
    now = datetime.now(UTC)
    rows = []
    for tree in range(first // 10, (first + count) // 10):
        owner = f"{tree + 1000}1000016001"
        institution = f"{tree + 1000}1000016002"
        owner_path = f"/{owner}/"
        plan = [(owner, "IE", None, owner_path),
                (institution, "SI", owner, f"{owner_path}{institution}/")]
        parent_path = f"{owner_path}{institution}/"
        for unit in range(8):
            code = f"{tree + 1000}10000160{unit + 10}"
            parent = institution if unit < 4 else f"{tree + 1000}10000160{unit + 6}"
            path = (f"{parent_path}{code}/" if unit < 4
                    else f"{parent_path}{parent}/{code}/")
            plan.append((code, "OE", parent, path))
        for code, level, parent, path in plan:
            own = ADDRESS if level == "IE" else None
            rows.append({
                "sor_code": code, "level": level, "parent_sor_code": parent,
                "name": f"Plejecentret Æblehaven {code}", "entity_type": "42665001",
                "gln_inherited": level != "IE", "postal_address": own,
                "phone": "29439846" if level == "IE" else None,
                "first_valid_from": date(2018, 4, 18), "valid_from": date(2018, 7, 25),
                "path": path, "depth": path.count("/") - 2, "owner_sor_code": owner,
                "institution_sor_code": None if level == "IE" else institution,
                "ownership": "kommunal", "name_search": "plejecentret aeblehaven",
                "effective": {"postal_address": ADDRESS, "phone": "29439846"},
                "inherited": [] if level == "IE" else ["postal_address", "phone"],
                "version": 1, "content_hash": "0" * 32, "derived_hash": "0" * 32,
                "created_at": now, "updated_at": now,
            })
    return rows


def _insert(session: Any, rows: list[dict[str, Any]]) -> None:
    session.execute(insert(table_of(Organisation)), rows)


class _Discard:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def _peak(export: Callable[[Iterable[Row], _Discard], int], session: Any) -> tuple[int, int]:
    """The peak of traced memory while exporting the register, and the rows written."""
    out = _Discard()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        written = export(register_rows(session), out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.size >= written * 100
    return peak, written


EXPORTS: dict[str, Callable[[Iterable[Row], _Discard], int]] = {
    "sor-xml": lambda rows, out: sum(write_sor_xml(rows, out, INFO).written.values()),
    "csv": lambda rows, out: write_csv(rows, out, INFO, excel_safe=True).rows,
}


@pytest.mark.slow
def test_memory_is_flat_in_the_register_size(session):
    _insert(session, _organisations(0, 5000))
    small = {name: _peak(export, session) for name, export in EXPORTS.items()}
    _insert(session, _organisations(5000, 15000))
    large = {name: _peak(export, session) for name, export in EXPORTS.items()}
    for name in EXPORTS:
        (small_peak, small_rows), (large_peak, large_rows) = small[name], large[name]
        assert (small_rows, large_rows) == (5000, 20000)
        # Four times the rows, the same peak (give or take the allocator's noise).
        assert large_peak < small_peak * 1.25 + 256 * 1024, (name, small_peak, large_peak)
        assert large_peak < 16 * 1024 * 1024, (name, large_peak)
    # The bound catches a writer that keeps what it has read.
    hoarded, _ = _peak(lambda rows, out: out.write(b"x" * 100 * len(list(rows))) // 100, session)
    assert hoarded > small["sor-xml"][0] * 1.25 + 256 * 1024

"""The import writer's process-wide setting is scoped: restored however the block ends."""

from __future__ import annotations

import sys

import pytest

from hierarchy.import_writer import process_wide_switch_interval


def test_the_switch_interval_is_restored_also_on_error():
    before = sys.getswitchinterval()
    with process_wide_switch_interval(0.0002):
        assert sys.getswitchinterval() == pytest.approx(0.0002)
    assert sys.getswitchinterval() == before
    with pytest.raises(RuntimeError), process_wide_switch_interval(0.0002):
        raise RuntimeError("the import failed")
    assert sys.getswitchinterval() == before


def test_the_switch_interval_is_never_lengthened():
    before = sys.getswitchinterval()
    with process_wide_switch_interval(before * 10):
        assert sys.getswitchinterval() == before

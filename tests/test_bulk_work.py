"""sorregistry.commands.bulk_work: the collector kept to what an import makes, and put back."""

from __future__ import annotations

import gc

import pytest

from sorregistry.commands import BULK_GC_THRESHOLD, bulk_work


def test_the_collector_is_tuned_in_the_block_and_restored_after():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with bulk_work():
        # What existed before the block is out of the collector's reach...
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (max(before[0], BULK_GC_THRESHOLD), *before[1:])
        # ...and what the block makes is still collected.
        made = []
        made.append(made)  # a cycle: only the collector frees it
        assert gc.is_tracked(made)
        del made
        assert gc.collect() >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_when_the_block_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), bulk_work():
        raise RuntimeError("the import failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_objects_keeps_them_frozen():
    gc.freeze()  # as a gunicorn worker does at start (gunicorn.conf.py)
    try:
        with bulk_work():
            pass
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()

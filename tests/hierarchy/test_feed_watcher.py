"""The feed's watcher (hierarchy.feed.watcher) when its database is away: long polls time
out as they would, and the outage is logged once, without a traceback at each retry."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine

from hierarchy.feed import watcher as watcher_module
from hierarchy.feed.watcher import Watcher
from tests.support.postgres import RefusesListen, unreachable_url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_away_is_logged_once_while_a_long_poll_waits(kind, tmp_path, caplog):
    # SQLite: a database without the register's tables (every 50 ms poll fails);
    # PostgreSQL: a port nothing listens on (every reconnection attempt fails).
    url = (f"sqlite:///{tmp_path / 'empty.db'}" if kind == "sqlite"
           else unreachable_url())
    engine = create_engine(url)
    watcher = Watcher(engine)
    try:
        with caplog.at_level(logging.INFO, logger=watcher_module.LOG.name):
            assert watcher.wait_beyond(0, 1.0) is False  # nothing to hear of: timed out
            assert not watcher.running or _ends(watcher)
    finally:
        engine.dispose()
    records = [r for r in caplog.records if r.name == watcher_module.LOG.name]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)], records
    message = records[0].getMessage()
    assert message.startswith("the feed's watcher ")
    assert ("could not read the position" if kind == "sqlite" else "cannot connect") in message


def _ends(watcher: Watcher) -> bool:
    """The thread ends by itself once no request waits (within a retry's backoff)."""
    thread = watcher._thread  # noqa: SLF001
    if thread is not None:
        thread.join(6)
    return not watcher.running


def test_a_server_refusing_the_listen_is_not_asked_again_at_once(caplog):
    engine = create_engine(unreachable_url())
    watcher = Watcher(engine)
    attempts = []
    watcher._connect = lambda: attempts.append(1) or RefusesListen()  # noqa: SLF001
    try:
        with caplog.at_level(logging.INFO, logger=watcher_module.LOG.name):
            assert watcher.wait_beyond(0, 1.0) is False
            assert not watcher.running or _ends(watcher)
    finally:
        engine.dispose()
    assert 2 <= len(attempts) <= 6, len(attempts)  # 0.1, 0.2, 0.4 s apart, not a loop
    records = [r for r in caplog.records if r.name == watcher_module.LOG.name]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)], records

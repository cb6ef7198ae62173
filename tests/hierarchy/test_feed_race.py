"""Never miss, never repeat: a reader paging through the feed while writers commit, their
inserts and commits interleaved so that the later insert often commits first (the case a
sequence taken at insert time gets wrong). Run many times, on SQLite and PostgreSQL, with
real threads and real commits; the reader reads as the API does (``read_page`` on the
direct reads on PostgreSQL, the session elsewhere)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from sqlalchemy import select

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.feed.reading import read_page
from hierarchy.models import FeedEntry, RegisterCommit, RegisterVersion
from sorregistry import create_app, reads
from sorregistry.database import write_step
from sorregistry.extensions import db
from tests.support.feed import feed

RUNS = 12
WRITERS = 4
COMMITS_PER_WRITER = 3
CODES = [ids.make_sor_code(94_000_001 + n) for n in range(WRITERS)]


class Reader(threading.Thread):
    def __init__(self, app: Any, after: int) -> None:
        super().__init__(daemon=True)
        self.app, self.after = app, after
        self.positions: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.app.app_context():
                while True:
                    drained = self.stop.is_set()
                    session = db.session()
                    direct = reads.direct(session)
                    readable = direct if direct is not None else reads.SessionReads(session)
                    page = read_page(readable, self.after, 3)
                    db.session.remove()  # the next page sees what committed since
                    self.positions += [item["position"] for item in page.items]
                    self.after = page.last
                    if drained and not page.items and not page.more:
                        return
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            reads.close_connections()  # this thread's direct-read connection, before it ends


def _write(app: Any, code: str, run: int, writer: int, start: threading.Barrier) -> None:
    rng = random.Random(run * 100 + writer)
    with app.app_context():
        start.wait()
        for n in range(COMMITS_PER_WRITER):
            with write_step(db.session()) as session:
                service.change_organisation(session, code, {"name": f"R{run} W{writer} #{n}"},
                                            source="staff", actor="test")
                # Hold the inserted row uncommitted a while: others insert after and commit
                # before it.
                time.sleep(rng.uniform(0, 0.03))
            db.session.remove()


def test_a_reader_racing_committers_sees_every_entry_once_in_order(fresh_database, backend):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        owner = ids.make_sor_code(94_000_000)
        service.create_organisation(db.session, owner, {"level": "IE", "name": "Ejer"},
                                    source="staff", actor="test")
        for code in CODES:
            service.create_organisation(db.session, code, {
                "level": "SI", "parent_sor_code": owner, "name": "Enhed"},
                source="staff", actor="test")
        db.session.commit()
        db.session.remove()
    inverted = 0  # runs where a later insert committed first
    try:
        for run in range(RUNS):
            with app.app_context():
                mark = db.session.execute(select(RegisterVersion.last_position)).scalar_one()
                db.session.remove()
            reader = Reader(app, mark)
            reader.start()
            start = threading.Barrier(WRITERS)
            writers = [threading.Thread(target=_write, args=(app, code, run, n, start))
                       for n, code in enumerate(CODES)]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join(timeout=120)
            reader.stop.set()
            reader.join(timeout=120)
            assert not reader.is_alive() and reader.error is None, reader.error
            with app.app_context():
                written = [entry["position"] for entry in feed(db.session, mark)]
                db.session.remove()
            assert len(written) == WRITERS * COMMITS_PER_WRITER
            assert reader.positions == written, f"run {run}"
            with app.app_context():
                inserted = db.session.execute(
                    select(FeedEntry.id)
                    .join(RegisterCommit, RegisterCommit.id == FeedEntry.commit_id)
                    .where(RegisterCommit.first_position + FeedEntry.commit_seq - 1 > mark)
                    .order_by(RegisterCommit.first_position, FeedEntry.commit_seq)
                ).scalars().all()
                db.session.remove()
            inverted += inserted != sorted(inserted)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        reads.close_connections()
    if backend == "postgresql":  # the race was real: commit order differed from insert order
        assert inverted > 0

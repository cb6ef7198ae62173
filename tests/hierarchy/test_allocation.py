"""SOR code allocation: valid, never reused, distinct under concurrent transactions."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from hierarchy import identifiers as ids
from hierarchy import service
from sorregistry import create_app
from sorregistry.extensions import db


def test_allocated_codes_are_danish_with_a_check_digit(session):
    codes = [service.allocate_sor_code(session) for _ in range(5)]
    assert len(set(codes)) == 5
    for code in codes:
        assert ids.is_sor_code(code) and ids.sor_code_has_valid_check_digit(code)
        assert code.endswith(code[-1]) and "100001600" in code
    assert codes[0] == ids.make_sor_code(90_000_000)


def test_allocation_skips_codes_already_in_the_register(session):
    taken = ids.make_sor_code(90_000_000)
    service.create_organisation(session, taken, {"level": "IE", "name": "Imported owner"},
                                source="import", actor="test")
    assert service.allocate_sor_code(session) == ids.make_sor_code(90_000_001)


def test_twelve_concurrent_approvals_get_twelve_distinct_codes(fresh_database):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        engine = db.engine
    start = threading.Barrier(12)
    codes: list[str] = []
    errors: list[BaseException] = []

    def approve(number: int) -> None:
        try:
            # The app's session, as a request has it: it records register changes.
            with app.app_context():
                session = db.session()
                start.wait()
                code = service.allocate_sor_code(session)
                service.create_organisation(
                    session, code, {"level": "IE", "name": f"Owner {number}"},
                    source="application", actor=f"application:{number}",
                )
                session.commit()
                codes.append(code)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(codes) == len(set(codes)) == 12
    with Session(engine) as session:
        for code in codes:
            assert service.get_organisation(session, code).version == 1
    engine.dispose()

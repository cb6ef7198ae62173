"""Fixtures of the FHIR directory's tests: every /fhir answer of every test is checked as
FHIR R4B and against DK Core's invariants (tests/support/fhir.py), a small register of
real extracts, and a reader's token."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hierarchy.sor_import import import_sor_file
from sorregistry.accounts.clients import create_client
from tests.applications.helpers import build_register
from tests.conftest import fixture_path
from tests.support.fhir import ValidatingClient

REAL_EXTRACTS = ("Sor_small.xml", "ONE_PRAKSIS.xml", "ONE_SYGEHUS.xml", "ONE_APOTEK.xml")
# Units of the real extracts (tests/fixtures) the tests name.
PRIVATE_OWNER = "698471000016005"  # Baadsgaard Fodterapi, CVR 35095748, GLN, coordinates
FOOT_CLINIC = "698481000016007"  # its SI, with a visiting address of its own
FOOT_THERAPIST = "698491000016009"  # its OE, inheriting everything
PRACTICE_OWNER = "8321000016007"  # Michael Filtenborg (ONE_PRAKSIS)
PRACTICE = "8331000016009"
PRACTITIONER = "8341000016002"  # ydernummer 019062
EYE_OWNER = "347801000016001"  # Roskilde Øjenklinik (ONE_SYGEHUS): SHAK 2529 ...
EYE_HOSPITAL = "347811000016004"
EYE_DEPARTMENT = "347821000016008"
EYE_SECTION = "347831000016005"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = ValidatingClient
    return app.test_client()


@pytest.fixture
def register(session: Any) -> Any:
    """Aarhus Kommune and a private physiotherapist (the applications' small register) and
    the real extracts: a foot therapist, a GP practice, an eye hospital, a pharmacy."""
    build_register(session)
    for name in REAL_EXTRACTS:
        import_sor_file(session, fixture_path(name), actor="test")
    # Committed (in a test, a savepoint released): a refusal's rollback (the error handler
    # rolls back what a refused request did) leaves the register in place.
    session.commit()
    return session


@pytest.fixture
def reader(session: Any) -> dict[str, str]:
    _, token = create_client(session, "FHIR reader", cvr="35095748", roles=["reporter"])
    return {"Authorization": f"Bearer {token}"}


def bundle_ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """The ids of a Bundle's entries found as *mode* (``Type/id``)."""
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == mode]

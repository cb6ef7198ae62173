"""Schemathesis against the OpenAPI document: no 5xx, no response that breaks the schema.

Driven through schemathesis' Python API with Hypothesis (its pytest plugin does
not run on pytest 9): every operation of the document gets generated requests,
sent in-process to the app with a valid bearer token.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from hierarchy.shak_import import import_shak_file
from hierarchy.sor_import import import_sor_files
from sorregistry.accounts.clients import create_client
from tests.conftest import fixture_path


@pytest.fixture
def loaded(session) -> str:
    import_sor_files(
        session,
        [fixture_path(name) for name in ("ONE_SYGEHUS.xml", "ONE_PRAKSIS.xml", "Sor_small.xml")],
        actor="test",
    )
    import_shak_file(session, fixture_path("shak_sample.TXT"), actor="test")
    # Every role, so that the applications' operations are fuzzed past the
    # role check too (a municipality client for Aarhus that is also staff).
    _, token = create_client(session, "fuzz", cvr="35095748",
                             roles=["reporter", "municipality", "sds"],
                             municipality_code="0751")
    return token


def test_every_operation_conforms(app, loaded):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = {"Authorization": f"Bearer {loaded}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            # Schema-valid is not always acceptable here: a CVR must also pass
            # modulus 11, which no schema can say; such input gets a 422.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:  # name the operation in the failure
            raise AssertionError(f"{operation.label}: {exc}") from exc

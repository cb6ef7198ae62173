"""Every answer of the FHIR directory checked as FHIR: parsed by fhir.resources' R4B models,
and every Organization held to HL7 DK Core's identifier invariants, evaluated by
fhirpathpy with the profile's own FHIRPath expressions (copied below, source named).

:class:`ValidatingClient` (the test client of tests/fhir) and :class:`ValidatingApp` (a
WSGI middleware, for the tests against a running server) pass every ``/fhir`` answer to
:func:`check_answer`; :data:`SEEN` counts what they checked, so a test can tell that the
check ran on what it asked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import fhirpathpy
from fhir.resources.R4B import get_fhir_model_class
from flask.testing import FlaskClient

# --- HL7 DK Core's invariants --------------------------------------------------------------
# Source: hl7dk/dk-core (github.com/hl7dk/dk-core) at 8322003, input/fsh/. Each applies to
# Identifier.value of its identifier profile (the organisation-wide one to Organization).

# DkCoreOrganization.fsh, "dk-core-organization-mandatory-identifier"
ORGANIZATION_MANDATORY_IDENTIFIER = (
    "identifier.where(system='urn:oid:1.2.208.176.1.1' or "
    "system='https://kombit.dk/sts/organisation' or system='urn:oid:1.3.198' or "
    "system='http://cvr.dk').exists()")
# SORIdentifier.fsh, "min-digits-sor"
SOR_MIN_DIGITS = "matches('^([0-9]){11,}$')"
# CVRIdentifier.fsh, "CVR-length" and "CVR-modulus-11"
CVR_LENGTH = "matches('^[0-9]{8}$')"
CVR_MODULUS_11 = (
    "((\n    (substring(0,1).toInteger()*2)+\n    (substring(1,1).toInteger()*7)+\n"
    "    (substring(2,1).toInteger()*6)+\n    (substring(3,1).toInteger()*5)+\n"
    "    (substring(4,1).toInteger()*4)+\n    (substring(5,1).toInteger()*3)+\n"
    "    (substring(6,1).toInteger()*2)+\n    (substring(7,1).toInteger()*1)) mod(11)=0)")
# GLNIdentifier.fsh, "gln-length" and "gln-modulus-10"
GLN_LENGTH = "matches('^[0-9]{13}$')"
GLN_MODULUS_10 = (
    "((\n(10-((substring(0,1).toInteger()*1)+\n(substring(1,1).toInteger()*3)+\n"
    "(substring(2,1).toInteger()*1)+\n(substring(3,1).toInteger()*3)+\n"
    "(substring(4,1).toInteger()*1)\n+(substring(5,1).toInteger()*3)\n"
    "+(substring(6,1).toInteger()*1)\n+(substring(7,1).toInteger()*3)\n"
    "+(substring(8,1).toInteger()*1)\n+(substring(9,1).toInteger()*3)\n"
    "+(substring(10,1).toInteger()*1)\n+(substring(11,1).toInteger()*3))mod(10))mod(10))"
    "=substring(12,1).toInteger())")

# Identifier system -> the invariants of its value. GLN: DK Core 3.5.0's system and the
# earlier one this service writes (hierarchy.fhir.systems).
VALUE_INVARIANTS: dict[str, tuple[str, ...]] = {
    "urn:oid:1.2.208.176.1.1": (SOR_MIN_DIGITS,),
    "http://cvr.dk": (CVR_LENGTH, CVR_MODULUS_11),
    "https://www.gs1.org/gln": (GLN_LENGTH, GLN_MODULUS_10),
    "http://www.gs1.org/gln": (GLN_LENGTH, GLN_MODULUS_10),
}

SEEN: Counter[str] = Counter()  # resource types checked, since the process started


class InvalidFhir(AssertionError):
    """An answer that is not valid FHIR R4B, or breaks a DK Core invariant."""


def holds(context: Any, expression: str) -> bool:
    """Whether the FHIRPath *expression* is true of *context* (fhirpathpy)."""
    return fhirpathpy.evaluate(context, expression) == [True]


def check_dk_core(organization: dict[str, Any]) -> None:
    """DK Core's identifier invariants on *organization*; InvalidFhir naming the broken one."""
    if not holds(organization, ORGANIZATION_MANDATORY_IDENTIFIER):
        raise InvalidFhir(f"Organization/{organization.get('id')}: no SOR, KOMBIT or CVR id")
    for identifier in organization.get("identifier", []):
        for expression in VALUE_INVARIANTS.get(identifier.get("system", ""), ()):
            if not holds(identifier.get("value"), expression):
                raise InvalidFhir(f"Organization/{organization.get('id')}: "
                                  f"{identifier} breaks {expression!r}")


def _resources(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield resource
    for entry in resource.get("entry", []) if resource.get("resourceType") == "Bundle" else []:
        if "resource" in entry:
            yield from _resources(entry["resource"])


def check_resource(resource: Any) -> None:
    """*resource* (parsed JSON) as FHIR R4B, every Organization in it as DK Core has it."""
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise InvalidFhir(f"not a FHIR resource: {str(resource)[:200]}")
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError, an unknown resource type
        raise InvalidFhir(f"{resource['resourceType']} is not valid FHIR R4B: {exc}") from exc
    for found in _resources(resource):
        SEEN[found["resourceType"]] += 1
        if found["resourceType"] == "Organization":
            check_dk_core(found)


def check_answer(status: int, content_type: str, body: bytes) -> None:
    """A /fhir answer: its media type, and its body as FHIR (each NDJSON line too)."""
    if status == 304 or not body:
        return
    if content_type.startswith("application/fhir+ndjson"):
        for line in body.splitlines():
            check_resource(json.loads(line))
        return
    if not content_type.startswith("application/fhir+json"):
        raise InvalidFhir(f"a /fhir answer ({status}) of type {content_type!r}")
    check_resource(json.loads(body))


class ValidatingClient(FlaskClient):
    """The app's test client, every /fhir answer checked (:func:`check_answer`)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        if response.request.path.startswith("/fhir") and response.request.method != "HEAD":
            check_answer(response.status_code, response.content_type or "",
                         response.get_data())
        return response


class ValidatingApp:
    """A WSGI middleware that checks every /fhir answer of the app it wraps."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.failures: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        answer: dict[str, Any] = {}

        def remember(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)
            return start_response(status, headers, *rest)

        body = b"".join(self.app(environ, remember))
        if environ.get("PATH_INFO", "").startswith("/fhir") and environ["REQUEST_METHOD"] != "HEAD":
            try:
                check_answer(answer["status"], answer["headers"].get("Content-Type", ""), body)
            except InvalidFhir as exc:
                self.failures.append(str(exc))
        return [body]

"""Possible duplicates of an application, in the register and in other open applications.

Three signs, each its own warning with its candidates: the same ydernummer; the
same owner CVR at the same address; a similar name in the same postcode. Names
and streets are compared folded (:func:`hierarchy.text.fold`), so "Åbo" and
"Aabo" are the same.

Who sees what. The register is public, so its organisations are shown to anyone.
Another municipality's application is not: a municipality that may not read it
(:mod:`.access` answers 404) learns only that one exists - the finding says so and
carries ``elsewhere`` - never its id, reference, name, address or status. Staff see
every candidate. A draft is nobody's claim yet (it may never be sent), so another
municipality's draft is no candidate at all, for staff either: a reviewer weighs
applications that were submitted, and a municipality's drafts are its own business.
Its own drafts are candidates for the municipality (two drafts of one institution
are worth a warning).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from difflib import SequenceMatcher
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from applications.models import OPEN_STATUSES, Application
from applications.service.actor import Actor
from applications.service.findings import Finding
from hierarchy import service as register
from hierarchy.models import Organisation
from hierarchy.text import fold
from sorregistry.database import DbSession

SIMILAR_NAME = 0.85
_CANDIDATES = 200  # at most this many of each kind, per sign


def _organisation_candidate(organisation: Organisation, reason: str) -> dict[str, Any]:
    address = (organisation.effective or {}).get("postal_address") or {}
    return {
        "type": "organisation",
        "sor_code": organisation.sor_code,
        "name": organisation.name,
        "level": organisation.level,
        "ydernummer": organisation.ydernummer,
        "address": {key: address.get(key) for key in ("street", "postal_code", "city")},
        "reason": reason,
    }


def _application_candidate(other: Application, reason: str) -> dict[str, Any]:
    return {
        "type": "application",
        "id": other.id,
        "reference": other.reference,
        "institution_name": other.institution_name,
        "status": other.status,
        "municipality_code": other.municipality_code,
        "address": other.address,
        "reason": reason,
    }


def similar_names(a: str | None, b: str | None) -> bool:
    """Folded names that one contains or that differ by a few letters."""
    return similar_to(fold(b))(fold(a))


def similar_to(wanted: str) -> Callable[[str | None], bool]:
    """A test of folded names for :func:`similar_names` with the folded name *wanted*
    (the register keeps its names folded in ``name_search``): one matcher that knows
    *wanted* (what ``SequenceMatcher`` prepares for its second sequence is made once),
    the ratio's cheap upper bounds first - most of a postcode's names are nothing like
    the one applied for."""
    matcher = SequenceMatcher(None, "", wanted)

    def similar(name: str | None) -> bool:
        if not name or not wanted:
            return False
        if name == wanted or (len(name) >= 6 and name in wanted) or (
                len(wanted) >= 6 and wanted in name):
            return True
        matcher.set_seq1(name)
        return (matcher.real_quick_ratio() >= SIMILAR_NAME
                and matcher.quick_ratio() >= SIMILAR_NAME
                and matcher.ratio() >= SIMILAR_NAME)

    return similar


def _same_street(a: str | None, b: str | None) -> bool:
    return bool(a and b) and fold(a).replace(".", "") == fold(b).replace(".", "")


def _street_of(effective: dict[str, Any] | None) -> str | None:
    """The street of an organisation's effective values."""
    street: str | None = ((effective or {}).get("postal_address") or {}).get("street")
    return street


# A narrow column and a test of its value: which of the rows a sign finds are candidates.
_Keep = tuple[Any, Callable[[Any], bool]]


def _first(session: DbSession, key: Any, conditions: tuple[ColumnElement[bool], ...],
           keep: _Keep | None) -> list[Any]:
    """The rows meeting *conditions* (of *key*'s entity), the first :data:`_CANDIDATES`
    in *key*'s order; with *keep*, of those whose value passes its test - tested on
    every row that meets *conditions* (one narrow column each), not on a page of them:
    a postcode holds thousands, and the similar one may come after the first two
    hundred."""
    if keep is not None:
        column, test = keep
        keys = [found for found, value in session.execute(
            select(key, column).where(*conditions).order_by(key)) if test(value)]
        if not keys:
            return []
        conditions = (key.in_(keys[:_CANDIDATES]),)
    return list(session.execute(
        select(key.class_).where(*conditions).order_by(key).limit(_CANDIDATES)).scalars())


def find_duplicates(
    session: DbSession, application: Application, viewer: Actor | None = None
) -> list[Finding]:
    """Possible duplicates in the register and in other open applications, as warnings.

    *viewer* is who reads them: staff see every candidate; anyone else (and None) sees
    them as the applying municipality may - another municipality's applications only
    as ``elsewhere``. A change application's own target is not its duplicate.
    """
    findings: list[Finding] = []
    today = date.today()
    active = register.active_on_clause(today)
    own = application.municipality_code
    others = [Application.id != application.id, Application.status.in_(OPEN_STATUSES),
              or_(Application.status != "draft", Application.municipality_code == own)]
    exclude = application.target_sor_code
    sees_all = viewer is not None and viewer.is_staff

    def org_rows(*conditions: ColumnElement[bool], keep: _Keep | None = None
                 ) -> list[Organisation]:
        return _first(session, Organisation.sor_code, (
            *conditions, *active, Organisation.level.in_(("SI", "OE")),
            *([Organisation.sor_code != exclude] if exclude else [])), keep)

    def app_rows(*conditions: ColumnElement[bool], keep: _Keep | None = None
                 ) -> list[Application]:
        return _first(session, Application.id, (*others, *conditions), keep)

    def finding(field: str, code: str, message: str, organisations: list[dict[str, Any]],
                applications: list[Application], reason: str) -> None:
        shown = [a for a in applications if sees_all or a.municipality_code == own]
        elsewhere = len(shown) < len(applications)
        if not organisations and not applications:
            return
        if elsewhere:
            message += "; another municipality has an open application that may be the same"
        findings.append(Finding(
            field, code, message,
            organisations + [_application_candidate(a, reason) for a in shown],
            elsewhere=elsewhere,
        ))

    if application.ydernummer:
        reason = "same ydernummer"
        finding(
            "ydernummer", "duplicate_ydernummer",
            f"ydernummer {application.ydernummer} is already registered or applied for",
            [_organisation_candidate(o, reason)
             for o in org_rows(Organisation.ydernummer == application.ydernummer)],
            app_rows(Application.ydernummer == application.ydernummer), reason,
        )
    owner_cvr = application.owner_cvr if application.ownership == "privat" else (
        application.municipality_cvr
    )
    if owner_cvr and application.postal_code and application.street:
        reason = "same owner CVR and address"
        finding(
            "address", "duplicate_address",
            "the same owner already has an institution at this address",
            [_organisation_candidate(o, reason)
             for o in org_rows(Organisation.owner_cvr == owner_cvr,
                               Organisation.eff_postal_code == application.postal_code,
                               keep=(Organisation.effective, lambda effective: _same_street(
                                   _street_of(effective), application.street)))],
            app_rows(Application.owner_cvr == owner_cvr,
                     Application.postal_code == application.postal_code,
                     keep=(Application.street,
                           lambda street: _same_street(street, application.street))),
            reason,
        )
    if application.institution_name and application.postal_code:
        reason = "similar name in the same postcode"
        similar = similar_to(fold(application.institution_name))
        finding(
            "institution_name", "similar_name",
            f"an institution with a similar name exists in {application.postal_code}",
            [_organisation_candidate(o, reason)
             for o in org_rows(Organisation.eff_postal_code == application.postal_code,
                               keep=(Organisation.name_search, similar))],
            app_rows(Application.postal_code == application.postal_code,
                     keep=(Application.institution_name,
                           lambda name: similar(fold(name)))),
            reason,
        )
    return findings

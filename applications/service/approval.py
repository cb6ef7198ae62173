"""Approval: the one place an application writes into the register.

Through :mod:`hierarchy.service` only: a new SOR code, the institution (under its
owner, made too when the register has none yet) or the change to an existing one,
each recorded as a version with the application's reference. One transaction with
the application's status, its event and the notifications.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from applications.models import Application
from applications.service.access import check_reviewer, get_application
from applications.service.actor import Actor
from applications.service.cleaning import MAX_NAME, clean_reason
from applications.service.errors import InvalidTransition, NotValid
from applications.service.events import plain, record_event
from applications.service.notify import notify_approved
from applications.service.validation import CHANGE_FIELDS, validate_application
from hierarchy import service as register
from hierarchy.codes import OWNERSHIP_BY_TYPE, municipalities
from hierarchy.models import Organisation
from hierarchy.successors import merge_links
from sorregistry.database import begin_write
from sorregistry.models import utcnow

# SNOMED CT codes of the owner (IE) types an approval may create.
_OWNER_TYPE = {ownership: code for code, ownership in OWNERSHIP_BY_TYPE.items()}
MUNICIPALITY_OWNER_TYPE = _OWNER_TYPE["kommunal"]
PRIVATE_OWNER_TYPE = _OWNER_TYPE["privat"]


def approve_application(
    session: Session, actor: Actor, application_id: int, *, note: str | None = None
) -> Application:
    """Submitted → approved: allocate the SOR code and put the institution into the register.

    One transaction: the code, the institution (and its owner when new), the
    version, the application's status and event, and the notifications.
    """
    # SQLite: concurrent approvals queue instead of failing. The routes' write_step has
    # taken the lock already (then this changes nothing); a caller without one needs it.
    begin_write(session)
    application = get_application(session, actor, application_id, for_update=True)
    check_reviewer(actor, application, "approve")
    if application.status != "submitted":
        raise InvalidTransition(f"only a submitted application can be approved; this one "
                                f"is {application.status}")
    validation = validate_application(session, application)
    if not validation.ok:
        raise NotValid(validation)
    reference = application.reference
    if application.kind == "new":
        details = _create_institution(session, application, actor, reference)
    else:
        details = _apply_change(session, application, actor, reference)
    application.decided_at = utcnow()
    record_event(session, application, actor, "approved", "approved",
                 reason=clean_reason(note, required=False), details=details)
    notify_approved(session, application, details)
    session.flush()
    return application


def _owner_for(session: Session, application: Application, actor: Actor,
               reference: str) -> tuple[str, bool]:
    """The IE the new institution goes under, made when the register has none yet."""
    active = register.active_on_clause(date.today())
    owners = select(Organisation).where(Organisation.level == "IE", *active)
    if application.ownership == "kommunal":
        match = None
        if application.municipality_cvr:
            match = session.execute(
                owners.where(Organisation.ownership == "kommunal",
                             Organisation.cvr == application.municipality_cvr)
                .order_by(Organisation.sor_code).limit(1)
            ).scalar_one_or_none()
        if match is None:
            match = session.execute(
                owners.where(Organisation.ownership == "kommunal",
                             Organisation.eff_municipality_code == application.municipality_code)
                .order_by(Organisation.sor_code).limit(1)
            ).scalar_one_or_none()
        if match is not None:
            return match.sor_code, False
        name = municipalities().get(application.municipality_code, application.municipality_code)
        values: dict[str, Any] = {
            "level": "IE",
            "name": f"{name} Kommune"[:MAX_NAME],
            "entity_type": MUNICIPALITY_OWNER_TYPE,
            "cvr": application.municipality_cvr,
            "postal_address": {"municipality_code": application.municipality_code},
        }
    else:
        match = session.execute(
            owners.where(Organisation.cvr == application.owner_cvr)
            .order_by(Organisation.sor_code).limit(1)
        ).scalar_one_or_none()
        if match is not None:
            return match.sor_code, False
        values = {
            "level": "IE",
            "name": (application.owner_name or application.institution_name or "")[:MAX_NAME],
            "entity_type": PRIVATE_OWNER_TYPE,
            "cvr": application.owner_cvr,
            "postal_address": _postal_address(application),
        }
    today = date.today()
    values.update(first_valid_from=today, valid_from=today)
    code = register.allocate_sor_code(session)
    register.create_organisation(session, code, values, source="application",
                                 actor=actor.name, reference=reference)
    return code, True


def _postal_address(application: Application) -> dict[str, str]:
    address = {
        "street": application.street,
        "postal_code": application.postal_code,
        "city": application.city,
        "municipality_code": application.municipality_code,
    }
    return {key: value for key, value in address.items() if value}


def _create_institution(session: Session, application: Application, actor: Actor,
                        reference: str) -> dict[str, Any]:
    owner_code, owner_created = _owner_for(session, application, actor, reference)
    code = register.allocate_sor_code(session)
    today = date.today()
    register.create_organisation(
        session,
        code,
        {
            "level": "SI",
            "parent_sor_code": owner_code,
            "name": application.institution_name,
            "entity_type": application.institution_type,
            "ydernummer": application.ydernummer,
            "gln": application.gln,
            "shak": application.shak,
            "postal_address": _postal_address(application),
            "phone": application.phone,
            "fax": application.fax,
            "email": application.email,
            "website": application.website,
            "first_valid_from": today,
            "valid_from": today,
        },
        source="application",
        actor=actor.name,
        reference=reference,
    )
    application.sor_code = code
    return {"sor_code": code, "owner_sor_code": owner_code, "owner_created": owner_created}


def _apply_change(session: Session, application: Application, actor: Actor,
                  reference: str) -> dict[str, Any]:
    target = register.get_organisation(session, application.target_sor_code or "")
    old_address = dict(target.postal_address or {})
    changes: dict[str, Any] = {}
    shown: list[dict[str, Any]] = []

    def change(own_field: str, label_field: str, old: object, new: object) -> None:
        if new is not None and new != old:
            changes[own_field] = new
            shown.append({"field": label_field, "label": CHANGE_FIELDS[label_field],
                          "old": plain(old), "new": plain(new)})

    change("name", "institution_name", target.name, application.institution_name)
    for own_field in ("phone", "fax", "email", "website", "ydernummer", "gln", "shak"):
        change(own_field, own_field, getattr(target, own_field), getattr(application, own_field))
    change("entity_type", "institution_type", target.entity_type, application.institution_type)
    new_address = dict(old_address)
    for key in ("street", "postal_code", "city"):
        value = getattr(application, key)
        if value is not None and value != old_address.get(key):
            shown.append({"field": key, "label": CHANGE_FIELDS[key],
                          "old": old_address.get(key), "new": value})
            new_address[key] = value
    if new_address != old_address:
        changes["postal_address"] = new_address
    successors = merge_links(target.replaced_by, application.replaced_by or ())
    if set(successors or ()) != set(target.replaced_by or ()):
        # The register names the unit back on each successor (hierarchy.service).
        changes["replaced_by"] = successors
        shown.append({"field": "replaced_by", "label": CHANGE_FIELDS["replaced_by"],
                      "old": ", ".join(target.replaced_by or ()) or None,
                      "new": ", ".join(successors or ())})
    if changes:
        register.change_organisation(session, target.sor_code, changes, source="application",
                                     actor=actor.name, reference=reference)
    if application.closing_date and application.closing_date != target.valid_to:
        shown.append({"field": "closing_date", "label": CHANGE_FIELDS["closing_date"],
                      "old": plain(target.valid_to), "new": plain(application.closing_date)})
        register.close_organisation(session, target.sor_code, application.closing_date,
                                    source="application", actor=actor.name,
                                    reference=reference)
    application.sor_code = target.sor_code
    return {"sor_code": target.sor_code, "changes": shown}

"""Validation of a stored application, as SEI's "Valider" does it.

Errors (a required field missing) block submission and approval; warnings (a
possible duplicate, with the candidates) are shown and allowed. Input that can
never be right is refused earlier, when it is given (:mod:`.cleaning`).
"""

from __future__ import annotations

from datetime import date

from applications.models import Application
from applications.service.actor import Actor
from applications.service.cleaning import MAX_NAME
from applications.service.duplicates import find_duplicates
from applications.service.findings import Finding, Validation
from hierarchy.models import Organisation
from sorregistry.database import DbSession

# Fields a change application may change, with the Danish label shown to people.
CHANGE_FIELDS: dict[str, str] = {
    "institution_name": "Navn",
    "street": "Adresse",
    "postal_code": "Postnummer",
    "city": "By",
    "phone": "Telefon",
    "fax": "Fax",
    "email": "E-mail",
    "website": "Hjemmeside",
    "institution_type": "Institutionstype",
    "ydernummer": "Ydernummer",
    "gln": "GLN",
    "shak": "SHAK",
    "closing_date": "Lukkedato",
    "replaced_by": "Erstattet af",
}


def validate_application(
    session: DbSession, application: Application, viewer: Actor | None = None
) -> Validation:
    """Errors (block submission) and warnings (possible duplicates, with the candidates).

    *viewer* is who reads the result: the duplicates' candidates are shown as they may
    see them (:func:`.duplicates.find_duplicates`); None is the applying municipality.
    """
    result = Validation()
    errors, warnings = result.errors, result.warnings
    if not application.contact_email:
        errors.append(Finding("contact_email", "required",
                              "the municipality's contact email is required (receipts "
                              "and the new SOR code are sent there)"))
    if application.kind == "new":
        _validate_new(application, errors, warnings)
    else:
        _validate_change(session, application, errors, warnings)
    if application.ydernummer and application.kind == "new":
        warnings.append(Finding(
            "ydernummer", "has_ydernummer",
            "an institution with a ydernummer may report with it and may not need a SOR code",
        ))
    if application.shak and application.kind == "new":
        warnings.append(Finding(
            "shak", "has_shak",
            "an institution with a SHAK code may report with it and may not need a SOR code",
        ))
    warnings.extend(find_duplicates(session, application, viewer))
    return result


def _validate_new(application: Application, errors: list[Finding],
                  warnings: list[Finding]) -> None:
    required = {
        "institution_name": "the institution's name",
        "street": "the street address",
        "postal_code": "the postcode",
        "city": "the town",
        "phone": "a telephone number",
        "institution_type": "the institution type",
        "ownership": "whether the institution is municipally or privately owned",
    }
    for name, what in required.items():
        if not getattr(application, name):
            errors.append(Finding(name, "required", f"{what} is required"))
    if application.ownership == "privat" and not application.owner_cvr:
        errors.append(Finding("owner_cvr", "required",
                              "a privately owned institution needs its owner's CVR number"))
    if application.ownership == "kommunal" and application.owner_cvr:
        warnings.append(Finding("owner_cvr", "ignored",
                                "a municipally owned institution belongs to the municipality; "
                                "the CVR given is not used"))
    if application.target_sor_code or application.closing_date or application.replaced_by:
        warnings.append(Finding("kind", "change_fields",
                                "SOR code, closing date and successors are used by change "
                                "applications only"))


def _validate_change(session: DbSession, application: Application,
                     errors: list[Finding], warnings: list[Finding]) -> None:
    if not application.target_sor_code:
        errors.append(Finding("target_sor_code", "required",
                              "a change names the SOR code it changes"))
        return
    target = session.get(Organisation, application.target_sor_code)
    if target is None:
        errors.append(Finding("target_sor_code", "unknown",
                              f"no organisation has SOR code {application.target_sor_code}"))
        return
    today = date.today()
    if target.valid_to is not None and target.valid_to <= today:
        errors.append(Finding("target_sor_code", "closed",
                              f"{target.name} was closed on {target.valid_to.isoformat()}"))
    if target.level == "IE":
        errors.append(Finding("target_sor_code", "owner_level",
                              "an institution owner (IE) is not changed by application"))
    if not any(getattr(application, name) for name in CHANGE_FIELDS):
        errors.append(Finding("kind", "no_change", "say what is to change"))
    if application.closing_date and target.valid_from and (
        application.closing_date < target.valid_from
    ):
        errors.append(Finding("closing_date", "before_start",
                              f"{target.name} is valid only from "
                              f"{target.valid_from.isoformat()}"))
    _validate_successors(session, application, target, errors, warnings)
    if target.ownership == "kommunal" and (
        target.eff_municipality_code and target.eff_municipality_code
        != application.municipality_code
    ):
        warnings.append(Finding("target_sor_code", "other_municipality",
                                f"{target.name} is in municipality "
                                f"{target.eff_municipality_code}, not the applicant's"))
    if application.ownership and application.ownership != target.ownership:
        errors.append(Finding("ownership", "ownership_change",
                              "a change of owner needs a new SOR code: apply for a new one"))
    if application.institution_name and len(application.institution_name) > MAX_NAME:
        errors.append(Finding("institution_name", "too_long", f"at most {MAX_NAME} characters"))


def _validate_successors(session: DbSession, application: Application, target: Organisation,
                         errors: list[Finding], warnings: list[Finding]) -> None:
    """A unit "replaced by" others closes, and they are in the register; one that is not in
    force on the closing date is allowed (its own successors are followed) but said."""
    if not application.replaced_by:
        return
    if not application.closing_date:
        errors.append(Finding("closing_date", "required",
                              "a unit replaced by another closes: give the closing date"))
    for code in application.replaced_by:
        if code == target.sor_code:
            errors.append(Finding("replaced_by", "itself",
                                  f"{target.name} cannot replace itself"))
            continue
        successor = session.get(Organisation, code)
        if successor is None:
            errors.append(Finding("replaced_by", "unknown",
                                  f"no organisation has SOR code {code}"))
        elif application.closing_date and not successor.is_active_on(application.closing_date):
            warnings.append(Finding("replaced_by", "successor_not_in_force",
                                    f"{successor.name} ({code}) is not in force on "
                                    f"{application.closing_date.isoformat()}"))

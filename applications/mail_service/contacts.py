"""Who may send applications by mail: each municipality's registered contact addresses.

A registered address is also the only kind the intake ever writes back to: receipts,
notices and the application's contact come from here, never from the mail.
"""

from __future__ import annotations

from email.headerregistry import Address

from sqlalchemy import select

from applications.mail_models import MunicipalityContact
from hierarchy import identifiers as ids
from sorregistry.database import DbSession
from sorregistry.errors import DomainError


class ContactError(DomainError, ValueError):
    """A contact cannot be added as asked; the message says why."""

    status = 422


def _normalise_email(email: str) -> str:
    text = email.strip().lower()
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError):
        raise ContactError(f"{email!r} is not an email address") from None
    domain = address.domain
    if not address.username or "." not in domain or domain.startswith(".") or " " in text:
        raise ContactError(f"{email!r} is not an email address")
    return address.addr_spec


def add_contact(
    session: DbSession, municipality_code: str, email: str, *, name: str | None = None
) -> MunicipalityContact:
    """Register *email* as an address *municipality_code* may send applications from."""

    try:
        code = ids.validate_kommunekode(municipality_code)
    except ids.IdentifierError as exc:
        raise ContactError(str(exc)) from None
    address = _normalise_email(email)
    existing = session.execute(
        select(MunicipalityContact).where(MunicipalityContact.email == address)
    ).scalar_one_or_none()
    if existing is not None:
        raise ContactError(
            f"{address} is already a contact of municipality {existing.municipality_code}"
        )
    contact = MunicipalityContact(
        municipality_code=code, email=address, name=(name or "").strip() or None
    )
    session.add(contact)
    session.flush()
    return contact


def contact_for_sender(session: DbSession, sender: str | None) -> MunicipalityContact | None:
    """The registered contact with this From address (compared lower-cased), if any."""
    if not sender:
        return None
    return session.execute(
        select(MunicipalityContact).where(MunicipalityContact.email == sender.strip().lower())
    ).scalar_one_or_none()


def reply_address(session: DbSession, contact: MunicipalityContact, named: object) -> str:
    """Where replies to *contact*'s mail go: *named* (the mail's ``Kontakt-e-mail``) when
    it is a registered address of the same municipality, else the contact's own address.

    The mail itself never chooses an address the register does not already hold for
    the municipality: a forged or careless ``Kontakt-e-mail`` would otherwise receive
    the receipt and, later, the new SOR code.
    """
    if isinstance(named, str) and named.strip():
        other = contact_for_sender(session, named)
        if other is not None and other.municipality_code == contact.municipality_code:
            return other.email
    return contact.email

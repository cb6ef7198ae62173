"""Staff reading another municipality's applications is an audit event (issue 12).

A municipality sees only its own applications (the service's rule); SDS staff see all.
Each view that shows applications notes the ones of municipalities other than the
reader's own here, and the audit log records them once per request
(:func:`sorregistry.audit.note_other_municipality_read`). A reader's own municipality
is never recorded.
"""

from __future__ import annotations

from collections.abc import Iterable

from applications.models import Application
from applications.service import Actor
from sorregistry import audit


def audit_actor(actor: Actor) -> audit.Actor:
    """The audit log's actor for the workflow's: a person acts under their negative id."""
    if actor.client_id is not None and actor.client_id < 0:
        return audit.Actor("user", str(-actor.client_id), actor.name)
    client_id = None if actor.client_id is None else str(actor.client_id)
    return audit.Actor("client", client_id, actor.name)


def note_read(actor: Actor, applications: Iterable[Application]) -> None:
    """Note the *applications* shown to *actor* that belong to another municipality."""
    for application in applications:
        if application.municipality_code != actor.municipality_code:
            audit.note_other_municipality_read(
                audit_actor(actor), [application.municipality_code],
                target=f"application {application.reference}")

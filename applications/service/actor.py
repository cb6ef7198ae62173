"""Who acts on an application: an API client, a logged-in person, or the mail intake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sorregistry.security import Identity


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API client, a logged-in person, or the mail intake.

    ``municipality_code`` is set for a municipality; ``client_id`` identifies
    an API client (or person) so that nobody approves what they sent in.
    """

    name: str
    roles: tuple[str, ...]
    municipality_code: str | None = None
    cvr: str | None = None
    client_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return "sds" in self.roles

    @property
    def is_municipality(self) -> bool:
        return "municipality" in self.roles and self.municipality_code is not None

    @classmethod
    def from_client(cls, client: Identity) -> Actor:
        """The actor for an authenticated API client (``security.current_client()``)."""
        return cls(
            name=f"client:{client.id} {client.name}",
            roles=tuple(client.roles),
            municipality_code=client.municipality_code,
            cvr=client.cvr,
            client_id=client.id,
        )

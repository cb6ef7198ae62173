"""Closing what an import's files no longer contain: a closing date and a version, never a delete.

Which entities are missing depends on the import's scope: ``owners`` (the default)
closes what is missing under the owners the files contain, ``full`` everything the
files do not contain, ``none`` nothing; the database answers which
(``import_read.ReadCodes.missing``).

A file that is empty or an excerpt looks, to a "the file is the whole register"
import, like the end of most of the register: a 0-byte SHAK file would withdraw all
19,428 codes, a 200-line excerpt 19,228. :func:`refuse_mass_withdrawal` stops such an
import before anything is written (the caller's savepoint is rolled back) when it would
withdraw more than a share of what the register holds (``SOR_MAX_WITHDRAWAL_SHARE``),
or when the file holds nothing at all; the operator overrides it with
``--allow-mass-withdrawal``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from hierarchy import changes
from hierarchy.import_read import Missing
from hierarchy.models import Organisation, OrganisationVersion, table_of
from hierarchy.records import digest, own_values_from_snapshot, snapshot_json
from sorregistry.database import is_postgresql, one_of

_CHUNK = 1000


class MassWithdrawalError(Exception):
    """The import would withdraw more of the register than the configured share allows."""


def refuse_mass_withdrawal(
    *, withdrawn: int, held: int, received: int, share: float | None, what: str
) -> None:
    """Raise :class:`MassWithdrawalError` when an import that received *received* items
    would withdraw *withdrawn* of the *held* the register holds, more than *share* of
    them; an import that received nothing is refused whatever it would withdraw.
    ``share`` None is the operator's override: nothing is refused.
    """
    if share is None:
        return
    if received == 0:
        raise MassWithdrawalError(
            f"the file holds no {what} at all; an empty file is never the whole register "
            f"(it would withdraw all {held:,} held) — check the file, or pass "
            "--allow-mass-withdrawal"
        )
    if withdrawn > held * share:
        raise MassWithdrawalError(
            f"the file would withdraw {withdrawn:,} of the {held:,} {what} the register "
            f"holds ({withdrawn / held:.0%}), more than SOR_MAX_WITHDRAWAL_SHARE="
            f"{share:g} allows — is the file complete? Pass --allow-mass-withdrawal "
            "if this is meant"
        )


@dataclass(frozen=True, slots=True)
class Closed:
    """One entity closed: its new version and the canonical JSON of its own values."""

    sor_code: str
    version: int
    snapshot: str
    level: str


def close_missing(
    connection: Connection,
    missing: Sequence[Missing],
    close_date: date,
    now: datetime,
) -> Iterator[Closed]:
    """Close the *missing* entities (``ReadCodes.missing``) as of *close_date* (or their
    start, if later).

    Updates each organisation and its narrow search row; yields what the caller records
    as the new version of each (``hierarchy.changes``).
    """
    versions = table_of(OrganisationVersion)
    organisations = table_of(Organisation)
    postgresql = is_postgresql(connection)
    for start in range(0, len(missing), _CHUNK):
        held = {entry.sor_code: entry for entry in missing[start : start + _CHUNK]}
        current = connection.execute(
            select(versions.c.sor_code, versions.c.snapshot).where(
                one_of(versions.c.sor_code, held, postgresql=postgresql),
                versions.c.superseded_at.is_(None),
            )
        ).all()
        closed: list[Closed] = []
        for sor_code, snapshot in current:
            own = own_values_from_snapshot(snapshot)
            closing_day = close_date
            valid_from = own["valid_from"]
            if valid_from and valid_from > closing_day:
                closing_day = valid_from
            new_json = snapshot_json(dict(own, valid_to=closing_day))
            version = held[sor_code].version + 1
            connection.execute(
                update(organisations)
                .where(organisations.c.sor_code == sor_code)
                .values(
                    valid_to=closing_day,
                    version=version,
                    content_hash=digest(new_json),
                    updated_at=now,
                )
            )
            closed.append(Closed(sor_code, version, new_json.decode(), held[sor_code].level))
        changes.sync_names(connection, [entry.sor_code for entry in closed])
        yield from closed


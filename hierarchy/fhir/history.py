"""Versions as FHIR sees them: read, vread, and history (ITI-91) on the register's versions.

A unit's FHIR version is the register's (``organisation_versions``: one row per state of
its own values). The current version is read from the unit's row; an older one is rebuilt
from its snapshot, its inherited values taken from its ancestors as the register held
them when it was recorded (``hierarchy.asof.version_as_recorded``, the rule of the reads
as of an instant), so a vread shows the resource as it was. A Location's versions are
its unit's, from the first that had one.

History entries are PUTs, but a unit's first version (its creation) is a POST; a closure
is a version like any other, with ``active=false`` once the closing date has come. The
register deletes nothing, so there are no DELETEs.

**The type-level history** (``GET /fhir/Organization/_history?_since=``) pages through
the versions recorded since the instant in commit order - by their feed positions
(``hierarchy.changes``: a version's position is its commit's first position plus its
number within the commit) - so that a ``next`` link also reaches what is committed while
the client pages, a transaction that committed late included: positions are taken at
commit, under the lock the next committer waits for, so none appears below one a page
has shown. The opaque token holds the position of the last entry shown; the change
feed (issue 13) gives its entries the same positions. A page reads windows of positions,
(after, after + n]: the commits whose first position lies in the window or holds its
start (``register_commits``' unique index), and of each the versions numbered within the
window (a range of the unique index on ``commit_id, commit_seq``, migration 0015) - however
large a commit (an import's 200,000 versions), a window reads at most n rows.

**A window is one statement.** A version's feed entry (``feed_entries``, same commit and
number) shows the unit as it stood when the version was recorded (its item) - its effective
values under its ancestors of that moment, what :func:`version_as_recorded` rebuilds
from the snapshot one version at a time, one query per ancestor level - so the window
reads each version's entry with it (the unique index on ``commit_id, commit_seq`` again)
and the resources are made from those items: at 20,000 units (in one process, load 8) a
page of 500 since the import took 304 ms before, 130 ms after (the old read also built a
501st page's worth to learn whether a next page follows; now it reads one version more).
Only a version without an entry - recorded
before the feed (migration 0016 gave entries to the versions current then) - is rebuilt
from its snapshot. Every history entry shows its version as recorded, the current one
too (its ``meta.lastUpdated`` is the version's recording). Each entry is serialised as
it is made (``hierarchy.fhir.bundles``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, cast

import orjson
from sqlalchemy import BigInteger, and_, bindparam, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from hierarchy.asof import version_as_recorded
from hierarchy.changes import CHANGE_POSITION
from hierarchy.feed.items import organisation_columns
from hierarchy.fhir import bundles
from hierarchy.fhir.outcome import NotFound
from hierarchy.fhir.parameters import ResourceType
from hierarchy.fhir.resources import (
    Resource,
    UnitRow,
    has_location,
    instant,
    location,
    organization,
)
from hierarchy.fhir.searching import units_by_code
from hierarchy.models import FeedEntry, OrganisationVersion, RegisterCommit, RegisterVersion
from sorregistry.models import UTCDateTime
from sorregistry.reads import reads


def resource_of(kind: ResourceType, unit: UnitRow, day: date) -> Resource | None:
    """The resource of *kind* the unit has (None: a unit without a Location)."""
    if kind == "Organization":
        return organization(unit, day)
    return location(unit, day) if has_location(unit) else None


def current(session: Session, kind: ResourceType, code: str, day: date) -> Resource:
    """``GET /fhir/{kind}/{code}``: the resource now; NotFound when there is none."""
    unit = units_by_code(session, [code]).get(code)
    found = resource_of(kind, unit, day) if unit is not None else None
    if found is None:
        raise NotFound(f"no {kind} has the id {code!r}")
    return found


def _versions(session: Session, code: str) -> list[OrganisationVersion]:
    return list(session.execute(
        select(OrganisationVersion).where(OrganisationVersion.sor_code == code)
        .order_by(OrganisationVersion.version)).scalars())


def _unit_of(session: Session, version: OrganisationVersion,
             now: dict[str, UnitRow]) -> UnitRow:
    unit = now.get(version.sor_code)
    if unit is not None and unit.version == version.version:
        return unit  # the current version: its row, with what it inherits now
    return version_as_recorded(session, version.sor_code, version.version,
                               version.recorded_at, version.snapshot)


def versioned(session: Session, kind: ResourceType, code: str,
              day: date) -> list[tuple[int, Resource, bool]]:
    """(version, resource, created) of every version of *code* that had a resource of
    *kind*, oldest first; *created* marks the first. NotFound when there is none."""
    now = units_by_code(session, [code])
    found: list[tuple[int, Resource, bool]] = []
    for version in _versions(session, code):
        resource = resource_of(kind, _unit_of(session, version, now), day)
        if resource is not None:
            found.append((version.version, resource, not found))
    if not found:
        raise NotFound(f"no {kind} has the id {code!r}")
    return found


def version_of(session: Session, kind: ResourceType, code: str, version_id: str,
               day: date) -> Resource:
    """``GET /fhir/{kind}/{code}/_history/{version_id}``."""
    for number, resource, _ in versioned(session, kind, code, day):
        if str(number) == version_id:
            return resource
    raise NotFound(f"{kind}/{code} has no version {version_id!r}")


def history_entry(base: str, resource: Resource, created: bool) -> bytes:
    """A history Bundle's entry of *resource*, serialised."""
    kind, code = resource["resourceType"], resource["id"]
    meta = resource["meta"]
    return orjson.dumps({
        "fullUrl": f"{base}/{kind}/{code}",
        "resource": resource,
        "request": {"method": "POST" if created else "PUT",
                    "url": kind if created else f"{kind}/{code}"},
        "response": {"status": "201 Created" if created else "200 OK",
                     "etag": f'W/"{meta["versionId"]}"', "lastModified": meta["lastUpdated"]},
    })


def instance_history(session: Session, kind: ResourceType, code: str, since: datetime | None,
                     base: str, day: date) -> bytes:
    """``GET /fhir/{kind}/{code}/_history``: every version, newest first (FHIR's order)."""
    found = versioned(session, kind, code, day)
    if since is not None:
        found = [(n, r, c) for n, r, c in found if r["meta"]["lastUpdated"] >= instant(since)]
    entries = [history_entry(base, resource, created) for _, resource, created in reversed(found)]
    return bundles.bundle_bytes("history", [("self", f"{base}/{kind}/{code}/_history")],
                                entries, len(entries))




def _own(snapshot: Any, name: str) -> Any:
    """The version's *snapshot* holds its own *name* (neither missing nor JSON null)."""
    return snapshot[name].as_string().is_not(None)


def _window_statement(lateral: bool) -> Any:
    """The versions of a window of positions with their entries, in position order.

    On PostgreSQL each commit's versions are a LATERAL subquery with a LIMIT: without it
    the planner, which cannot see how few versions the bounds on ``commit_seq`` leave,
    hash-joined a parallel scan of every version (240 ms a window at 200,000, one
    commit); with it, a range of the unique index (16-46 ms). SQLite has no LATERAL: the
    plain join, which its planner serves from the same index.
    """
    commits = aliased(RegisterCommit, name="c")
    before = aliased(RegisterCommit, name="before")
    after = bindparam("after", type_=BigInteger)
    through = bindparam("through", type_=BigInteger)
    # The commit holding position after + 1 (0: before the first).
    start = (select(func.coalesce(func.max(before.first_position), 0))
             .where(before.first_position <= after + 1).scalar_subquery())
    table = OrganisationVersion.__table__
    # Both bounds on commit_seq: each commit's versions are a range of its index.
    in_window = and_(table.c.commit_id == commits.id,
                     table.c.commit_seq > after - commits.first_position + 1,
                     table.c.commit_seq <= through - commits.first_position + 1)
    if lateral:
        versions: Any = (select(table).where(in_window).order_by(table.c.commit_seq)
                         .limit(bindparam("window", type_=BigInteger)).lateral("v"))
        joined = select().select_from(commits).join(versions, true())
    else:
        versions = table
        joined = select().select_from(commits).join(versions, in_window)
    v = versions.c
    position = (commits.first_position + v.commit_seq - 1).label("position")
    return (
        joined.add_columns(
            v.id.label("version_row"), v.sor_code, v.version, v.recorded_at, position,
            FeedEntry.id.label("entry"), FeedEntry.item,
            or_(_own(v.snapshot, "visiting_address"),
                _own(v.snapshot, "postal_address")).label("own_address"))
        .outerjoin(FeedEntry, and_(FeedEntry.commit_id == v.commit_id,
                                   FeedEntry.commit_seq == v.commit_seq))
        .where(commits.first_position >= start, commits.first_position <= through)
        .order_by(commits.first_position, v.commit_seq)
    )


_WINDOWS = {postgresql: _window_statement(postgresql) for postgresql in (False, True)}
_LAST_POSITION = select(RegisterVersion.last_position).where(RegisterVersion.name == "register")


def _recorded(row: Any) -> UnitRow:
    """A version as its feed entry's item shows it, read as a search row: the
    organisation's columns from the item, the version's number, its recording as
    ``updated_at``, and whether the version gave an address of its own."""
    values = organisation_columns(orjson.loads(row.item)["organisation"])
    values.update(sor_code=row.sor_code, version=row.version, updated_at=row.recorded_at,
                  own_address=row.own_address)
    return cast(UnitRow, SimpleNamespace(**values))


_FIRST_SINCE = (select(func.min(CHANGE_POSITION))
                .select_from(OrganisationVersion)
                .join(RegisterCommit, RegisterCommit.id == OrganisationVersion.commit_id)
                .where(OrganisationVersion.recorded_at >= bindparam("since",
                                                                    type_=UTCDateTime)))


def _first_since(session: Session, since: datetime) -> int:
    """The position before the first version recorded at or after *since*."""
    read = reads(session)
    first = read.scalar(_FIRST_SINCE, {"since": since})
    return int(first) - 1 if first is not None else int(read.scalar(_LAST_POSITION, {}) or 0)


def _recorded_after(session: Session, since: datetime | None, after: int,
                    batch: int) -> list[Any]:
    """Up to *batch* versions after position *after* (and recorded since *since*), in
    position order, each with its entry's columns; fewer only when no more are committed."""
    read = reads(session)
    postgresql = session.get_bind().dialect.name == "postgresql"
    last = int(read.scalar(_LAST_POSITION, {}) or 0)
    found: list[Any] = []
    while len(found) < batch and after < last:
        through = after + batch - len(found)
        params = {"after": after, "through": through}
        if postgresql:
            params["window"] = through - after
        found += [row for row in read.rows(_WINDOWS[postgresql], params)
                  if since is None or row.recorded_at >= since]
        after = through
    return found


def _unit(session: Session, row: Any) -> UnitRow:
    """The unit as the version *row* showed it: from its entry, else from its snapshot."""
    if row.entry is not None:
        return _recorded(row)
    version = session.get_one(OrganisationVersion, row.version_row)
    return version_as_recorded(session, version.sor_code, version.version,
                               version.recorded_at, version.snapshot)


def _type_entries(session: Session, kind: ResourceType, since: datetime | None, after: int,
                  day: date, batch: int) -> Iterator[tuple[int, Resource, bool]]:
    """(position, resource, created) of every version since *since* after position *after*,
    read *batch* versions at a time."""
    while True:
        versions = _recorded_after(session, since, after, batch)
        for row in versions:
            resource = resource_of(kind, _unit(session, row), day)
            if resource is not None:
                yield int(row.position), resource, row.version == 1
            after = int(row.position)
        if len(versions) < batch:
            return


def type_history(session: Session, kind: ResourceType, since: datetime | None, count: int,
                 page: str | None, used: list[tuple[str, str]], base: str,
                 day: date) -> bytes:
    """``GET /fhir/{kind}/_history``: the versions since *since*, oldest first, paged."""
    digest = bundles.search_digest(f"{kind}/_history", used)
    if page:
        after = bundles.read_page_token(page, digest)
        if not isinstance(after, int) or isinstance(after, bool):
            raise bundles.BadPageToken()
    else:
        after = _first_since(session, since) if since is not None else 0
    entries: list[bytes] = []
    last = after
    more = False
    # One more than the page: whether a next page follows.
    for position, resource, created in _type_entries(session, kind, since, after, day,
                                                     count + 1):
        if len(entries) == count:
            more = True
            break
        entries.append(history_entry(base, resource, created))
        last = position
    links = [("self", bundles.link(base, f"{kind}/_history", used))]
    if more:
        following = [(k, v) for k, v in used if k != bundles.TOKEN_PARAMETER]
        following.append((bundles.TOKEN_PARAMETER, bundles.page_token(digest, last)))
        links.append(("next", bundles.link(base, f"{kind}/_history", following)))
    return bundles.bundle_bytes("history", links, entries, None)

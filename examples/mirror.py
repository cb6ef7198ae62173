#!/usr/bin/env python3
"""A mirror of the SOR register: seed it from an export, then follow the change feed.

    python examples/mirror.py --url http://127.0.0.1:5000 --token TOKEN --state mirror.ndjson

The first run downloads ``/api/v1/export/register.ndjson`` (one organisation per line,
after a first line naming the cursor the export was taken at) and keeps it in the state
file; every run then follows ``/api/v1/changes?after=<cursor>`` with long polling,
replacing each organisation with the state its entry shows, and saves the state (the
organisations and the cursor, together) after each page. A mirror needs no tree logic:
a unit whose inherited values change gets an entry of its own.

Only the standard library; a token with the role ``reporter`` or ``sds``
(``sorregistry create-client mirror --cvr ... --role reporter``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class CursorRefused(RuntimeError):
    """The service refused the mirror's cursor (400): seed the mirror again."""


class Mirror:
    """The register as the feed has shown it so far, and where in the feed that is."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.organisations: dict[str, dict[str, Any]] = {}
        self.cursor: str | None = None
        self.applied = 0  # entries applied since seeding

    # --- talking to the service -------------------------------------------------------

    def _open(self, path: str, params: dict[str, Any], timeout: float) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(
            f"{self.url}{path}{'?' + query if query else ''}",
            headers={"Authorization": f"Bearer {self.token}"})
        return urllib.request.urlopen(request, timeout=timeout)

    def seed(self) -> int:
        """Load the register from an NDJSON export; the cursor is the one it names."""
        organisations: dict[str, dict[str, Any]] = {}
        with self._open("/api/v1/export/register.ndjson", {}, self.timeout) as answer:
            lines = iter(answer)
            header = json.loads(next(lines))
            for line in lines:
                item = json.loads(line)
                organisations[item["sor_code"]] = item
        if len(organisations) != header["organisations"]:
            raise RuntimeError("the export ended early")
        self.organisations, self.cursor, self.applied = organisations, header["cursor"], 0
        return len(organisations)

    def poll(self, wait: float = 0.0, limit: int = 1000) -> dict[str, Any]:
        """Read one page after the cursor (holding up to *wait* seconds when nothing is
        new) and apply it; the page."""
        try:
            with self._open("/api/v1/changes", {"after": self.cursor, "limit": limit,
                                                "wait": wait},
                            self.timeout + wait) as answer:
                page = json.load(answer)
        except urllib.error.HTTPError as error:
            if error.code == 400:
                raise CursorRefused(json.load(error).get("message", "")) from error
            raise
        for entry in page["items"]:
            self.apply(entry)
        self.cursor = page["next"]
        return page

    def apply(self, entry: dict[str, Any]) -> None:
        """One entry: the organisation as it stands after the change."""
        self.organisations[entry["sor_code"]] = entry["organisation"]
        self.applied += 1

    def catch_up(self) -> None:
        """Read until nothing more is waiting."""
        while self.poll()["more"]:
            pass

    def follow(self, wait: float = 30.0, stop: threading.Event | None = None,
               state: Path | None = None) -> None:
        """Follow the feed until *stop* is set, saving *state* after each change."""
        backoff = 1.0
        while stop is None or not stop.is_set():
            try:
                page = self.poll(wait=wait)
                backoff = 1.0
            except (urllib.error.URLError, OSError) as error:
                if isinstance(error, urllib.error.HTTPError) and error.code < 500:
                    raise
                time.sleep(backoff)  # the service is restarting: try again, later each time
                backoff = min(backoff * 2, 60.0)
                continue
            if page["items"] and state is not None:
                self.save(state)

    # --- the mirror's own file -------------------------------------------------------

    def lines(self) -> Iterator[bytes]:
        """The organisations as NDJSON lines in SOR code order - the lines of an export."""
        for code in sorted(self.organisations):
            yield json.dumps(self.organisations[code], ensure_ascii=False,
                             separators=(",", ":")).encode() + b"\n"

    def save(self, path: Path) -> None:
        """Write the cursor and the organisations, whole or not at all."""
        temporary = path.with_name(path.name + ".part")
        with open(temporary, "wb") as file:
            file.write(json.dumps({"cursor": self.cursor, "url": self.url,
                                   "organisations": len(self.organisations)}).encode() + b"\n")
            file.writelines(self.lines())
        os.replace(temporary, path)

    def load(self, path: Path) -> None:
        with open(path, "rb") as file:
            header = json.loads(file.readline())
            self.organisations = {item["sor_code"]: item for item in map(json.loads, file)}
        self.cursor = header["cursor"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:5000")
    parser.add_argument("--token", default=os.environ.get("SOR_TOKEN"),
                        help="bearer token (default: $SOR_TOKEN)")
    parser.add_argument("--state", type=Path, required=True, help="the mirror's file")
    parser.add_argument("--wait", type=float, default=30.0, help="long-poll seconds (<= 30)")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is needed (--token or SOR_TOKEN)")
    mirror = Mirror(args.url, args.token)
    if args.state.exists():
        mirror.load(args.state)
    else:
        print(f"seeded {mirror.seed()} organisations", file=sys.stderr)
        mirror.save(args.state)
    try:
        mirror.follow(wait=args.wait, state=args.state)
    except CursorRefused as refused:
        print(f"the cursor was refused ({refused}); delete {args.state} to seed again",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

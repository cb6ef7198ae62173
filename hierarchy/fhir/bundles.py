"""Bundles: a search's page (``searchset``), a history's (``history``), and their links.

A search pages with the register's keyset cursor (``hierarchy.search.cursor``): the key of
the last unit a page showed, so that walking the ``next`` links returns every match
exactly once, in a stable order, however the register changes meanwhile (a unit changed
after its page was read may show on a later page again with its new values, never
twice in its old ones). The client sees an opaque token (``_cursor``): the keyset cursor
with a digest of the search it belongs to, signed with the service's secret key (HMAC).
A token altered, forged, or sent with another search is refused (400): it would be
misread. The ``next`` link repeats the search's parameters with the new token, so a
search POSTed to ``_search`` pages by GET.

**A page is written as it is made.** Each entry is serialised (orjson) the moment its
resource is built, and the Bundle is those bytes joined (:func:`bundle_bytes`), as the
change feed joins its stored items. Built whole, a page of 500 Organizations is some
10,000 dicts and lists alive at once: the garbage collector's young collections walk them
and promote them, and every few pages the promoted objects set off a full collection of
the worker's whole heap (its name index included: 0.2-0.3 s at 20,000 units, measured with
``gc.callbacks``) - the partof:below page's p95 was 1.64 x the API's, whose items are
fewer, flatter dicts. Serialised one by one, a resource's dicts are freed before the next
is made; nothing is promoted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import current_app

from hierarchy.fhir.outcome import FhirError
from hierarchy.fhir.resources import Resource

TOKEN_PARAMETER = "_cursor"


class BadPageToken(FhirError):
    """A ``_cursor`` this server did not give for this search (400)."""

    def __init__(self) -> None:
        super().__init__(
            "the page token (_cursor) is not one this server gave for this search: "
            "follow the Bundle's next link as it is",
            field_errors={TOKEN_PARAMETER: ["altered, forged, or of another search"]})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def search_digest(kind: str, pairs: Iterable[tuple[str, str]]) -> str:
    """What a search is, whatever the order of its parameters (its page token left out)."""
    wanted = sorted((k, v) for k, v in pairs if k != TOKEN_PARAMETER)
    return _b64(hashlib.sha256(orjson.dumps([kind, wanted])).digest()[:12])


def _signature(payload: bytes) -> bytes:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"fhir-page:" + payload, hashlib.sha256).digest()[:16]


def page_token(digest: str, position: Any) -> str:
    """The opaque token of the page after *position* (a keyset cursor, a history position)."""
    payload = orjson.dumps({"q": digest, "p": position})
    return f"{_b64(payload)}.{_b64(_signature(payload))}"


def read_page_token(token: str, digest: str) -> Any:
    """The position *token* carries; BadPageToken unless this server made it for *digest*."""
    try:
        encoded, _, signature = token.partition(".")
        payload = _unb64(encoded)
        valid = hmac.compare_digest(_unb64(signature), _signature(payload))
        data = orjson.loads(payload) if valid else None
    except (ValueError, binascii.Error, UnicodeEncodeError):
        data = None
    if not isinstance(data, dict) or data.get("q") != digest or "p" not in data:
        raise BadPageToken()
    return data["p"]


def link(base: str, path: str, pairs: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(pairs))
    return f"{base}/{path}" + (f"?{query}" if query else "")


_MODES = {mode: {"mode": mode} for mode in ("match", "include", "outcome")}


def entry(base: str, resource: Resource, mode: str | None = None) -> bytes:
    """A Bundle's entry of *resource*, serialised."""
    found: dict[str, Any] = {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}", "resource": resource}
    if mode is not None:
        found["search"] = _MODES[mode]
    return orjson.dumps(found)


def bundle_bytes(kind: str, links: list[tuple[str, str]], entries: list[bytes],
                 total: int | None) -> bytes:
    """A Bundle of *kind* (searchset, history) with its links (relation, url) and its
    *entries* serialised already (:func:`entry`), as JSON."""
    found: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if total is not None:
        found["total"] = total
    found["link"] = [{"relation": relation, "url": url} for relation, url in links]
    head = orjson.dumps(found)
    if not entries:
        return head
    return b"".join((head[:-1], b',"entry":[', b",".join(entries), b"]}"))

"""``GET /api/v1/changes``: the change feed, with long polling."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import orjson
from flask import Flask, Response, current_app
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy.engine import Engine

from hierarchy.feed.cursor import InvalidCursor, decode_cursor, encode_cursor
from hierarchy.feed.reading import Page, cursor_key, read_page
from hierarchy.feed.watcher import watcher_for
from hierarchy.schemas import OrganisationSchema
from sorregistry import reads, replicas
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.extensions import db
from sorregistry.responses import cached_json_response
from sorregistry.security import require

blp = Blueprint("feed", __name__, description="The change feed / Ændringsfeedet")
MAX_LIMIT = 1000
MAX_WAIT = 30
_SLOTS = "sor.feed.waiting"  # app.extensions: the places for waiting requests


def _d(en: str, da: str) -> dict[str, Any]:
    return {"metadata": {"description": f"{en} / {da}"}}


class ChangesArgsSchema(Schema):
    after = fields.String(**_d(
        "Cursor: a page's next, or the cursor an export names; none: from the start",
        "Markør: en sides next eller eksportens markør; ingen: fra begyndelsen"))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_LIMIT),
                           **_d("Entries per page, at most 1000", "Poster pr. side"))
    wait = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=MAX_WAIT),
                        **_d("Seconds to hold the request while nothing is new (at most "
                             "30)", "Sekunder at vente, når intet er nyt"))


class FeedEntrySchema(Schema):
    position = fields.Integer(**_d("Place in the feed, in commit order", "Plads i feedet"))
    sor_code = fields.String(**_d("SOR code", "SOR-kode"))
    change = fields.String(
        validate=validate.OneOf(["created", "changed", "moved", "closed", "reopened",
                                 "replaced", "took_effect"]),
        **_d("Kind of change", "Ændringens art"))
    changed_fields = fields.List(fields.String(), **_d(
        "The organisation item's fields that changed", "Ændrede felter"))
    inherited = fields.Boolean(**_d(
        "Only values inherited from an ancestor changed", "Kun arvede værdier ændret"))
    recorded_at = fields.DateTime(**_d("Recorded", "Registreret"))
    source = fields.String(**_d("import, application, staff or tick", "Kilde"))
    reference = fields.String(allow_none=True, **_d(
        "Import run, application, or the tick's day", "Reference"))
    valid_from = fields.Date(allow_none=True, **_d("Valid from", "Gyldig fra"))
    valid_to = fields.Date(allow_none=True, **_d("Closing date", "Lukkedato"))
    took_effect_on = fields.Date(allow_none=True, **_d(
        "The day a date took effect (took_effect)", "Dagen en dato trådte i kraft"))
    organisation = fields.Nested(OrganisationSchema, **_d(
        "The organisation after the change, as GET /organisations/{code} shows it",
        "Enheden efter ændringen"))


class FeedPageSchema(Schema):
    items = fields.List(fields.Nested(FeedEntrySchema), **_d("In commit order", "Poster"))
    next = fields.String(**_d("Cursor to pass as after; unchanged when nothing was new",
                              "Markør til næste kald"))
    more = fields.Boolean(**_d("More entries follow now (read on without wait)",
                               "Flere poster venter"))


class CursorAhead(InvalidCursor):
    """A cursor past the register's last position (the register restored from a backup)."""


@blp.route("/changes")
class Changes(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ChangesArgsSchema, location="query")
    @blp.response(200, FeedPageSchema)
    @blp.alt_response(400, description="A cursor this register did not issue, or not whole")
    @require("reporter", "sds")
    def get(self, args: dict[str, Any]) -> Response:
        """Every change of every organisation in commit order, after a cursor.

        Each entry shows the organisation after the change. A page that is empty returns
        the cursor it was given; with ``wait`` the request is held until something is new
        (or the seconds pass) - unless the worker already holds ``SOR_FEED_MAX_WAITING``
        waiting requests: then it answers at once, with ``Retry-After: 1``.
        """
        session = db.session()
        if args["wait"]:
            # A long poll wakes on the primary's notifications (hierarchy.feed.watcher):
            # it reads there, or it would wake before a standby had what woke it.
            replicas.use_primary()
        direct = reads.direct(session)
        readable: reads.Reads = direct if direct is not None else reads.SessionReads(session)
        key = cursor_key(current_app, readable)
        after = decode_cursor(args["after"], key) if "after" in args else 0
        deadline = time.monotonic() + args["wait"]
        page = read_page(readable, after, args["limit"])
        if after > page.register_last and direct is not None and direct.on_standby:
            # A cursor from the primary (or another standby) past this standby's last
            # position: the standby lags; the primary answers.
            replicas.use_primary()
            readable = reads.direct(session) or reads.SessionReads(session)
            page = read_page(readable, after, args["limit"])
        if after > page.register_last:
            raise CursorAhead(
                f"the cursor is at position {after}, past this register's last "
                f"({page.register_last}): was the register restored from an older backup? "
                "Seed again from an export")
        turned_away = False
        if not page.rows and args["wait"]:
            slots = _slots(current_app)
            if slots.acquire(blocking=False):
                try:
                    while not page.rows and _wait(page, deadline):
                        page = read_page(readable, after, args["limit"])
                finally:
                    slots.release()
            else:
                turned_away = True
        # The stored entries joined as they are (hierarchy.feed.items): nothing rendered.
        body = b"".join((b'{"items":', page.array(), b',"next":',
                         orjson.dumps(encode_cursor(page.last, key)), b',"more":',
                         b"true" if page.more else b"false", b"}"))
        response = cached_json_response(body, _etag(key, after, page, len(body)))
        if turned_away:
            response.headers["Retry-After"] = "1"
        return response


def _etag(key: bytes, after: int, page: Page, size: int) -> str:
    """A page's ETag, from what fixes its bytes rather than from its ~1.2 MB (hashing
    them was 1.5-3.5 ms of a 15-70 ms page): the register (its cursor key), the positions
    the page spans, whether more follow, and its length. An entry is never changed once
    committed, and none can appear among positions a page has read (commit order,
    ``hierarchy.changes``), so the same span of the same register is the same body."""
    return hashlib.blake2b(b"%d:%d:%d:%d" % (after, page.last, page.more, size),
                           key=key[:64], digest_size=16).hexdigest()


def _slots(app: Flask) -> threading.BoundedSemaphore:
    """The worker's places for waiting requests (``SOR_FEED_MAX_WAITING``).

    A waiting request holds one of the worker's threads (gunicorn's gthread: 8 by
    default) for up to 30 s; without a bound, a few dozen mirrors long-polling would hold
    every thread and the lookups would queue behind them. A request that finds every
    place taken is answered at once, as without ``wait`` (an empty page, its cursor),
    with ``Retry-After: 1``: poll again after a second.
    """
    slots: threading.BoundedSemaphore | None = app.extensions.get(_SLOTS)
    if slots is None:
        slots = app.extensions.setdefault(_SLOTS, threading.BoundedSemaphore(
            max(1, int(app.config.get("FEED_MAX_WAITING", 4)))))
    return slots


def _wait(page: Page, deadline: float) -> bool:
    """Wait for a position past *page*'s register position, until *deadline*; whether
    the page is worth reading again. The request's transaction ends first: nothing of
    the database is held while it waits."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    session = db.session()
    bind = session.get_bind()
    session.commit()
    if not isinstance(bind, Engine):
        # A session bound to one connection (the tests' rolled-back transaction): no one
        # else commits on it while this request holds it, so nothing can arrive.
        return False
    return watcher_for(bind).wait_beyond(page.register_last, remaining)

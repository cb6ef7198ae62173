"""``GET /api/v1/export/register.<extension>``: an export streamed over HTTP.

The answer is streamed (chunked) while the snapshot is read, so neither the worker's
memory nor the client's wait grows with the register. The writer runs in a thread of
its own that hands its bytes over a short queue (a writer pushes, a WSGI answer is
pulled); a client that goes away stops it, and its snapshot is closed. An error
half-way ends the stream without its last chunk: the client sees a broken transfer,
never a short file that looks whole.

``?all_history=1`` streams every version of every organisation instead (formats that
carry history: ndjson, csv; ``hierarchy.export.snapshot``); other formats, or a day
given with it, are refused (422).

``ETag`` names the format, the feed position and the day (or ``history``): the same
register position gives the same bytes, so ``If-None-Match`` answers 304 without reading the rows.
``X-Feed-Position`` and ``X-Feed-Cursor`` say where in the feed the export was taken.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from flask import Response, request
from flask.views import MethodView
from marshmallow import Schema, fields

from hierarchy.export import FORMATS, ExportFormat, UnknownFormat, format_for
from hierarchy.export.snapshot import Snapshot, open_snapshot
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.errors import DomainError
from sorregistry.extensions import db
from sorregistry.security import require

blp = Blueprint("export", __name__, description="Exports of the register / Udtræk af registret")
_QUEUED_CHUNKS = 8
_END = b""


class NoSuchExport(DomainError):
    """No export format of that extension or name (404)."""

    status = 404


class NoHistory(DomainError):
    """All history asked of a format that carries none (422)."""

    status = 422


class ExportArgsSchema(Schema):
    format = fields.String(metadata={"description": "The format, when several share the "
                                                    "extension / Format"})
    on = fields.Date(metadata={"description": "Only organisations active on this day; "
                                              "default all / Kun aktive på dagen"})
    all_history = fields.Boolean(load_default=False, metadata={
        "description": "Every version of every organisation, one a line, with its valid "
                       "and recorded times (ndjson, csv; not with on) / Al historik"})


def _documented_responses() -> dict[int, Any]:
    headers = {
        "ETag": {"schema": {"type": "string"},
                 "description": "Format, feed position and day / Format, position og dag"},
        "X-Feed-Position": {"schema": {"type": "integer"},
                            "description": "The feed position the export was taken at"},
        "X-Feed-Cursor": {"schema": {"type": "string"},
                          "description": "Follow /api/v1/changes?after= this"},
    }
    content = {f.media_type: {"schema": {"type": "string"}} for f in FORMATS.values()}
    return {200: {"description": "The register, streamed / Registret", "headers": headers,
                  "content": content}}


@blp.route(
    "/export/register.<extension>",
    parameters=[{"in": "path", "name": "extension", "required": True,
                 "schema": {"type": "string",
                            "enum": sorted({f.extension for f in FORMATS.values()})}}],
)
class RegisterExport(MethodView):
    @blp.doc(security=[{"bearerAuth": []}], responses=_documented_responses())
    @blp.arguments(ExportArgsSchema, location="query")
    @blp.alt_response(304, description="Not Modified: the ETag sent is current")
    @blp.alt_response(404, description="No export of that extension or format")
    @blp.alt_response(422, description="all_history of a format without history, or with on")
    @require("reporter", "sds")
    def get(self, args: dict[str, Any], extension: str) -> Response:
        """The whole register (or what is active on a day) in one file, from one snapshot."""
        try:
            chosen = format_for(name=args.get("format"), extension=extension)
        except UnknownFormat as exc:
            raise NoSuchExport(str(exc)) from exc
        history = bool(args["all_history"])
        if history and chosen.history_writer is None:
            raise NoHistory(f"the {chosen.name} format carries no history (ndjson and csv "
                            "do; so do the change feed and /organisations/{code}/history)")
        snapshot = open_snapshot(db.session, format=chosen.name, order=chosen.order,
                                 on=args.get("on"), all_history=history)
        try:
            info = snapshot.info
            etag = f"{chosen.name}-{info.position}-{'history' if history else info.on or 'all'}"
            headers = {
                "X-Feed-Position": str(info.position),
                "X-Feed-Cursor": info.cursor,
                "Cache-Control": "private, no-cache",
                "Content-Disposition": f'attachment; filename="sor-register-{info.position}'
                                       f'.{chosen.extension}"',
            }
            if history:
                headers["Content-Disposition"] = (
                    f'attachment; filename="sor-history-{info.position}.{chosen.extension}"')
            if etag in request.if_none_match:
                snapshot.close()
                response = Response(status=304, headers=headers)
                response.set_etag(etag)
                return response
            response = Response(_stream(snapshot, chosen), mimetype=chosen.media_type,
                                headers=headers)
            response.set_etag(etag)
            return response
        except BaseException:
            snapshot.close()
            raise


class _Gone(Exception):
    """The client went away: the writer stops."""


def _stream(snapshot: Snapshot, chosen: ExportFormat) -> Iterator[bytes]:
    """The writer's bytes as they come, from a thread that runs it over the snapshot."""
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_QUEUED_CHUNKS)
    gone = threading.Event()

    def put(item: bytes | BaseException) -> None:
        while True:
            if gone.is_set():
                raise _Gone()
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write(data: bytes) -> None:
        if data:
            put(data)

    def produce() -> None:
        try:
            writer = (chosen.history_writer if snapshot.info.all_history
                      and chosen.history_writer else chosen.writer)
            writer(snapshot.lines(), write, snapshot.info)
            put(_END)
        except _Gone:
            pass
        except BaseException as exc:  # handed to the answer, which breaks off
            try:
                put(exc)
            except _Gone:
                pass
        finally:
            snapshot.close()

    thread = threading.Thread(target=produce, name="sor-export-writer", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if isinstance(item, BaseException):
                raise item
            if item == _END:
                return
            yield item
    finally:
        gone.set()
        thread.join()

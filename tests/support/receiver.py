"""A webhook receiver for the tests: a real threaded HTTP server on 127.0.0.1 that checks
each delivery's signature as the README tells receivers to, and can be down (refusing
connections), failing (500) or up."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE = 300  # seconds a signature's timestamp may be off


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """The receiver's check (as the README gives it): t and v1 from X-SOR-Signature,
    HMAC-SHA256 over f"{t}." + body, compared in constant time, t recent."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    fresh = abs((now or time.time()) - timestamp) <= TOLERANCE
    return fresh and hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    verified: bool

    @property
    def position(self) -> int:
        return int(self.headers["X-SOR-Position"])

    @property
    def entry(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Start with :meth:`up`; :meth:`down` closes the socket (connections refused);
    ``failing = True`` answers 500. Deliveries that do not verify get 400."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secret = ""
        self.failing = False
        self.requests: list[Request] = []
        self.on_request: Callable[[], None] = lambda: None  # called as each one arrives
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sor?x=1"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = verify(receiver.secret, self.headers.get("X-SOR-Signature", ""), body)
                status = 400 if not ok else 500 if receiver.failing else 200
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, dict(self.headers), body, status, ok))
                receiver.on_request()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None

    def accepted(self) -> list[Request]:
        """The deliveries answered 2xx, in the order they arrived."""
        with self._lock:
            return [r for r in self.requests if r.answered == 200]

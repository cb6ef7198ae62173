"""The tests' Flask client: it closes each answer once it has read it, as a WSGI server
does after sending the last byte (PEP 3333).

Werkzeug's test client closes an answer only when the test calls ``close()``, and the
service does work when its answers are closed (``sorregistry.request_id.after_sent``:
the request line, the metrics' count). Reading the whole answer first (``buffered``)
and closing it is what gunicorn does with every answer, streamed ones included.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


class ServerClient(FlaskClient):
    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> Any:
        return super().open(*args, buffered=buffered, **kwargs)

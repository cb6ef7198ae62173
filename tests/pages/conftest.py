"""Page fixtures: the small register of the application tests, with people to log in."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from tests.applications.helpers import build_register
from tests.pages.helpers import make_users
from tests.support.client import ServerClient


class FreshGlobalsClient(ServerClient):
    """A test client whose every request starts with an empty ``g``.

    The ``app`` fixture keeps one app context open for the whole test, and Flask
    reuses it for the client's requests, so ``g`` would carry the logged-in
    user (Flask-Login) and the CSRF token (Flask-WTF) from one request to the
    next. A real server gives every request its own.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        vars(g).clear()
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = FreshGlobalsClient
    return app.test_client()


@pytest.fixture
def people(session):
    build_register(session)
    return make_users(session)

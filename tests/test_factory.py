from __future__ import annotations

import pytest
from flask import Flask, request
from werkzeug.exceptions import BadRequestKeyError
from werkzeug.wrappers import Request

from sorregistry import create_app
from sorregistry.app import _SYNC, QueryArgs
from sorregistry.config import ConfigurationError, from_environment


def test_config_from_test_dict():
    assert not create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x"}).testing
    assert create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}).testing


def test_environment_settings_are_read():
    config = from_environment(
        {"SOR_DATABASE_URL": "sqlite:////tmp/x.db", "SOR_MAIL_PORT": "2525",
         "SOR_MAIL_USE_TLS": "true", "UNRELATED": "1"}
    )
    assert config == {
        "SQLALCHEMY_DATABASE_URI": "sqlite:////tmp/x.db",
        "MAIL_PORT": 2525,
        "MAIL_USE_TLS": True,
    }


def test_bad_setting_is_named():
    with pytest.raises(ConfigurationError, match="SOR_MAIL_PORT"):
        from_environment({"SOR_MAIL_PORT": "twenty-five"})


def test_secret_key_required_outside_development(monkeypatch):
    monkeypatch.delenv("SOR_SECRET_KEY", raising=False)
    monkeypatch.delenv("SOR_ENV", raising=False)
    monkeypatch.setenv("SOR_DATABASE_URL", "sqlite://")
    with pytest.raises(ConfigurationError, match="SOR_SECRET_KEY"):
        create_app()


def test_default_database_is_sqlite_in_instance_folder(monkeypatch):
    monkeypatch.setenv("SOR_ENV", "development")
    monkeypatch.delenv("SOR_DATABASE_URL", raising=False)
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("instance/sorregistry.db")


def test_the_app_asks_once_whether_a_hook_is_a_coroutine(monkeypatch):
    # Flask asks ensure_sync of every hook and view on every request; the app keeps the
    # answer (sorregistry.app.SorFlask) and still gives an unhashable callable its own.
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    asked: list[object] = []
    original = Flask.ensure_sync

    def counting(self, func):
        asked.append(func)
        return original(self, func)

    monkeypatch.setattr(Flask, "ensure_sync", counting)
    client = app.test_client()
    assert client.get("/api/v1/health").status_code in (200, 503)
    first = len(asked)  # those no app of this process has asked about before
    hooks = [func for registry in (app.before_request_funcs, app.after_request_funcs,
                                   app.teardown_request_funcs)
             for func in registry.get(None, [])]  # the app's own, run for every request
    assert len(hooks) > 10 and all(getattr(func, _SYNC) for func in hooks)  # kept on each
    assert client.get("/api/v1/health").status_code in (200, 503)
    assert asked[first:] == []  # the second request asked nothing again (a view's bound
    # method, made anew at each access, included: its function holds the answer)

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "called"

    made = Unhashable()
    assert app.ensure_sync(made) is made

    async def coroutine() -> str:
        return "awaited"

    for _ in range(2):  # Flask's own answer for a coroutine (no async extra here), each
        with pytest.raises(RuntimeError, match="async"):  # time: never marked as sync
            app.ensure_sync(coroutine)
    assert app.ensure_sync(len) is len  # a builtin takes no attribute: asked each time


def test_query_arguments_answer_a_missing_key_without_an_exception(monkeypatch):
    # The argument parser asks for every field of a lookup's schema; werkzeug's get
    # raised (and caught) a BadRequestKeyError for each one absent.
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    made = []
    original = BadRequestKeyError.__init__

    def counting(self, *args, **kwargs):
        made.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(BadRequestKeyError, "__init__", counting)
    with app.test_request_context("/?name=hos&limit=20&limit=30"):
        args = request.args
        assert isinstance(args, QueryArgs)
        assert args.get("missing") is None and args.get("missing", "x") == "x"
        assert args.get("limit", type=int) == 20 and args.getlist("limit") == ["20", "30"]
        assert args.get("name", type=int) is None and args.get("name", 0, type=int) == 0
        assert ("missing",) not in made and ("name",) not in made  # (headers made some)
        with pytest.raises(BadRequestKeyError):  # indexing still answers 400
            args["missing"]


@pytest.mark.parametrize("query", [
    b"", b"ydernummer=123456", b"name=hos&limit=20&limit=30", b"a", b"a=", b"=b", b"&&a=1&",
    b"a=1=2", b"level=SI&level=OE&name=x", b"a=1;b=2", b"x=%C3%B8", b"x=a+b", b"x=%FF",
    b"x=\xc3\xb8", b"x=\xff", b"%41=1", b"q=" + b"z" * 5000, b"k=v&" * 1000,
])
def test_query_arguments_are_werkzeugs_whichever_way_they_are_split(query):
    """A plain query string is split by the app's request itself, anything else (escapes,
    '+', bytes past ASCII) by werkzeug: the same arguments, in the same order, either way."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    environ = {"QUERY_STRING": query.decode("latin-1")}
    with app.test_request_context("/", environ_overrides=environ):
        ours = request.args
        assert isinstance(ours, QueryArgs)
        try:
            werkzeugs = Request(request.environ).args
        except UnicodeDecodeError:  # raw bytes that are no UTF-8: werkzeug fails (a 500)
            assert query.startswith(b"x=\xff")
            assert list(ours.items(multi=True)) == [("x", "%FF")]  # as x=%FF is read
        else:
            assert list(ours.items(multi=True)) == list(werkzeugs.items(multi=True))

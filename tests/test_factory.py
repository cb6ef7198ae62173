from __future__ import annotations

import pytest
from flask import Flask

from sorregistry import create_app
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
    first = len(asked)
    assert first > 10  # the hooks and the view
    assert client.get("/api/v1/health").status_code in (200, 503)
    again = [func for func in asked[first:] if getattr(func, "__self__", None) is None]
    assert again == []  # the second request asked nothing again (a bound method aside:
    # made anew at each access, it is not kept)

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "called"

    made = Unhashable()
    assert app.ensure_sync(made) is made

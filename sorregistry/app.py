"""The application factory: the composition root, the only module that names the features.

``create_app`` is a short list of steps: configuration, extensions, the core every
feature relies on, then each feature's ``init_app`` - which registers its own APIs,
pages, commands and menu entries. A new feature is one line in
:func:`register_features`; nothing else in the core changes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.utils import cached_property

import applications
import hierarchy
import notifications
from sorregistry import (
    accounts,
    api,
    audit_web,
    backup,
    errors,
    guards,
    headers,
    health,
    i18n,
    logs,
    metrics,
    pages,
    ratelimit,
    replicas,
    request_id,
)
from sorregistry import config as sor_config
from sorregistry.database import configure_engine
from sorregistry.extensions import db, mail, migrate

# The Alembic scripts: the repository's top-level migrations/, installed as the package
# sorregistry.migrations (setup.py), so an editable install and a wheel both find them.
# pip installs packages unzipped, so this is a real folder.
MIGRATIONS = str(files("sorregistry.migrations"))


class SorFlask(Flask):
    """Flask, remembering which functions are no coroutines.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view on every request
    (``ensure_sync``): with this app's twenty-odd hooks, about 20 microseconds of every
    answer. The answer never changes for a function, so it is kept on the function itself
    (a bound method's on its function: one attribute read in C, where a weak dictionary
    of them cost a Python call each time, and a method - made anew at each access - was
    never found in it). What cannot take an attribute is asked each time."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(func, _SYNC, False):
            return func
        made = super().ensure_sync(func)
        if made is func:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(getattr(func, "__func__", func), _SYNC, True)
        return made


_SYNC = "_sor_not_a_coroutine"


class QueryArgs(ImmutableMultiDict[str, str]):
    """``request.args`` (and ``form``) that answer ``get`` of a key they lack without an
    exception. werkzeug's ``get`` asks ``self[key]`` and catches the ``BadRequestKeyError``
    it raises; the argument parser asks for every field of a lookup's schema (a list's
    sixteen filters), so a type-ahead with two made fourteen exceptions (~2.5 us each)."""

    def get(  # type: ignore[override]  # one signature for werkzeug's overloads
            self, key: str, default: Any = None, type: Any = None) -> Any:  # noqa: A002
        if key not in self:
            return default
        return super().get(key, default, type)


class SorRequest(Request):
    parameter_storage_class = QueryArgs

    @cached_property
    def args(self) -> QueryArgs:
        """werkzeug's ``args``; a plain query string (ASCII, nothing %-escaped, no ``+``:
        a lookup's ``ydernummer=123456``) split into its pairs here, as ``parse_qsl``
        splits it (blank values kept, empty pairs skipped), without its general decoding
        (a quarter of a lookup's argument parsing)."""
        raw = self.query_string
        if raw.isascii() and b"%" not in raw and b"+" not in raw:
            pairs = [piece.partition("=")[::2] for piece in raw.decode("ascii").split("&")
                     if piece]
            return QueryArgs(pairs)
        # As werkzeug parses it, but raw bytes that are no UTF-8 (a client that did not
        # escape them) kept %-escaped, as werkzeug keeps escaped bytes it cannot decode:
        # its own strict decoding raised UnicodeDecodeError there (a 500).
        text = raw.decode("utf-8", "werkzeug.url_quote")
        return QueryArgs(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))


SorFlask.request_class = SorRequest


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app: configuration, extensions, the core, the features."""
    app = SorFlask(__name__, instance_relative_config=True)
    app.config.from_mapping(sor_config.DEFAULTS)
    if test_config is None:
        app.config.update(sor_config.from_environment())
    else:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI",
        "sqlite:///" + os.path.join(app.instance_path, "sorregistry.db"),
    )
    app.config["SQLALCHEMY_DATABASE_URI"] = replicas.repeated_hosts(
        str(app.config["SQLALCHEMY_DATABASE_URI"]))
    _check_secret_key(app)
    _limit_connect_time(app)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    register_extensions(app)
    register_core(app)
    register_features(app)
    return app


def _limit_connect_time(app: Flask) -> None:
    """PostgreSQL: give up connecting after 10 s (libpq waits for the TCP timeout, often
    minutes, when the server's host does not answer), so a request or the health check
    answers 503 instead of holding a worker. A connect_timeout given in
    SQLALCHEMY_ENGINE_OPTIONS wins."""
    if not str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("connect_timeout", 10)
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _check_secret_key(app: Flask) -> None:
    if app.config.get("SECRET_KEY"):
        return
    if app.config.get("TESTING") or app.config.get("SOR_ENV") == "development" or app.debug:
        app.config["SECRET_KEY"] = "dev-only-not-secret"
        return
    raise sor_config.ConfigurationError(
        "SOR_SECRET_KEY must be set outside development and tests "
        "(or set SOR_ENV=development for a local run)"
    )


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    try:
        replicas.init_app(app)
    except ValueError as exc:
        raise sor_config.ConfigurationError(str(exc)) from exc
    standbys = replicas.replicas_of(app)
    for standby in standbys.standbys if standbys is not None else []:
        configure_engine(standby.engine)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True)
    mail.init_app(app)


def register_core(app: Flask) -> None:
    """What every feature relies on: the OpenAPI document, errors, pages, health."""
    request_id.init_app(app)
    # Before every other after_request hook: the last registered runs first, so these two
    # see the final answer (its status, X-Cache, X-Request-Id).
    logs.init_app(app)
    api.init_app(app)
    metrics.init_app(app)
    standbys = replicas.replicas_of(app)
    if standbys is not None:
        metrics.sample(app, "sor_replica_lag_seconds",
                       "Each standby's replay lag as the worker last measured it (seconds)",
                       lambda: replicas.lags(standbys), labels=("database",),
                       multiprocess_mode="livemax")
    ratelimit.init_app(app)  # before the guards: a client over its limit costs no more work
    guards.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    pages.init_app(app)
    headers.init_app(app)
    health.init_app(app)
    audit_web.init_app(app)
    backup.init_app(app)


def register_features(app: Flask) -> None:
    """Each feature attaches its APIs, pages, commands and menu entries itself."""
    accounts.init_app(app)
    hierarchy.init_app(app)
    applications.init_app(app)
    notifications.init_app(app)

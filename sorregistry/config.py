"""Configuration from ``SOR_`` environment variables.

Every setting the operator may change is read here and nowhere else, so that
``create_app`` sees one plain mapping whatever the source (environment or a
test's dictionary).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson
from limits import parse_many

from sorregistry.responses import dumps_text

# SOR_ variable -> Flask config key, and how to read the value.
_BOOL_TRUE = {"1", "true", "yes", "on"}


def _as_bool(value: str) -> bool:
    return value.strip().lower() in _BOOL_TRUE


def _as_int(value: str) -> int:
    return int(value.strip())


def _as_rate_limit(value: str) -> str:
    """A rate limit in Flask-Limiter's notation ("1200 per minute", "10/second;100/hour")."""
    parse_many(value)  # raises ValueError on anything else
    return value.strip()


ENVIRONMENT_SETTINGS: dict[str, tuple[str, Any]] = {
    "SOR_DATABASE_URL": ("SQLALCHEMY_DATABASE_URI", str),
    "SOR_SECRET_KEY": ("SECRET_KEY", str),
    "SOR_ENV": ("SOR_ENV", str),
    "SOR_MAIL_SERVER": ("MAIL_SERVER", str),
    "SOR_MAIL_PORT": ("MAIL_PORT", _as_int),
    "SOR_MAIL_USERNAME": ("MAIL_USERNAME", str),
    "SOR_MAIL_PASSWORD": ("MAIL_PASSWORD", str),
    "SOR_MAIL_USE_TLS": ("MAIL_USE_TLS", _as_bool),
    "SOR_MAIL_USE_SSL": ("MAIL_USE_SSL", _as_bool),
    "SOR_MAIL_DEFAULT_SENDER": ("MAIL_DEFAULT_SENDER", str),
    "SOR_NOTIFY_MAX_ATTEMPTS": ("NOTIFY_MAX_ATTEMPTS", _as_int),
    "SOR_NOTIFY_RETRY_BASE_SECONDS": ("NOTIFY_RETRY_BASE_SECONDS", _as_int),
    "SOR_NOTIFY_RETRY_MAX_SECONDS": ("NOTIFY_RETRY_MAX_SECONDS", _as_int),
    "SOR_NOTIFY_CLAIM_TIMEOUT_SECONDS": ("NOTIFY_CLAIM_TIMEOUT_SECONDS", _as_int),
    "SOR_NOTIFY_SMTP_TIMEOUT_SECONDS": ("NOTIFY_SMTP_TIMEOUT_SECONDS", _as_int),
    "SOR_NOTIFY_MESSAGE_ID_DOMAIN": ("NOTIFY_MESSAGE_ID_DOMAIN", str),
    "SOR_IMAP_HOST": ("IMAP_HOST", str),
    "SOR_IMAP_PORT": ("IMAP_PORT", _as_int),
    "SOR_IMAP_USER": ("IMAP_USER", str),
    "SOR_IMAP_PASSWORD": ("IMAP_PASSWORD", str),
    "SOR_IMAP_MAILBOX": ("IMAP_MAILBOX", str),
    "SOR_IMAP_SSL": ("IMAP_SSL", _as_bool),
    "SOR_IMAP_STARTTLS": ("IMAP_STARTTLS", _as_bool),
    "SOR_IMAP_TIMEOUT": ("IMAP_TIMEOUT", _as_int),
    "SOR_IMAP_MAX_MESSAGE_SIZE": ("IMAP_MAX_MESSAGE_SIZE", _as_int),
    "SOR_MAIL_SENDER_AUTH": ("MAIL_SENDER_AUTH", str),
    "SOR_MAIL_TRUSTED_AUTHSERV_ID": ("MAIL_TRUSTED_AUTHSERV_ID", str),
    "SOR_MAIL_MAX_PER_SENDER_HOUR": ("MAIL_MAX_PER_SENDER_HOUR", _as_int),
    "SOR_MAX_CONTENT_LENGTH": ("MAX_CONTENT_LENGTH", _as_int),
    "SOR_FAST_READS": ("FAST_READS", _as_bool),
    "SOR_COOKIE_SECURE": ("SOR_COOKIE_SECURE", _as_bool),
    "SOR_FORCE_HTTPS": ("FORCE_HTTPS", _as_bool),
    "SOR_SESSION_IDLE_MINUTES": ("SESSION_IDLE_MINUTES", _as_int),
    "SOR_SESSION_MAX_HOURS": ("SESSION_MAX_HOURS", _as_int),
    "SOR_RATELIMIT_ENABLED": ("RATELIMIT_ENABLED", _as_bool),
    "SOR_RATELIMIT_STORAGE_URL": ("RATELIMIT_STORAGE_URL", str),
    "SOR_RATELIMIT_API": ("RATELIMIT_API", _as_rate_limit),
    "SOR_RATELIMIT_ANONYMOUS": ("RATELIMIT_ANONYMOUS", _as_rate_limit),
    "SOR_RATELIMIT_LOGIN_ACCOUNT": ("RATELIMIT_LOGIN_ACCOUNT", _as_rate_limit),
    "SOR_RATELIMIT_LOGIN_ADDRESS": ("RATELIMIT_LOGIN_ADDRESS", _as_rate_limit),
    "SOR_RATELIMIT_MAIL_SENDER": ("RATELIMIT_MAIL_SENDER", _as_rate_limit),
    "SOR_RATELIMIT_SYNC_HITS": ("RATELIMIT_SYNC_HITS", _as_int),
    "SOR_RATELIMIT_SYNC_SECONDS": ("RATELIMIT_SYNC_SECONDS", _as_int),
}

DEFAULTS: dict[str, Any] = {
    "SOR_ENV": "production",
    "SECRET_KEY": None,
    "SQLALCHEMY_ENGINE_OPTIONS": {
        "pool_pre_ping": True,
        # JSON columns are read on every lookup: orjson is several times faster.
        "json_serializer": dumps_text,
        "json_deserializer": orjson.loads,
    },
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_DEFAULT_SENDER": "SOR <sorpost@localhost>",
    # The outbox (notifications/): a failed send is retried after base, 2 x base,
    # 4 x base ... seconds (at most max), and given up after max attempts
    # (about 8.5 hours with these values). A claim older than the claim timeout
    # belongs to a worker that died; it must exceed the time one mail can take.
    "NOTIFY_MAX_ATTEMPTS": 10,
    "NOTIFY_RETRY_BASE_SECONDS": 60,
    "NOTIFY_RETRY_MAX_SECONDS": 6 * 3600,
    "NOTIFY_CLAIM_TIMEOUT_SECONDS": 600,
    "NOTIFY_SMTP_TIMEOUT_SECONDS": 30,
    # The right-hand side of Message-IDs; by default the sender address's domain.
    "NOTIFY_MESSAGE_ID_DOMAIN": None,
    "IMAP_PORT": 993,
    "IMAP_MAILBOX": "INBOX",
    "IMAP_SSL": None,  # None: SSL on port 993, plain (or STARTTLS) on any other
    "IMAP_STARTTLS": False,
    "IMAP_TIMEOUT": 60,
    # Mails larger than this are kept raw but not parsed (they become triage items).
    "IMAP_MAX_MESSAGE_SIZE": 10 * 1024 * 1024,
    # How the intake authenticates a mail's sender (applications/mail_trust.py): None
    # is "authentication-results" when the receiving server's authserv-id is given,
    # else "dkim"; "none" (development only) believes any From address.
    "MAIL_SENDER_AUTH": None,
    "MAIL_TRUSTED_AUTHSERV_ID": None,
    # More mails than this from one sender in an hour become triage items, not
    # applications. A municipality sends a few a week; 30 leaves room for a batch.
    "MAIL_MAX_PER_SENDER_HOUR": 30,
    # A login session ends after this long unused, and this long after the login
    # whatever happens (OWASP ASVS 3.3 level 2: 30 minutes idle, 12 hours absolute).
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    # Rate limits (sorregistry/ratelimit.py): None = on, except under TESTING. Counted in
    # the database (sordb://) unless a Redis URL (redis://host:6379) or memory:// is given;
    # each worker writes a bucket's count after SYNC_HITS hits or SYNC_SECONDS seconds.
    "RATELIMIT_ENABLED": None,
    "RATELIMIT_STORAGE_URL": "sordb://",
    "RATELIMIT_API": "1200 per minute",
    "RATELIMIT_ANONYMOUS": "120 per minute",
    "RATELIMIT_LOGIN_ACCOUNT": "10 per minute",
    "RATELIMIT_LOGIN_ADDRESS": "30 per minute",
    "RATELIMIT_MAIL_SENDER": "30 per hour",
    "RATELIMIT_SYNC_HITS": 50,
    "RATELIMIT_SYNC_SECONDS": 5,
    # Requests larger than this are refused with 413 before any view runs.
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "API_TITLE": "SOR registry",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    # The interactive documentation at /api/docs, its assets served from the
    # swagger-ui-bundle package (no CDN: works on a closed network).
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "/api/docs/assets/",
}


class ConfigurationError(RuntimeError):
    """The configuration is unusable; the message says which setting and why."""


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read every known ``SOR_`` variable from *environ* into Flask config keys."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for variable, (key, convert) in ENVIRONMENT_SETTINGS.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            config[key] = convert(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{variable}={raw!r} is not valid: {exc}") from exc
    return config

"""Configuration from ``SOR_`` environment variables.

Every setting the operator may change is read here and nowhere else, so that
``create_app`` sees one plain mapping whatever the source (environment or a
test's dictionary).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from sorregistry.responses import dumps_text

# SOR_ variable -> Flask config key, and how to read the value.
_BOOL_TRUE = {"1", "true", "yes", "on"}


def _as_bool(value: str) -> bool:
    return value.strip().lower() in _BOOL_TRUE


def _as_int(value: str) -> int:
    return int(value.strip())


def _as_share(value: str) -> float:
    """A share between 0 and 1 ("0.10")."""
    share = float(value.strip())
    if not 0.0 <= share <= 1.0:
        raise ValueError("must be a share between 0 and 1, e.g. 0.10")
    return share


def _as_seconds(value: str) -> float:
    """A duration in seconds, not negative ("5", "0.5")."""
    seconds = float(value.strip())
    if not seconds >= 0.0:  # also refuses nan
        raise ValueError("must be a number of seconds, 0 or more")
    return seconds


def _as_words(value: str) -> tuple[str, ...]:
    """Space-separated words (issuer URLs, scopes, algorithms), in the order given."""
    return tuple(value.split())


def _as_leeway(value: str) -> int:
    """Clock skew allowed on token times, in seconds: at most five minutes, so that a
    stolen expired token is not accepted for long."""
    seconds = int(value.strip())
    if not 0 <= seconds <= MAX_LEEWAY_SECONDS:
        raise ValueError(f"must be between 0 and {MAX_LEEWAY_SECONDS} seconds")
    return seconds


def _as_role_values(value: str) -> dict[str, tuple[str, ...]]:
    """``role=value`` pairs, space-separated (a role may be named by several values):
    which values of the identity provider's role claim mean which of this service's roles."""
    mapping: dict[str, list[str]] = {}
    for pair in value.split():
        role, _, claimed = pair.partition("=")
        if role not in ("reporter", "municipality", "sds") or not claimed:
            raise ValueError(f"{pair!r} is not role=value with a role of reporter, "
                             "municipality, sds")
        mapping.setdefault(role, []).append(claimed)
    return {role: tuple(values) for role, values in mapping.items()}


def _as_signing_algorithms(value: str) -> tuple[str, ...]:
    """JWS algorithms accepted on access tokens: asymmetric ones only (an HMAC key would
    be a secret shared with every issuer's client, and "none" is no signature)."""
    algorithms = tuple(value.split())
    refused = [alg for alg in algorithms if alg.lower() == "none" or alg.upper().startswith("HS")]
    if refused or not algorithms:
        raise ValueError("name asymmetric JWS algorithms only (RS256, PS256, ES256, EdDSA, ...)")
    return algorithms


def _as_origins(value: str) -> tuple[str, ...]:
    """Web origins, space-separated (``https://sei.example.dk http://127.0.0.1:8001``):
    scheme, host and port only, written as browsers send them (lower case, no default
    port, no path)."""
    origins = []
    for word in value.split():
        parts = urlsplit(word)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
                or parts.username is not None or parts.path not in ("", "/")
                or parts.query or parts.fragment or word == "*"):
            raise ValueError(f"{word!r} is not an origin (scheme://host[:port])")
        default = {"http": 80, "https": 443}[parts.scheme]
        shown = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        origins.append(f"{parts.scheme}://{shown}" + (f":{port}" if port not in (None, default)
                                                     else ""))
    return tuple(origins)


MAX_LEEWAY_SECONDS = 300
# NemLog-in's claims for a professional identity (OIOSAML 3 attribute names, which its
# OpenID Connect tokens carry as claim names): see the README, "Logging in with the
# national identity".
PROFESSIONAL_CVR_CLAIM = "https://data.gov.dk/model/core/eid/professional/cvr"
PROFESSIONAL_ORGANISATION_CLAIM = "https://data.gov.dk/model/core/eid/professional/orgName"
PROFESSIONAL_UUID_CLAIM = "https://data.gov.dk/model/core/eid/professional/uuid/persistent"
def _as_rate_limit(value: str) -> str:
    """A rate limit in Flask-Limiter's notation ("1200 per minute", "10/second;100/hour")."""
    parse_many(value)  # raises ValueError on anything else
    return value.strip()


DATABASE_URL_FORM = ("postgresql+psycopg://user:password@host:5432/name "
                     "or sqlite:////absolute/path/sor.db")


def _as_database_url(value: str) -> str:
    """A database URL SQLAlchemy can open: parsed, with a dialect and a driver installed."""
    try:
        url = make_url(value.strip())
        url.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a database URL this service can open ({reason}); write it as "
                         + DATABASE_URL_FORM) from None
    return value.strip()


def _shown(variable: str, raw: str) -> str:
    """A setting's value as an error message may show it: secrets never, a URL's password
    hidden."""
    if any(word in variable for word in ("PASSWORD", "SECRET")):
        return "(hidden)"
    if variable.endswith("_URL"):
        return repr(re.sub(r"//[^/@]*@", "//***@", raw))
    return repr(raw)


def _as_log_format(value: str) -> str:
    """``json`` or ``text`` (sorregistry/logs.py)."""
    kind = value.strip().lower()
    if kind not in ("json", "text"):
        raise ValueError("must be json or text")
    return kind


ENVIRONMENT_SETTINGS: dict[str, tuple[str, Any]] = {
    "SOR_DATABASE_URL": ("SQLALCHEMY_DATABASE_URI", _as_database_url),
    "SOR_DATABASE_READ_URL": ("DATABASE_READ_URL", str),
    "SOR_REPLICA_MAX_LAG": ("REPLICA_MAX_LAG", _as_seconds),
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
    "SOR_WEBHOOK_MAX_ATTEMPTS": ("WEBHOOK_MAX_ATTEMPTS", _as_int),
    "SOR_WEBHOOK_RETRY_BASE_SECONDS": ("WEBHOOK_RETRY_BASE_SECONDS", _as_int),
    "SOR_WEBHOOK_RETRY_MAX_SECONDS": ("WEBHOOK_RETRY_MAX_SECONDS", _as_int),
    "SOR_WEBHOOK_CLAIM_TIMEOUT_SECONDS": ("WEBHOOK_CLAIM_TIMEOUT_SECONDS", _as_int),
    "SOR_WEBHOOK_TIMEOUT_SECONDS": ("WEBHOOK_TIMEOUT_SECONDS", _as_int),
    "SOR_WEBHOOK_ALLOW_PRIVATE": ("WEBHOOK_ALLOW_PRIVATE", _as_bool),
    "SOR_WEBHOOK_KEEP_DAYS": ("WEBHOOK_KEEP_DAYS", _as_int),
    "SOR_FEED_MAX_WAITING": ("FEED_MAX_WAITING", _as_int),
    "SOR_IMAP_HOST": ("IMAP_HOST", str),
    "SOR_IMAP_PORT": ("IMAP_PORT", _as_int),
    "SOR_IMAP_USER": ("IMAP_USER", str),
    "SOR_IMAP_PASSWORD": ("IMAP_PASSWORD", str),
    "SOR_IMAP_MAILBOX": ("IMAP_MAILBOX", str),
    "SOR_IMAP_SSL": ("IMAP_SSL", _as_bool),
    "SOR_IMAP_STARTTLS": ("IMAP_STARTTLS", _as_bool),
    "SOR_IMAP_TIMEOUT": ("IMAP_TIMEOUT", _as_int),
    "SOR_IMAP_MAX_MESSAGE_SIZE": ("IMAP_MAX_MESSAGE_SIZE", _as_int),
    # Identity: people log in with OpenID Connect, systems call with JWT access tokens.
    "SOR_LOCAL_LOGIN": ("LOCAL_LOGIN", _as_bool),
    "SOR_OIDC_ISSUER": ("OIDC_ISSUER", str),
    "SOR_OIDC_CLIENT_ID": ("OIDC_CLIENT_ID", str),
    "SOR_OIDC_CLIENT_SECRET": ("OIDC_CLIENT_SECRET", str),
    "SOR_OIDC_CLIENT_AUTH": ("OIDC_CLIENT_AUTH", str),
    "SOR_OIDC_PRIVATE_KEY_FILE": ("OIDC_PRIVATE_KEY_FILE", str),
    "SOR_OIDC_SCOPES": ("OIDC_SCOPES", str),
    "SOR_OIDC_REDIRECT_URI": ("OIDC_REDIRECT_URI", str),
    "SOR_OIDC_POST_LOGOUT_REDIRECT_URI": ("OIDC_POST_LOGOUT_REDIRECT_URI", str),
    "SOR_OIDC_LEEWAY_SECONDS": ("OIDC_LEEWAY_SECONDS", _as_leeway),
    "SOR_OIDC_CLAIMS_CVR": ("OIDC_CLAIMS_CVR", str),
    "SOR_OIDC_CLAIMS_ORGANISATION": ("OIDC_CLAIMS_ORGANISATION", str),
    "SOR_OIDC_CLAIMS_PERSON_UUID": ("OIDC_CLAIMS_PERSON_UUID", str),
    "SOR_OIDC_CLAIMS_NAME": ("OIDC_CLAIMS_NAME", str),
    "SOR_OIDC_CLAIMS_EMAIL": ("OIDC_CLAIMS_EMAIL", str),
    "SOR_OIDC_CLAIMS_ROLES": ("OIDC_CLAIMS_ROLES", str),
    "SOR_OIDC_CLAIMS_ROLE_VALUES": ("OIDC_CLAIMS_ROLE_VALUES", _as_role_values),
    "SOR_OIDC_CLAIMS_MUNICIPALITY": ("OIDC_CLAIMS_MUNICIPALITY", str),
    "SOR_API_ISSUERS": ("API_ISSUERS", _as_words),
    "SOR_API_AUDIENCE": ("API_AUDIENCE", str),
    "SOR_API_CVR_CLAIM": ("API_CVR_CLAIM", str),
    "SOR_API_MUNICIPALITY_CLAIM": ("API_MUNICIPALITY_CLAIM", str),
    "SOR_API_ALGORITHMS": ("API_ALGORITHMS", _as_signing_algorithms),
    "SOR_API_LEEWAY_SECONDS": ("API_LEEWAY_SECONDS", _as_leeway),
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
    "SOR_MAX_WITHDRAWAL_SHARE": ("MAX_WITHDRAWAL_SHARE", _as_share),
    "SOR_SUCCESSOR_WARNING_DAYS": ("SUCCESSOR_WARNING_DAYS", _as_int),
    "SOR_PICKER_ORIGINS": ("PICKER_ORIGINS", _as_origins),
    # Operations (sorregistry/metrics.py, logs.py, backup.py).
    "SOR_METRICS_TOKEN": ("METRICS_TOKEN", str),
    "SOR_LOG_FORMAT": ("LOG_FORMAT", _as_log_format),
    "SOR_PG_BINDIR": ("PG_BINDIR", str),
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
    # Hot standbys the read-only API paths read from (sorregistry/replicas.py); None:
    # everything reads the primary. A standby further behind than REPLICA_MAX_LAG
    # seconds is skipped until it catches up.
    "DATABASE_READ_URL": None,
    "REPLICA_MAX_LAG": 5.0,
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
    # Webhook deliveries (hierarchy/webhooks/): retried after base, 2 x base ... seconds
    # (at most max), given up after max attempts (about 4 hours with these values; the
    # subscription is then paused). A receiver gets TIMEOUT seconds to answer; private
    # and loopback addresses are refused unless ALLOW_PRIVATE (development, tests).
    "WEBHOOK_MAX_ATTEMPTS": 10,
    "WEBHOOK_RETRY_BASE_SECONDS": 30,
    "WEBHOOK_RETRY_MAX_SECONDS": 3600,
    "WEBHOOK_CLAIM_TIMEOUT_SECONDS": 120,
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    "WEBHOOK_ALLOW_PRIVATE": False,
    # Delivered deliveries are deleted this many days after their delivery (the worker
    # prunes them after each round); failed ones stay until retried or their
    # subscription is deleted.
    "WEBHOOK_KEEP_DAYS": 30,
    # Long polls of the feed (wait=) a worker holds at once; more are answered at once
    # with Retry-After (hierarchy.feed.routes): the others' threads stay free.
    "FEED_MAX_WAITING": 4,
    "IMAP_PORT": 993,
    "IMAP_MAILBOX": "INBOX",
    "IMAP_SSL": None,  # None: SSL on port 993, plain (or STARTTLS) on any other
    "IMAP_STARTTLS": False,
    "IMAP_TIMEOUT": 60,
    # Mails larger than this are kept raw but not parsed (they become triage items).
    "IMAP_MAX_MESSAGE_SIZE": 10 * 1024 * 1024,
    # Identity (sorregistry/accounts/oidc.py, access_tokens.py; README "Logging in with
    # the national identity"). No issuer: no OpenID Connect login, no JWT access tokens.
    "LOCAL_LOGIN": True,
    "OIDC_ISSUER": None,
    "OIDC_CLIENT_ID": None,
    "OIDC_CLIENT_SECRET": None,
    "OIDC_CLIENT_AUTH": "client_secret_basic",  # or client_secret_post, private_key_jwt
    "OIDC_PRIVATE_KEY_FILE": None,  # a PEM or JWK file, for private_key_jwt
    "OIDC_SCOPES": "openid profile email",
    "OIDC_REDIRECT_URI": None,  # default: /login/oidc/callback on the host asked
    "OIDC_POST_LOGOUT_REDIRECT_URI": None,  # default: /login on the host asked
    "OIDC_LEEWAY_SECONDS": 60,
    "OIDC_CLAIMS_CVR": PROFESSIONAL_CVR_CLAIM,
    "OIDC_CLAIMS_ORGANISATION": PROFESSIONAL_ORGANISATION_CLAIM,
    "OIDC_CLAIMS_PERSON_UUID": PROFESSIONAL_UUID_CLAIM,
    "OIDC_CLAIMS_NAME": "name",
    "OIDC_CLAIMS_EMAIL": "email",
    "OIDC_CLAIMS_ROLES": None,  # a claim naming roles; none: only the local grants
    "OIDC_CLAIMS_ROLE_VALUES": {"reporter": ("reporter",), "municipality": ("municipality",),
                                "sds": ("sds",)},
    "OIDC_CLAIMS_MUNICIPALITY": None,  # a claim with the kommunekode, if the provider has one
    "API_ISSUERS": (),
    "API_AUDIENCE": None,
    "API_CVR_CLAIM": PROFESSIONAL_CVR_CLAIM,
    "API_MUNICIPALITY_CLAIM": "kommunekode",
    "API_ALGORITHMS": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                       "ES256", "ES384", "ES512", "EdDSA"),
    "API_LEEWAY_SECONDS": 30,
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
    # import-shak and import-sor --full refuse a file that would withdraw (close) more
    # than this share of what the register holds, and an empty file, unless given
    # --allow-mass-withdrawal. A complete SHAK file withdraws nothing (codes end with a
    # date, they stay in the file) and a monthly SOR export closes a few per cent; an
    # excerpt or a truncated download withdraws nearly everything.
    "MAX_WITHDRAWAL_SHARE": 0.10,
    # A SOR code closed and replaced by another only warns (resolve, reporting-unit
    # validation) for this many days after its closing; 0: never.
    "SUCCESSOR_WARNING_DAYS": 365,
    # The sites whose pages may embed the picker (/picker?embed=1; hierarchy/embed.py).
    "PICKER_ORIGINS": (),
    # GET /metrics answers only a scrape that sends this bearer token; unset: 404.
    "METRICS_TOKEN": None,
    # json or text; None: json in production, text elsewhere (sorregistry/logs.py).
    "LOG_FORMAT": None,
    # Where pg_dump and pg_restore are (sorregistry backup/restore); None: on the PATH,
    # else the newest of Debian's /usr/lib/postgresql/*/bin.
    "PG_BINDIR": None,
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
            raise ConfigurationError(
                f"{variable}={_shown(variable, raw)} is not valid: {exc}") from exc
    return config

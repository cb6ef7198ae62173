"""Rate limits, so that one client cannot slow the register down for everyone (Flask-Limiter).

**Who is counted, and how much** (settings; limits in Flask-Limiter's notation, several
separated by ``;``):

============================== ===================== =========================================
what                           default               counted per
============================== ===================== =========================================
the APIs, with a valid token   ``1200 per minute``   API client (the identity behind the token)
the APIs, without one          ``120 per minute``    address - an invalid or missing token is
                                                     counted by address, so inventing tokens
                                                     gains nothing
``POST /login``                ``10 per minute``     account (the email as the form gives it,
                                                     normalised)
``POST /login``                ``30 per minute``     address
``GET /login/oidc/callback``   (the same limit)      address (its own count): a view marked
                                                     :func:`login_callback`
mails to the intake            ``30 per hour``       sender (:func:`sender_allowed`)
============================== ===================== =========================================

``SOR_RATELIMIT_API``, ``SOR_RATELIMIT_ANONYMOUS``, ``SOR_RATELIMIT_LOGIN_ACCOUNT``,
``SOR_RATELIMIT_LOGIN_ADDRESS``, ``SOR_RATELIMIT_MAIL_SENDER`` change them;
``SOR_RATELIMIT_ENABLED=0`` turns every limit off. They are on by default, except under
``TESTING``, where a test turns them on (``RATELIMIT_ENABLED``) - the suite's many
requests must not be limited by accident. Every declared API (:mod:`sorregistry.api`:
``/api/v1``, the OpenAPI document and any API a feature declares) is one budget per
client, all endpoints together, and a request under an API's prefix that matches no
route counts too (a scan). Pages are not limited, but for the login's POST and the
identity provider's login callback; a view marked :func:`exempt` is not
(``GET /api/v1/health``, which load balancers ask often). A system calling with an
identity provider's access token is counted as the client the token was issued to
(:mod:`sorregistry.accounts.access_tokens`), however many tokens it gets.

**Counting**: the sliding window counter (the previous window's count, weighted by how
much of it lies in the last window's length, plus the current one), in the database by
default - :mod:`sorregistry.ratelimit_storage`, each worker counting in memory and writing
in batches, with its bounded overshoot - or in Redis with
``SOR_RATELIMIT_STORAGE_URL=redis://host:6379`` (the ``redis`` extra; Flask-Limiter falls
back to per-worker counts while Redis is down). ``memory://`` counts per process.

**Over the limit**: ``429 Too Many Requests`` with ``Retry-After`` (seconds), through the
core error handler (:mod:`sorregistry.errors`): the API's JSON envelope (or what an API
renders its errors as), the HTML error page in the page's language for the login. The OpenAPI
document gives every limited operation its 429 and describes the limits
(``info.description`` and ``x-rate-limits``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, request
from flask.typing import ResponseReturnValue
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from flask_limiter._limits import RuntimeLimit  # RateLimitExceeded's limit; no public name
from limits import parse_many
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, TooManyRequests

from sorregistry import ratelimit_counters, ratelimit_storage
from sorregistry.api import current_api, is_api_request
from sorregistry.database import DbSession
from sorregistry.errors import handle_http_exception
from sorregistry.i18n import _
from sorregistry.ratelimit_openapi import document
from sorregistry.request_id import current_request
from sorregistry.security import authenticate

V = TypeVar("V")
_LIMITER = "sor.ratelimit"
_CALLER = "sor.ratelimit.caller"  # request.environ: whom this request is counted for
_KIND = "sor.ratelimit.kind"  # request.environ: which limits count it
_SKIPPED = "sor.ratelimit.skipped"  # request.environ: whether Flask-Limiter leaves it alone
_REFUSED = "sor.ratelimit.refused"  # app.extensions: the Refusals
_KINDS = "sor.ratelimit.kinds"  # app.extensions: _counted_as per (endpoint, method)
_LIMITS = "sor.ratelimit.api"  # app.extensions: the ApiLimits, when the fast path counts
_BREACHED = "sor.ratelimit.breached"  # request.environ: (limit item, key args) refused
_EXEMPT = "_sor_ratelimit_exempt"
_LOGIN = "_sor_ratelimit_login"
_LOGIN_CALLBACK = "_sor_ratelimit_login_callback"
KEY_PREFIX = "sor"


@dataclass(frozen=True, slots=True)
class LoginForm:
    """Where a login view's account is: the form field, and how it is normalised."""

    account_field: str
    normalise: Callable[[str], str]


# --- marking views --------------------------------------------------------------------------


def exempt(view: V) -> V:
    """Leave *view* (a function or a MethodView class) out of every limit."""
    setattr(view, _EXEMPT, True)
    return view


def login_attempts(*, account_field: str,
                   normalise: Callable[[str], str]) -> Callable[[V], V]:
    """Limit the POSTs to *view* per account (the form field *account_field*, through
    *normalise*) and per address: the login's limits."""

    def mark(view: V) -> V:
        setattr(view, _LOGIN, LoginForm(account_field, normalise))
        return view

    return mark


def login_callback(view: V) -> V:
    """Limit every request to *view* per address, as the login's POSTs are (the
    ``SOR_RATELIMIT_LOGIN_ADDRESS`` limit, a count of its own): the end of a login at an
    identity provider, where no account is known before the provider's answer is checked."""
    setattr(view, _LOGIN_CALLBACK, True)
    return view


def _mark(view: object | None, name: str) -> object | None:
    """The mark *name* on *view*, or on its MethodView class; None without one."""
    found = getattr(view, name, None)
    return found if found is not None else getattr(getattr(view, "view_class", None), name,
                                                   None)


def _is_exempt(view: object | None) -> bool:
    return _mark(view, _EXEMPT) is True


def _login_form(view: object | None) -> LoginForm | None:
    found = _mark(view, _LOGIN)
    return found if isinstance(found, LoginForm) else None


def _view() -> object | None:
    return current_app.view_functions.get(request.endpoint or "")


# --- whom a request is counted for ----------------------------------------------------------


def remote_address() -> str:
    # The address the server sees: behind a reverse proxy, ProxyFix must make it the client's.
    return request.remote_addr or "unknown"


def caller_key() -> str:
    """``client:<id>`` for a valid bearer token, ``address:<ip>`` for anything else."""
    environ = request.environ
    known = environ.get(_CALLER)
    if known is None:
        known = environ[_CALLER] = _identify()
    return str(known)


def _identify() -> str:
    if request.headers.get("Authorization"):
        try:
            return f"client:{authenticate().id}"
        except HTTPException:
            pass  # no valid token (the view answers 401): counted by its address
        except SQLAlchemyError:
            pass  # the token cannot be checked now (the view answers 503)
    return f"address:{remote_address()}"


def _account_key() -> str:
    form = _login_form(_view())
    account = form.normalise(request.form.get(form.account_field, "")) if form else ""
    return "account:" + account[:254]


def _address_key() -> str:
    return "address:" + remote_address()


def _counted_as() -> str:
    """What the request counts against: "api", "login" or "" (nothing); decided once a
    request, and once per route and method (the answer depends on nothing else)."""
    req = current_request()
    environ = req.environ
    known = environ.get(_KIND)
    if known is None:
        rule = req.url_rule
        if rule is None:  # no route: the path decides (an API's prefix or not)
            known = _decide_kind()
        else:
            decided: dict[tuple[str, str], str] = current_app.extensions.setdefault(_KINDS, {})
            route = (rule.endpoint, req.method)
            known = decided.get(route)
            if known is None:
                known = decided[route] = _decide_kind()
        environ[_KIND] = known
    return str(known)


def _decide_kind() -> str:
    view = _view()
    if is_api_request() and not _is_exempt(view):
        return "api"
    if request.method == "POST" and _login_form(view) is not None:
        return "login"
    if _mark(view, _LOGIN_CALLBACK) is True:
        return "login-callback"
    return ""


def _not_counted() -> bool:
    """The request filter: a page or an exempt view - Flask-Limiter looks no further; nor
    at an API request when :class:`ApiLimits` counts it (the fast path). Decided once a
    request (its check, after-request and teardown hooks each ask)."""
    environ = request.environ
    known = environ.get(_SKIPPED)
    if known is None:
        kind = _counted_as()
        known = environ[_SKIPPED] = kind == "" or (
            kind == "api" and _LIMITS in current_app.extensions)
    return bool(known)


def _request_identifier() -> str:
    # A request that matches no route still counts (a scan of /api/v1/...).
    return request.endpoint or request.path


# --- the extension --------------------------------------------------------------------------


def enabled(config: Mapping[str, Any]) -> bool:
    """Whether limits apply: the setting, or - unset - on except in tests."""
    value = config.get("RATELIMIT_ENABLED")
    return not config.get("TESTING") if value is None else bool(value)


def _limits(config: Mapping[str, Any]) -> list[ApplicationLimit]:
    """One limit for the APIs (the client's, or the address's without a valid token),
    two for the login; each request is counted by those of its kind only."""
    client, anonymous = str(config["RATELIMIT_API"]), str(config["RATELIMIT_ANONYMOUS"])

    def api_limit() -> str:
        return client if caller_key().startswith("client:") else anonymous

    return [
        ApplicationLimit(api_limit, key_function=caller_key, scope="api",
                         exempt_when=lambda: _counted_as() != "api"),
        ApplicationLimit(str(config["RATELIMIT_LOGIN_ACCOUNT"]), key_function=_account_key,
                         scope="login-account", exempt_when=lambda: _counted_as() != "login"),
        ApplicationLimit(str(config["RATELIMIT_LOGIN_ADDRESS"]), key_function=_address_key,
                         scope="login-address", exempt_when=lambda: _counted_as() != "login"),
        ApplicationLimit(str(config["RATELIMIT_LOGIN_ADDRESS"]), key_function=_address_key,
                         scope="login-callback",
                         exempt_when=lambda: _counted_as() != "login-callback"),
    ]


def init_app(app: Flask) -> None:
    """Count the API's and the login's requests, answer 429, document the limits."""
    config = app.config
    config["RATELIMIT_ENABLED"] = on = enabled(config)
    storage = str(config["RATELIMIT_STORAGE_URL"])
    in_database = storage.startswith(ratelimit_storage.SCHEME + ":")
    options: dict[str, str | int] = {}
    if in_database:
        options = {"url": str(config["SQLALCHEMY_DATABASE_URI"]),
                   "sync_hits": int(config["RATELIMIT_SYNC_HITS"]),
                   "sync_seconds": int(config["RATELIMIT_SYNC_SECONDS"])}
    extension = Limiter(
        caller_key, application_limits=list(_limits(config)),
        strategy="sliding-window-counter", storage_uri=storage, storage_options=options,
        key_prefix=KEY_PREFIX, request_identifier=_request_identifier,
        # Fail open: the database storage counts on in memory itself; for any other, a
        # storage that fails is replaced by per-worker counts until it answers again.
        swallow_errors=True, in_memory_fallback_enabled=not in_database,
        headers_enabled=False, enabled=on)
    extension.request_filter(_not_counted)
    if on:
        app.before_request(_count_api_request)  # before Flask-Limiter's own check
    extension.init_app(app)
    _check_only_what_it_counts(app, extension)
    app.extensions[_LIMITER] = extension
    app.extensions[_REFUSED] = Refusals()
    if on and not extension._in_memory_fallback_enabled:  # noqa: SLF001 - see ApiLimits
        app.extensions[_LIMITS] = ApiLimits(extension, config)
    app.register_error_handler(RateLimitExceeded, too_many_requests)
    document(app, on, _is_exempt)


def _check_only_what_it_counts(app: Flask, extension: Limiter) -> None:
    """Put Flask-Limiter's own before-request check behind the request filter.

    Flask-Limiter asks its request filters only after identifying the request and looking
    up the view's limits - some 90 microseconds an API request, spent to learn that the
    fast path (:class:`ApiLimits`) counts it, and on every page. The filter asked first,
    its check runs only for what it counts: the login, and the APIs when the fast path is
    off. (Flask-Limiter 4 has no switch for its hook, so the registered hook is swapped.)
    """
    hooks = app.before_request_funcs.setdefault(None, [])
    own = extension._check_request_limit  # noqa: SLF001 - the hook init_app registered

    def check_counted() -> None:
        if not _not_counted():
            own()

    hooks[:] = [check_counted if hook == own else hook for hook in hooks]

    # Its after-request hook (headers, conditional deductions) and teardown (its request
    # context) have nothing to do for a request its check did not see: ~20 microseconds
    # of every answer otherwise. Found as init_app registered them, like the check above.
    inject = Limiter._Limiter__inject_headers  # type: ignore[attr-defined]  # noqa: SLF001
    release = extension._Limiter__release_context  # type: ignore[attr-defined]  # noqa: SLF001

    def _flask_limiters(hook: Callable[..., Any]) -> bool:
        return (isinstance(hook, partial) and hook.func is inject) or hook == release

    # (Flask types its hooks as possibly async; these two are not.)
    def after_counted(hook: Callable[..., Any]) -> Callable[[Response], Response]:
        def inject(response: Response) -> Response:
            return response if _not_counted() else cast(Response, hook(response))
        return inject

    def teardown_counted(hook: Callable[..., Any]) -> Callable[[BaseException | None], None]:
        def release(error: BaseException | None = None) -> None:
            if not _not_counted():
                hook(error)
        return release

    after = app.after_request_funcs.setdefault(None, [])
    after[:] = [after_counted(hook) if _flask_limiters(hook) else hook for hook in after]
    teardown = app.teardown_request_funcs.setdefault(None, [])
    teardown[:] = [teardown_counted(hook) if _flask_limiters(hook) else hook
                   for hook in teardown]


def limiter(app: Flask) -> Limiter:
    """The app's limiter (Flask-Limiter's extension object)."""
    found: Limiter = app.extensions[_LIMITER]
    return found


class Refusals:
    """The API callers refused lately, and until when (the Retry-After they were given).

    Until then a caller's requests are refused at once, without asking Flask-Limiter
    (which costs a few hundred microseconds a request): a client far over its limit costs
    the service little more than the refusals themselves. Nothing is lost by it - the
    sliding window counter counts no refused request - and the limiter decides again when
    the time is up. Per worker.
    """

    MAX = 10_000  # callers remembered before the expired ones are dropped

    def __init__(self) -> None:
        self._until: dict[str, tuple[float, RuntimeLimit]] = {}

    def remember(self, key: str, until: float, limit: RuntimeLimit) -> None:
        if len(self._until) >= self.MAX:
            now = time.time()
            self._until = {k: v for k, v in self._until.items() if v[0] > now}
        self._until[key] = (until, limit)

    def current(self, key: str) -> tuple[float, RuntimeLimit] | None:
        """(until, the limit it broke) while *key* is refused; None otherwise."""
        known = self._until.get(key)
        return known if known is not None and known[0] > time.time() else None


class ApiLimits:
    """The API's limits, counted without Flask-Limiter's per-request evaluation.

    Flask-Limiter resolves, filters and sorts every declared limit for every request -
    about a third of a cached lookup's own time in the service (profiled). An API request
    is counted by exactly one list of limits (the client's, or the address's without a
    valid token), so this parses both lists once and asks the limits strategy directly,
    with the same keys Flask-Limiter would use (``sor/<caller>/api``). The login's limits
    stay with Flask-Limiter: they are few and rare.

    Only for a storage that fails open by itself (the database storage, ``memory://``):
    a storage that can fail (Redis) keeps Flask-Limiter's path, which swaps in per-worker
    counts while it is down.
    """

    def __init__(self, extension: Limiter, config: Mapping[str, Any]) -> None:
        self.extension = extension
        self.client = self._runtime(str(config["RATELIMIT_API"]))
        self.anonymous = self._runtime(str(config["RATELIMIT_ANONYMOUS"]))

    @staticmethod
    def _runtime(limits: str) -> list[RuntimeLimit]:
        return [RuntimeLimit(item, caller_key, "api")
                for item in sorted(parse_many(limits))]

    def check(self, caller: str) -> None:
        """Count a request of *caller*; RateLimitExceeded when it is over a limit."""
        strategy = self.extension.limiter
        for runtime in self.client if caller.startswith("client:") else self.anonymous:
            args = (KEY_PREFIX, caller, "api")
            if not strategy.hit(runtime.limit, *args):
                request.environ[_BREACHED] = (runtime.limit, args)
                raise RateLimitExceeded(runtime)


def _count_api_request() -> None:
    """Refuse a caller still within the Retry-After of its last refusal; else count the
    request against the API's limits (the fast path, when :class:`ApiLimits` is on)."""
    if _counted_as() != "api":
        return
    caller = caller_key()
    extensions = current_app.extensions
    known = extensions[_REFUSED].current(caller)
    if known is not None:
        raise RateLimitExceeded(known[1])
    api_limits: ApiLimits | None = extensions.get(_LIMITS)
    if api_limits is not None:
        api_limits.check(caller)


def too_many_requests(error: RateLimitExceeded) -> ResponseReturnValue:
    """429 with Retry-After, rendered by the core's handler like any other HTTP error."""
    if current_api() is None:
        seconds = retry_after(error)
        message = _("For mange forsøg. Vent %(seconds)s sekunder, og prøv igen.",
                    seconds=seconds)
    else:
        caller, refusals = caller_key(), current_app.extensions[_REFUSED]
        known = refusals.current(caller)
        if known is not None:
            seconds = max(1, math.ceil(known[0] - time.time()))
        else:
            seconds = retry_after(error)
            refusals.remember(caller, time.time() + seconds, error.limit)
        message = (f"too many requests: the limit is {error.limit.limit} for this "
                   f"{caller.partition(':')[0]}; try again in {seconds} s")
    return handle_http_exception(TooManyRequests(message, retry_after=seconds))


def retry_after(error: RateLimitExceeded) -> int:
    """Whole seconds until the breached limit allows a request again (at least 1)."""
    length = error.limit.limit.get_expiry()
    fast = request.environ.get(_BREACHED)
    if fast is not None:
        item, args = fast
        reset_at = limiter(current_app).limiter.get_window_stats(item, *args).reset_time
    else:
        breached = limiter(current_app).current_limit
        if breached is None:
            return length
        reset_at = breached.reset_at
    return min(length, max(1, math.ceil(reset_at - time.time())))


# --- the mail intake ------------------------------------------------------------------------


def sender_allowed(session: DbSession, sender: str,
                   now: datetime) -> bool:
    """Count a mail from *sender* and tell whether it is within the per-sender limit
    (``SOR_RATELIMIT_MAIL_SENDER``, fixed windows).

    The count is written in *session*'s transaction, so it commits (or rolls back) with
    the intake's own work: a mail read again after a crash is counted once. A mail over
    the limit is still kept - the intake files it for triage as "rate limited".
    """
    config = current_app.config
    if not enabled(config):
        return True
    address = sender.strip().lower()[:254]
    allowed = True
    for item in parse_many(str(config["RATELIMIT_MAIL_SENDER"])):
        expiry = item.get_expiry()
        start = int(now.timestamp()) // expiry * expiry
        key = item.key_for(KEY_PREFIX, "mail-sender", address)
        hits = ratelimit_counters.add_hits(session, key, start, expiry)
        allowed = hits <= item.amount and allowed
    return allowed

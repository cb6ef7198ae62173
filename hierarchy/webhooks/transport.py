"""Where a webhook may be sent, and sending it: the SSRF rules and one signed POST.

A subscription's URL is checked when it is created and again at every delivery, since a
name may resolve elsewhere later (DNS rebinding): ``https://`` only (``http://`` in
development, ``SOR_ENV=development``), no user info, and every address the host resolves
to must be a public one - loopback, private, link-local, shared (CGNAT), multicast,
reserved and unspecified addresses are refused, IPv4 and IPv6 alike, an IPv4-mapped IPv6
address judged as its IPv4 address - unless ``SOR_WEBHOOK_ALLOW_PRIVATE`` is set
(development and tests). The connection goes to the address that was checked (the name is
not resolved twice), with the host name for TLS (SNI and certificate check). Redirects are
never followed (a 3xx is a failed delivery), the receiver gets a timeout, and at most
:data:`MAX_RESPONSE` bytes of its answer are read.

The signature is Stripe's scheme: ``X-SOR-Signature: t=<unix time>,v1=<hex>`` where hex
is HMAC-SHA256 with the subscription's secret over ``f"{t}.{body}"``; ``X-SOR-Timestamp``
repeats t, ``X-SOR-Position`` is the entry's feed position and ``X-SOR-Delivery`` the
delivery's id (the same on every retry: a receiver drops one it has seen).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from sorregistry.errors import DomainError

MAX_RESPONSE = 64 * 1024  # bytes of a receiver's answer read, at most
MAX_URL = 2000
USER_AGENT = "SOR-registry-webhooks/1"


class UnsafeUrl(DomainError, ValueError):
    """A webhook URL the registry will not send to (scheme, form, or address)."""

    status = 400


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (an address that was checked) and what to ask."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback or address.is_private or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified
        or not address.is_global
    )


def check_url(url: str, *, development: bool) -> tuple[str, str, int, str]:
    """The URL's scheme, host, port and path+query, or :class:`UnsafeUrl` saying why."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UnsafeUrl(f"url: give an https:// URL of at most {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeUrl("url: no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"url: not a URL ({exc})") from exc
    allowed = ("https", "http") if development else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl("url: deliveries go to https:// URLs only"
                        + ("" if development else " (http:// only in development)"))
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("url: no user name or password in the URL (the signature "
                        "authenticates the registry)")
    if not parts.hostname:
        raise UnsafeUrl("url: no host")
    if parts.fragment:
        raise UnsafeUrl("url: no fragment (#...)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def resolve(url: str, *, development: bool, allow_private: bool) -> Target:
    """Check *url* and resolve its host; every address must be allowed (or
    :class:`UnsafeUrl`). The target connects to the first."""
    scheme, host, port, path = check_url(url, development=development)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"url: the host {host!r} does not resolve ({exc})") from exc
    addresses = [str(info[4][0]) for info in found]
    if not addresses:
        raise UnsafeUrl(f"url: the host {host!r} has no address")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not allow_private and _refused(address):
            raise UnsafeUrl(
                f"url: {host} resolves to {address}, a loopback, private or reserved "
                "address (allowed only with SOR_WEBHOOK_ALLOW_PRIVATE)")
    return Target(scheme, host, port, addresses[0], path)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-SOR-Signature`` value for *body* sent at *timestamp*."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address already checked, with the host's name for SNI and the
    certificate (no second lookup of the name)."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str  # the start of the receiver's answer, for the staff's view


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST *body* to *target*; the receiver's status. Raises OSError (refused, timeout,
    TLS) or http.client.HTTPException (not HTTP). No redirect is followed."""
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPS(target, timeout, ssl.create_default_context())
    else:
        connection = _PinnedHTTP(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        excerpt = response.read(MAX_RESPONSE)[:300].decode("utf-8", "replace")
        return Answer(response.status, excerpt)
    finally:
        connection.close()

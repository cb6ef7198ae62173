"""Does a mail come from the address in its From? How the intake decides to believe it.

Anyone can write ``From: sor@kk.dk``. A mail from a registered contact becomes an
application only when its sender is *authenticated* by one of the methods the operator
configures (``SOR_MAIL_SENDER_AUTH``, space-separated; any one that passes is enough):

``authentication-results``
    The receiving mail server's verdict, RFC 8601: the ``Authentication-Results`` header
    it adds. Only the topmost such header whose authserv-id is
    ``SOR_MAIL_TRUSTED_AUTHSERV_ID`` counts - anything below it, or naming another
    server, came with the mail and can be forged. It passes with ``dmarc=pass``, or
    with a ``dkim=pass`` (``header.d``) or ``spf=pass`` (``smtp.mailfrom``) whose domain
    is the From address's domain or a parent of it (DMARC's relaxed alignment); any
    ``dmarc=fail`` fails it. The server must remove headers that claim its authserv-id
    from incoming mail (RFC 8601 section 5; Postfix with OpenDMARC, Exchange Online and
    rspamd do).
``dkim``
    The service verifies the mail's DKIM signatures itself (``dkimpy``, the keys from
    DNS): a valid signature whose ``d=`` is aligned as above, that signs the From header
    and has no ``l=`` (a body length lets anyone append to a signed mail).
``none``
    No check: every mail from a registered contact is believed. For development and
    tests only; refused otherwise.

The default, when ``SOR_MAIL_SENDER_AUTH`` is not set: ``authentication-results`` when
``SOR_MAIL_TRUSTED_AUTHSERV_ID`` names the receiving server, else ``dkim``; ``none`` in
development and tests. A register that issues codes on the strength of a mail must be
able to show who sent it (OWASP ASVS level 2, V2/V13: authenticate before acting, no
trust in client-supplied identity), and a forged mail loses nothing by the default: it
is kept in the ledger as a triage item (``unauthenticated``) for staff to judge.

A parent-domain alignment check needs no public-suffix list: a signature for ``d=dk``
would need the key in the zone of ``dk`` itself, which no sender controls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message

import dkim
from dkim.dnsplug import get_txt

from applications.mail_headers import header_values, sender_domain

__all__ = [
    "METHODS",
    "AuthResult",
    "DnsLookup",
    "SenderCheck",
    "SenderPolicy",
    "TrustConfigurationError",
    "aligned",
    "parse_authentication_results",
]

METHODS = ("authentication-results", "dkim", "none")
# dkimpy's lookup: a DNS name (bytes, with the trailing dot) -> the TXT record, or None.
DnsLookup = Callable[..., bytes | None]
_MAX_SIGNATURES = 5  # DKIM signatures tried per mail (each costs a DNS lookup)
_RELAXED_ENVIRONMENTS = ("development",)


class TrustConfigurationError(ValueError):
    """The sender authentication settings are unusable; the message says which and why."""


@dataclass(frozen=True, slots=True)
class SenderCheck:
    """Whether the sender is authenticated, and how (or why not), for the ledger."""

    authenticated: bool
    how: str


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``method=result`` of an Authentication-Results header, with its properties."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)


def aligned(domain: str | None, from_domain: str | None) -> bool:
    """True when *domain* is the From domain or a parent of it (relaxed alignment)."""
    if not domain or not from_domain:
        return False
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return from_domain == domain or from_domain.endswith("." + domain)


# -- RFC 8601 -------------------------------------------------------------------------


def _without_comments(value: str) -> str:
    """Drop (comments), which may nest; quoted strings are kept as they are."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
            continue
        elif not quoted and ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)


_PARTS = re.compile(r'(?:"(?:[^"\\]|\\.)*"|[^;"])+')
_PAIR = re.compile(r'([A-Za-z0-9_.-]+)(?:/[0-9]+)?\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]+)')


def parse_authentication_results(value: str) -> tuple[str, list[AuthResult]]:
    """``(authserv-id, results)`` of one Authentication-Results header value.

    ``mx.sds.dk; spf=pass smtp.mailfrom=kk.dk; dkim=pass header.d=kk.dk`` ->
    ``("mx.sds.dk", [AuthResult("spf", "pass", {"smtp.mailfrom": "kk.dk"}), ...])``.
    Methods, results and property names are lower-cased; a part that is not
    ``method=result`` is skipped.
    """
    parts = [part.strip() for part in _PARTS.findall(_without_comments(value))]
    if not parts or not parts[0]:
        return "", []
    authserv_id = parts[0].split()[0].lower()
    results: list[AuthResult] = []
    for part in parts[1:]:
        pairs = _PAIR.findall(part)
        if not pairs:
            continue
        (method, result), *rest = pairs
        properties = {name.lower(): text.strip('"') for name, text in rest}
        results.append(AuthResult(method.lower(), result.strip('"').lower(), properties))
    return authserv_id, results


def _domain_of(value: str | None) -> str | None:
    if not value:
        return None
    return sender_domain(value) if "@" in value else value.strip().lower().rstrip(".")


def _verdict(results: list[AuthResult], from_domain: str | None) -> SenderCheck:
    """What the trusted server's results say of the From domain."""
    for found in results:
        if found.method == "dmarc" and found.result == "fail":
            return SenderCheck(False, "dmarc=fail")
    for found in results:
        if found.method == "dmarc" and found.result == "pass":
            header_from = found.properties.get("header.from")
            if header_from is None or _domain_of(header_from) == from_domain:
                return SenderCheck(True, "dmarc=pass")
    for found in results:
        if found.result != "pass":
            continue
        if found.method == "dkim":
            domain = found.properties.get("header.d") or _domain_of(
                found.properties.get("header.i"))
        elif found.method == "spf":
            domain = _domain_of(found.properties.get("smtp.mailfrom"))
        else:
            continue
        if aligned(domain, from_domain):
            return SenderCheck(True, f"{found.method}=pass for {domain}")
    said = "; ".join(f"{r.method}={r.result}" for r in results) or "none"
    return SenderCheck(False, f"no aligned pass ({said})")


# -- the policy --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """How the intake authenticates senders: the configured methods and what they need.

    *dns* is the TXT lookup DKIM verification uses; None is dkimpy's own (the system's
    resolver). Tests give one that serves the keys they made.
    """

    methods: tuple[str, ...]
    authserv_id: str | None = None
    dns: DnsLookup | None = None

    @classmethod
    def from_config(
        cls, config: Mapping[str, object], *, dns: DnsLookup | None = None
    ) -> SenderPolicy:
        """From ``MAIL_SENDER_AUTH`` and ``MAIL_TRUSTED_AUTHSERV_ID`` (see the module)."""
        authserv_id = str(config.get("MAIL_TRUSTED_AUTHSERV_ID") or "").strip().lower()
        relaxed = bool(config.get("TESTING")) or config.get("SOR_ENV") in _RELAXED_ENVIRONMENTS
        given = str(config.get("MAIL_SENDER_AUTH") or "").replace(",", " ").lower().split()
        if not given:
            given = (["authentication-results"] if authserv_id
                     else ["none"] if relaxed else ["dkim"])
        unknown = [method for method in given if method not in METHODS]
        if unknown:
            raise TrustConfigurationError(
                f"SOR_MAIL_SENDER_AUTH: unknown method {', '.join(unknown)}; "
                f"use {', '.join(METHODS)}")
        if "none" in given and not relaxed:
            raise TrustConfigurationError(
                "SOR_MAIL_SENDER_AUTH=none believes any From address; it is for "
                "development only (SOR_ENV=development)")
        if "authentication-results" in given and not authserv_id:
            raise TrustConfigurationError(
                "SOR_MAIL_SENDER_AUTH=authentication-results needs "
                "SOR_MAIL_TRUSTED_AUTHSERV_ID: the authserv-id your receiving mail "
                "server writes in its Authentication-Results headers")
        return cls(methods=tuple(dict.fromkeys(given)), authserv_id=authserv_id or None,
                   dns=dns)

    def check(self, raw: bytes, headers: Message, sender: str | None) -> SenderCheck:
        """Whether *sender* (the From address read from *headers*) is authenticated."""
        if "none" in self.methods:
            return SenderCheck(True, "not checked (SOR_MAIL_SENDER_AUTH=none)")
        from_domain = sender_domain(sender)
        reasons: list[str] = []
        for method in self.methods:
            if method == "authentication-results":
                found = self._authentication_results(headers, from_domain)
            else:
                found = self._dkim(raw, from_domain)
            if found.authenticated:
                return found
            reasons.append(found.how)
        return SenderCheck(False, "; ".join(reasons))

    def _authentication_results(self, headers: Message, from_domain: str | None) -> SenderCheck:
        for value in header_values(headers, "Authentication-Results"):
            authserv_id, results = parse_authentication_results(value)
            if authserv_id == self.authserv_id:
                found = _verdict(results, from_domain)
                return SenderCheck(found.authenticated,
                                   f"Authentication-Results of {authserv_id}: {found.how}")
        return SenderCheck(False, f"no Authentication-Results of {self.authserv_id}")

    def _dkim(self, raw: bytes, from_domain: str | None) -> SenderCheck:
        lookup: DnsLookup = self.dns or get_txt
        reasons: list[str] = []
        try:
            verifier = dkim.DKIM(raw, minkey=1024)
            count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
        except Exception as exc:  # noqa: BLE001 - dkimpy on hostile bytes: not authenticated
            return SenderCheck(False, f"DKIM: the message cannot be read ({exc})")
        for index in range(min(count, _MAX_SIGNATURES)):
            try:
                valid = verifier.verify(idx=index, dnsfunc=lookup)
            except Exception as exc:  # noqa: BLE001 - DKIMException, and binascii's on bad base64
                reasons.append(f"DKIM signature {index + 1}: {type(exc).__name__}: {exc}")
                continue
            domain = (verifier.domain or b"").decode("ascii", "replace")
            signed = [name.lower() for name in verifier.include_headers]
            if not valid:
                reasons.append(f"DKIM signature {index + 1} ({domain}) does not verify")
            elif b"l" in verifier.signature_fields:
                reasons.append(f"DKIM signature {index + 1} ({domain}) signs part of the body")
            elif b"from" not in signed:
                reasons.append(f"DKIM signature {index + 1} ({domain}) does not sign From")
            elif not aligned(domain, from_domain):
                reasons.append(f"DKIM signature {index + 1} is {domain}'s, not {from_domain}'s")
            else:
                return SenderCheck(True, f"dkim=pass for {domain}")
        return SenderCheck(False, "; ".join(reasons) or "no DKIM signature")

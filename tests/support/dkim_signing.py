"""DKIM for the tests: keys they make, mails signed with them, the keys served as DNS would.

No network: :class:`SigningDomain` makes an RSA key (in Python, with Miller-Rabin
primes: no openssl, no ``cryptography``), signs mails with dkimpy as a sending server
would, and :meth:`KeyServer.lookup` answers dkimpy's TXT queries
(``selector._domainkey.domain.``) from the keys registered with it, as the intake's
injected DNS lookup (``SenderPolicy(dns=...)``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field

import dkim
import dkim.crypto

_E = 65537
_RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption


def _probably_prime(n: int, rounds: int = 32) -> bool:
    if n < 4:
        return n in (2, 3)
    for small in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % small == 0:
            return n == small
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if (candidate - 1) % _E and _probably_prime(candidate):
            return candidate


# -- DER, the little of it a key needs ---------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _integer(n: int) -> bytes:
    return _tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def _sequence(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


@dataclass(frozen=True)
class RsaKey:
    private_pem: bytes  # RFC 8017 RSAPrivateKey, PEM: what dkimpy signs with
    public_der: bytes  # X.509 SubjectPublicKeyInfo: the DNS record's p=

    @classmethod
    def make(cls, bits: int = 1024) -> RsaKey:
        while True:
            p, q = _prime(bits // 2), _prime(bits // 2)
            n = p * q
            if p != q and n.bit_length() == bits:
                break
        d = pow(_E, -1, (p - 1) * (q - 1))
        private = _sequence(_integer(0), _integer(n), _integer(_E), _integer(d), _integer(p),
                            _integer(q), _integer(d % (p - 1)), _integer(d % (q - 1)),
                            _integer(pow(q, -1, p)))
        encoded = base64.encodebytes(private).replace(b"\n", b"")
        lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
        pem = (b"-----BEGIN RSA PRIVATE KEY-----\n" + b"\n".join(lines)
               + b"\n-----END RSA PRIVATE KEY-----\n")
        public = _sequence(_sequence(_tlv(0x06, _RSA_OID), b"\x05\x00"),
                           _tlv(0x03, b"\x00" + _sequence(_integer(n), _integer(_E))))
        return cls(private_pem=pem, public_der=public)


@dataclass
class KeyServer:
    """The DNS the intake's DKIM check asks: TXT records of the keys registered here."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    asked: list[bytes] = field(default_factory=list)

    def publish(self, domain: str, selector: str, key: RsaKey) -> None:
        name = f"{selector}._domainkey.{domain}.".encode()
        self.records[name] = b"v=DKIM1; k=rsa; p=" + base64.b64encode(key.public_der)

    def lookup(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc``: the TXT record of *name*, or None (NXDOMAIN)."""
        self.asked.append(name)
        return self.records.get(name)


@dataclass
class SigningDomain:
    """A sending domain with its key, published on *server* under *selector*."""

    domain: str
    server: KeyServer
    selector: str = "sel1"
    key: RsaKey = field(default_factory=RsaKey.make)

    def __post_init__(self) -> None:
        self.server.publish(self.domain, self.selector, self.key)

    def sign(self, raw: bytes, *, headers: tuple[str, ...] = ("from", "to", "subject",
                                                              "date", "message-id"),
             length: bool = False) -> bytes:
        """*raw* with a DKIM-Signature of this domain on top, as its mail server adds."""
        signature = dkim.sign(raw, self.selector.encode(), self.domain.encode(),
                              self.key.private_pem,
                              include_headers=[h.encode() for h in headers], length=length)
        return signature + raw

    def sign_without_from(self, raw: bytes) -> bytes:
        """A valid signature whose ``h=`` leaves the From header out, which dkimpy's own
        ``sign`` refuses to write (RFC 6376 requires From) but its ``verify`` accepts:
        what a sender that signs carelessly sends."""
        verifier = dkim.DKIM(raw)
        key = dkim.crypto.parse_pem_private_key(self.key.private_pem)
        canonical = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/simple")
        signed = (b"subject", b"date")
        verifier.hasher = dkim.HASH_ALGORITHMS[b"rsa-sha256"]
        body_hash = hashlib.sha256(canonical.canonicalize_body(verifier.body)).digest()
        domain, selector = self.domain.encode(), self.selector.encode()
        fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/simple"),
                  (b"d", domain), (b"i", b"@" + domain), (b"q", b"dns/txt"),
                  (b"s", selector), (b"t", str(int(time.time())).encode()),
                  (b"h", b" : ".join(signed)), (b"bh", base64.b64encode(body_hash)),
                  (b"b", b"0" * 60)]
        header = verifier.gen_header(fields, signed, canonical, b"DKIM-Signature", key)
        return b"DKIM-Signature: " + header + raw

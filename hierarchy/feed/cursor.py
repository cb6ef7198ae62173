"""The feed's cursors: a position, signed with the register's own key.

A cursor is opaque to its holder: base64url (no padding) of a version byte, the
position (8 bytes, big-endian) and the first 12 bytes of an HMAC-SHA256 of both under
the register's cursor key (``feed_state.cursor_key``, made at random by the migration).
A cursor that was altered, cut short or made up is refused, saying which - never read
as "from the start", which would hand a mirror the whole register again, nor as some
other position, which would skip changes for good.

The key is the register's, not ``SOR_SECRET_KEY``: rotating the secret key (after a
leak, say) must not invalidate every mirror's cursor - a cursor never expires - and a
cursor of another register (a test system's) is refused rather than misread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from sorregistry.errors import DomainError

_VERSION = 1
_POSITION_BYTES = 8
_MAC_BYTES = 12
_RAW_BYTES = 1 + _POSITION_BYTES + _MAC_BYTES
CURSOR_LENGTH = (_RAW_BYTES * 8 + 5) // 6  # characters of base64 without padding: 28


class InvalidCursor(DomainError):
    """A cursor this register did not issue, or not whole (400, on ``after``)."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(f"after: {reason}", field_errors={"after": [reason]})


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(position: int, key: bytes) -> str:
    """The cursor of *position* (the last one its holder has seen)."""
    body = bytes([_VERSION]) + position.to_bytes(_POSITION_BYTES, "big")
    return base64.urlsafe_b64encode(body + _mac(key, body)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, key: bytes) -> int:
    """The position *cursor* holds; :class:`InvalidCursor` saying why it is refused."""
    if len(cursor) != CURSOR_LENGTH:
        shape = "cut short" if len(cursor) < CURSOR_LENGTH else "too long"
        raise InvalidCursor(f"not a cursor of this feed: {shape} ({len(cursor)} characters, "
                            f"a cursor has {CURSOR_LENGTH}); pass the 'next' of a page "
                            "or the cursor an export names, whole")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                               validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("not a cursor of this feed: not base64url text") from exc
    if len(raw) != _RAW_BYTES or raw[0] != _VERSION:
        raise InvalidCursor("not a cursor of this feed: unknown cursor format")
    body, mac = raw[: 1 + _POSITION_BYTES], raw[1 + _POSITION_BYTES :]
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise InvalidCursor("not a cursor of this register: its signature does not match "
                            "(altered, or issued by another register)")
    return int.from_bytes(body[1:], "big")

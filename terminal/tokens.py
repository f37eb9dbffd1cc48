"""The signed card token, "cardpos token v1", carried in a QR code or an NFC tag.

A card's credential must be checkable offline and must not be forgeable by whoever can print a
QR code or write a tag, so the issuer signs a compact binary payload with Ed25519; terminals hold
the issuers' public keys by key id. The byte layout is fixed and documented in
docs/token-format.md so that another vendor's system can produce and read the same tokens.

Layout (all integers big-endian), followed by a 64-byte signature:

    version 0x01 | flags (bit 0 = dynamic) | key id (len + ASCII) | card number (digit count +
    packed BCD, pad nibble 0xF) | purse count + (len + ASCII name)* | issued_at u32 |
    expires_at u32 (0 = none) | [dynamic only: window_s u16, counter u32]

Each valid payload has exactly one encoding and every other byte string is refused, so a token's
bytes identify it. Replay protection for dynamic codes (remembering each (key id, card, counter)
until its window has passed) belongs to the store, not to this module.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from terminal import base45
from terminal.errors import BadInput, TokenError
from terminal.reasons import Reason

VERSION = 0x01
FLAG_DYNAMIC = 0x01
#: Signed ahead of the payload so a cardpos signature can never be passed off as one over some
#: other message made with the same key (and a future version cannot be mistaken for this one).
SIGNING_PREFIX = b"cardpos-token-v1\x00"
SIGNATURE_LEN = 64
MAX_PURSES = 8
#: Every character of the prefix and of base45 is in QR alphanumeric mode.
QR_PREFIX = "CP1:"
#: NFC Forum external type (TNF 0x04) of the NDEF record whose payload is the raw token bytes.
NDEF_TYPE = "cardpos.org:t"

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,16}")
_CARD_NUMBER = re.compile(r"[0-9]{8,19}")
_PURSE = re.compile(r"[a-z0-9_]{1,16}")
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Dynamic:
    """The rotating part of a code shown by a customer's app, so a screenshot goes stale.

    The code is valid for `window_s` seconds after its `issued_at`; `counter` (by default
    `dynamic_counter(issued_at, window_s)`) is what the store remembers to refuse a second use.
    """

    window_s: int
    counter: int


@dataclass(frozen=True)
class TokenPayload:
    """What an issuer vouches for: which card, which purses to offer, and for how long.

    `purses` are hints (names in the issuer's order) so the terminal can preselect a purse; the
    card's real purses still come from the store. `expires_at` is None for a code that does not
    expire by itself. Times are unix seconds.
    """

    key_id: str
    card_number: str
    purses: tuple[str, ...]
    issued_at: int
    expires_at: int | None
    dynamic: Dynamic | None = None


def sign_token(payload: TokenPayload, private_key: Ed25519PrivateKey) -> bytes:
    """The full token (payload bytes + signature) for `payload`, signed with `private_key`.

    Raises `BadInput` when a field is outside what the format can carry, rather than producing a
    token that every terminal would refuse.
    """
    problem = _problem(payload)
    if problem is not None:
        raise BadInput(detail=problem)
    body = _encode(payload)
    return body + private_key.sign(SIGNING_PREFIX + body)


def parse_token(raw: bytes) -> tuple[TokenPayload, bytes, bytes]:
    """Split a token into (payload, signed message, signature) without checking the signature.

    The signed message is the exact input of the signature (`SIGNING_PREFIX` + payload bytes).
    Any structural problem, including trailing bytes or a non-canonical field, raises
    `TokenError(Reason.MALFORMED_CODE)`; nothing else is ever raised, because `raw` comes from
    whoever held up the QR code or the tag.
    """
    reader = _Reader(raw)
    version = reader.byte("version")
    if version != VERSION:
        raise _malformed(f"unsupported token version {version}")
    flags = reader.byte("flags")
    if flags & ~FLAG_DYNAMIC:
        raise _malformed(f"reserved flag bits set in {flags:#04x}")
    key_id = reader.text("key id")
    card_number = reader.bcd_digits("card number")
    purses = tuple(reader.text("purse") for _ in range(reader.byte("purse count")))
    issued_at, expires_at = struct.unpack(">II", reader.take(8, "times"))
    dynamic = None
    if flags & FLAG_DYNAMIC:
        window_s, counter = struct.unpack(">HI", reader.take(6, "dynamic part"))
        dynamic = Dynamic(window_s=window_s, counter=counter)
    body_len = reader.pos
    signature = reader.take(SIGNATURE_LEN, "signature")
    if reader.pos != len(raw):
        raise _malformed(f"{len(raw) - reader.pos} bytes after the signature")
    payload = TokenPayload(
        key_id=key_id,
        card_number=card_number,
        purses=purses,
        issued_at=issued_at,
        expires_at=expires_at or None,
        dynamic=dynamic,
    )
    problem = _problem(payload)
    if problem is not None:
        raise _malformed(problem)
    return payload, SIGNING_PREFIX + raw[:body_len], signature


def verify_token(
    raw: bytes, public_keys: Mapping[str, bytes], now: int, skew_s: int = 60
) -> TokenPayload:
    """The payload of `raw` if it is well-formed, signed by a known key and valid at `now`.

    `public_keys` maps key id -> 32-byte raw Ed25519 public key. Checks run in this order and the
    first failure raises `TokenError` with its reason: structure (MALFORMED_CODE), key id
    (UNKNOWN_KEY), signature (BAD_SIGNATURE), issued in the future beyond `skew_s`
    (CODE_NOT_YET_VALID), past `expires_at` or past a dynamic code's window, beyond `skew_s`
    (EXPIRED_CODE). Whether a dynamic code was already used is the caller's (the store's) check.
    """
    payload, message, signature = parse_token(raw)
    key = public_keys.get(payload.key_id)
    if key is None:
        raise TokenError(Reason.UNKNOWN_KEY, key_id=payload.key_id)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except ValueError as exc:  # a stored key of the wrong length: no token can be checked with it
        raise TokenError(
            Reason.UNKNOWN_KEY, key_id=payload.key_id, detail="stored key is not 32 bytes"
        ) from exc
    except InvalidSignature as exc:
        raise TokenError(Reason.BAD_SIGNATURE, key_id=payload.key_id) from exc
    if payload.issued_at > now + skew_s:
        raise TokenError(Reason.CODE_NOT_YET_VALID, issued_at=payload.issued_at)
    if payload.expires_at is not None and now > payload.expires_at + skew_s:
        raise TokenError(Reason.EXPIRED_CODE, expires_at=payload.expires_at)
    if payload.dynamic is not None:
        window_end = payload.issued_at + payload.dynamic.window_s
        if now > window_end + skew_s:
            raise TokenError(Reason.EXPIRED_CODE, expires_at=window_end)
    return payload


def to_qr_text(raw: bytes) -> str:
    """The QR code text for a token: `QR_PREFIX` + base45, all in QR alphanumeric mode."""
    return QR_PREFIX + base45.encode(raw)


def from_qr_text(text: str) -> bytes:
    """The token bytes from scanned QR text; `TokenError(MALFORMED_CODE)` if it is not one.

    Surrounding whitespace (a scanner's Enter, say) is stripped. That is safe because base45
    output never ends in a space: the last character of a triple is at most 'W' and of a pair at
    most '5'.
    """
    stripped = text.strip()
    if not stripped.startswith(QR_PREFIX):
        raise _malformed(f"QR text does not start with {QR_PREFIX!r}")
    return base45.decode(stripped[len(QR_PREFIX) :])


def dynamic_counter(now: int, window_s: int) -> int:
    """The TOTP-like counter of the window that `now` falls in, for apps that rotate codes."""
    if window_s < 1:
        raise BadInput(detail="window_s must be positive")
    return now // window_s


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The 32-byte raw public key, the form terminals receive and store by key id."""
    return private_key.public_key().public_bytes_raw()


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """An issuer key from a PEM (PKCS#8) file or a hex-encoded 32-byte seed.

    Whitespace around (and, for hex, between) the digits is ignored so a key pasted from a
    terminal or saved with a newline loads. Anything else raises `BadInput`.
    """
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = load_pem_private_key(text, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise BadInput(detail="not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise BadInput(detail="PEM key is not an Ed25519 key")
        return key
    try:
        seed = bytes.fromhex(text.decode("ascii"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise BadInput(detail="neither PEM nor a hex seed") from exc
    if len(seed) != 32:
        raise BadInput(detail=f"a hex seed must be 32 bytes, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _problem(payload: TokenPayload) -> str | None:
    """What makes `payload` unrepresentable in v1, or None; shared by signing and parsing."""
    if not _KEY_ID.fullmatch(payload.key_id):
        return "key id must be 1-16 characters of A-Z a-z 0-9 . _ -"
    if not _CARD_NUMBER.fullmatch(payload.card_number):
        return "card number must be 8-19 digits"
    if len(payload.purses) > MAX_PURSES:
        return f"at most {MAX_PURSES} purse hints"
    if not all(_PURSE.fullmatch(name) for name in payload.purses):
        return "purse names must be 1-16 characters of a-z 0-9 _"
    if len(set(payload.purses)) != len(payload.purses):
        return "duplicate purse hint"
    if not 0 <= payload.issued_at <= _U32:
        return "issued_at must fit in 32 bits"
    if payload.expires_at is not None and not payload.issued_at < payload.expires_at <= _U32:
        return "expires_at must be after issued_at and fit in 32 bits"
    if payload.dynamic is not None:
        if not 1 <= payload.dynamic.window_s <= _U16:
            return "window_s must be 1-65535"
        if not 0 <= payload.dynamic.counter <= _U32:
            return "counter must fit in 32 bits"
    return None


def _encode(payload: TokenPayload) -> bytes:
    """The payload bytes of a payload that `_problem` accepted."""
    key_id = payload.key_id.encode("ascii")
    digits = payload.card_number + ("f" if len(payload.card_number) % 2 else "")
    out = bytearray([VERSION, FLAG_DYNAMIC if payload.dynamic else 0, len(key_id)])
    out += key_id
    out += bytes([len(payload.card_number)]) + bytes.fromhex(digits)
    out.append(len(payload.purses))
    for name in payload.purses:
        out += bytes([len(name)]) + name.encode("ascii")
    out += struct.pack(">II", payload.issued_at, payload.expires_at or 0)
    if payload.dynamic is not None:
        out += struct.pack(">HI", payload.dynamic.window_s, payload.dynamic.counter)
    return bytes(out)


class _Reader:
    """A cursor over untrusted bytes: running short is a malformed code, never an IndexError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self._data):
            raise _malformed(f"token ends inside the {what}")
        chunk = self._data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def text(self, what: str) -> str:
        # latin-1 never fails; a non-ASCII character then fails the field's pattern in _problem.
        return self.take(self.byte(what), what).decode("latin-1")

    def bcd_digits(self, what: str) -> str:
        count = self.byte(what)
        packed = self.take((count + 1) // 2, what).hex()
        if packed[count:] not in ("", "f"):
            raise _malformed(f"{what} must be padded with one 0xF nibble")
        # a nibble A-F among the digits shows up as a letter and fails the pattern in _problem
        return packed[:count]


def _malformed(detail: str) -> TokenError:
    return TokenError(Reason.MALFORMED_CODE, detail=detail)

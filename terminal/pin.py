"""PINs of cards and cashiers: slow salted hashes, never stored or logged in clear.

scrypt (RFC 7914, in the standard library) with N=2^14, r=8, p=1 costs about 80 ms and 16 MiB per
guess here, so a stolen store does not give PINs away at the rate a plain hash would. The encoded
form carries its parameters so they can be raised later without breaking old hashes, and so an
issuer can ship hashes made elsewhere (the card import accepts them as they are).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from terminal.errors import BadInput

PIN_FORMAT = re.compile(r"^[0-9]{4,12}$")
_B64 = r"([A-Za-z0-9+/=]+)"
_ENCODED = re.compile(rf"^scrypt\$(\d{{1,2}})\$(\d{{1,2}})\$(\d{{1,2}})\${_B64}\${_B64}$")
DEFAULT_LOG2_N = 14
_R, _P, _DKLEN = 8, 1, 32
_MAXMEM = 64 * 1024 * 1024


def check_pin_format(pin: str) -> str:
    """Return `pin` if it is 4-12 digits, else BadInput (the PIN itself is never echoed)."""
    if not PIN_FORMAT.match(pin):
        raise BadInput("bad_pin_format")
    return pin


def hash_pin(pin: str, log2_n: int = DEFAULT_LOG2_N) -> str:
    """Hash a PIN with a fresh salt; returns the self-describing encoded form."""
    check_pin_format(pin)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**log2_n, r=_R, p=_P, dklen=_DKLEN,
                            maxmem=_MAXMEM)
    return "$".join(("scrypt", str(log2_n), str(_R), str(_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def _decode(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    """Split an encoded hash into (log2_n, r, p, salt, digest), or None if it is not one we accept.

    The bounds keep a hostile import file from making verification take gigabytes or minutes.
    """
    match = _ENCODED.match(encoded)
    if match is None:
        return None
    log2_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if not (10 <= log2_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        return None
    if 128 * r << log2_n > _MAXMEM // 2:
        return None
    try:
        salt = base64.b64decode(match.group(4), validate=True)
        digest = base64.b64decode(match.group(5), validate=True)
    except binascii.Error:
        return None
    if len(salt) < 8 or len(digest) < 16:
        return None
    return log2_n, r, p, salt, digest


def is_encoded_hash(value: str) -> bool:
    """True if `value` is an encoded hash made by `hash_pin` (or an issuer's equivalent)."""
    return _decode(value) is not None


def verify_pin(pin: str, encoded: str) -> bool:
    """Constant-time check of `pin` against an encoded hash. False for any malformed input."""
    decoded = _decode(encoded)
    if decoded is None or not PIN_FORMAT.match(pin):
        return False
    log2_n, r, p, salt, expected = decoded
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**log2_n, r=r, p=p, dklen=len(expected),
                            maxmem=_MAXMEM)
    return hmac.compare_digest(digest, expected)

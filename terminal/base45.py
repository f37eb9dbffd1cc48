"""Base45 (RFC 9285): binary data as text that fits a QR code's alphanumeric mode.

A QR code stores its alphanumeric charset (0-9, A-Z, space, $ % * + - . / :) at 5.5 bits per
character, so base45 costs only about 3 % more than raw bytes while staying plain text that
keyboard-wedge scanners can type. This is a small hand-written codec because the PyPI package is
unmaintained. Decoding is strict: every byte string has exactly one base45 form, and any other
text is refused with `Reason.MALFORMED_CODE`, so two different texts never mean the same token.
"""

from __future__ import annotations

from terminal.errors import TokenError
from terminal.reasons import Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


def encode(data: bytes) -> str:
    """Encode `data`: each 2 bytes become 3 characters, a final odd byte becomes 2."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def decode(text: str) -> bytes:
    """Decode base45 `text`, refusing anything `encode` could not have produced.

    Raises `TokenError(Reason.MALFORMED_CODE)` for a character outside the alphabet (lower case
    included), a length of 3k+1, a triple above 0xFFFF or a final pair above 0xFF.
    """
    if len(text) % 3 == 1:
        raise _malformed(f"base45 length {len(text)} is not 3k or 3k+2")
    values: list[int] = []
    for pos, ch in enumerate(text):
        value = _VALUE.get(ch)
        if value is None:
            raise _malformed(f"character {ch!r} at position {pos} is not base45")
        values.append(value)
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 45 * 45
            if n > 0xFFFF:
                raise _malformed(f"base45 triple at position {i} exceeds 0xFFFF")
            out += n.to_bytes(2, "big")
        else:
            n = chunk[0] + chunk[1] * 45
            if n > 0xFF:
                raise _malformed(f"final base45 pair at position {i} exceeds 0xFF")
            out.append(n)
    return bytes(out)


def _malformed(detail: str) -> TokenError:
    return TokenError(Reason.MALFORMED_CODE, detail=detail)

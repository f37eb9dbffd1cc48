"""The issuer's side, for tests and demos: key files and signed card tokens.

A real issuer signs on its server (issue 4); these helpers let a terminal's operator or a test
make the same tokens from a key file.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from terminal import tokens
from terminal.errors import BadInput
from terminal.model import Card


@dataclass(frozen=True)
class KeyFile:
    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_hex(self) -> str:
        return tokens.public_key_bytes(self.private_key).hex()


def generate_key_file(path: Path, key_id: str) -> KeyFile:
    """Write a new Ed25519 key as JSON (key id, private seed, public key), readable by the
    owner only. Refuses to overwrite an existing file."""
    key = KeyFile(key_id, Ed25519PrivateKey.generate())
    seed = key.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    document = {"key_id": key_id, "private_key_hex": seed.hex(), "public_key_hex": key.public_hex}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BadInput("cannot_write_file", path=str(path), detail=exc.strerror or str(exc)) \
            from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    return key


def read_key_file(path: Path, key_id: str | None) -> KeyFile:
    """Read a key written by `generate_key_file`, or a PEM / hex seed file (then `key_id`
    must be given)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput("cannot_read_file", path=str(path), detail=exc.strerror or str(exc)) \
            from exc
    if data.lstrip().startswith(b"{"):
        try:
            document = json.loads(data)
            seed_hex, file_key_id = document["private_key_hex"], document["key_id"]
        except (ValueError, KeyError, TypeError):
            raise BadInput("bad_key_file", path=str(path)) from None
        return KeyFile(key_id or file_key_id, tokens.load_private_key(seed_hex.encode()))
    if key_id is None:
        raise BadInput("key_id_needed", path=str(path))
    return KeyFile(key_id, tokens.load_private_key(data))


def make_token(key: KeyFile, card_number: str, card: Card | None, *, dynamic: bool,
               window_s: int = 30, counter: int | None = None, now: int | None = None) -> str:
    """Sign a token for `card_number` and return its QR text.

    Purse hints and expiry come from the card when the local store knows it. A dynamic code
    is valid for `window_s` seconds; its counter defaults to the time-window number.
    """
    issued_at = int(time.time()) if now is None else now
    purses = tuple(p.name for p in card.purses[: tokens.MAX_PURSES]) if card else ()
    if dynamic:
        payload = tokens.TokenPayload(
            key.key_id, card_number, purses, issued_at, None,
            tokens.Dynamic(window_s, tokens.dynamic_counter(issued_at, window_s)
                           if counter is None else counter))
    else:
        expires_at = None
        if card is not None and card.expiry is not None:
            # End of the expiry day in UTC; the card's own expiry rule applies in local time.
            expires_at = calendar.timegm((card.expiry.year, card.expiry.month, card.expiry.day,
                                          23, 59, 59))
        payload = tokens.TokenPayload(key.key_id, card_number, purses, issued_at, expires_at)
    return tokens.to_qr_text(tokens.sign_token(payload, key.private_key))

"""The issuer's signing keys on the server: generate, rotate, revoke, list, and sign with.

Card tokens (docs/token-format.md) are signed with Ed25519 by the one **active** key. A key's
life is active -> retiring -> revoked:

- active: signs new tokens and verifies. Key changes are serialized (an advisory lock on
  PostgreSQL, BEGIN IMMEDIATE on SQLite) and a partial unique index (`ix_keys_one_active`)
  makes a second active key impossible even for a change made by hand;
- retiring: no longer signs, still verifies (cards printed with it stay good);
- revoked: terminals drop it on their next pull, so its tokens stop verifying. Final.

`rotate` makes a new active key and retires the old one in one transaction. Every state change is
a change-log row (kind "key", key = kid) so terminals get it on their next pull. The public half
lives in `keys` (what terminals pull); the private half in `issuer_keys`, as PKCS#8 PEM encrypted
with the passphrase in the environment variable CARDPOS_ISSUER_PASSPHRASE — without it the
server refuses to make or use a key rather than store one in clear.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)
from sqlalchemy.engine import Connection, Engine

from sync.server.db import utc_now
from sync.server.ledger import ChangeLog
from sync.server.schema import issuer_keys, keys
from terminal import tokens
from terminal.errors import BadInput, NotFound, StateError

PASSPHRASE_ENV = "CARDPOS_ISSUER_PASSPHRASE"
ACTIVE, RETIRING, REVOKED = "active", "retiring", "revoked"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,16}")
# Any constant: held (per transaction) by every key change on PostgreSQL. A row lock on the
# active key is not enough at READ COMMITTED: a rotation waiting on it would see the row no
# longer active once the first rotation commits, and miss the new active key.
_KEYS_LOCK = 875_000_005


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    status: str
    public_key_hex: str
    created_at: datetime
    retired_at: datetime | None
    revoked_at: datetime | None
    has_private_key: bool

    def as_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "status": self.status, "public_key_hex": self.public_key_hex,
                "created_at": self.created_at.isoformat(),
                "retired_at": self.retired_at.isoformat() if self.retired_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "signs": self.status == ACTIVE and self.has_private_key}


@dataclass(frozen=True)
class SigningKey:
    """The active key, decrypted: what a batch signs its cards' tokens with."""

    kid: str
    private_key: Ed25519PrivateKey


def passphrase(env: dict[str, str] | None = None) -> bytes:
    """The key passphrase from CARDPOS_ISSUER_PASSPHRASE; BadInput when unset or empty."""
    value = (os.environ if env is None else env).get(PASSPHRASE_ENV, "")
    if not value:
        raise BadInput("issuer_passphrase_missing", variable=PASSPHRASE_ENV)
    return value.encode("utf-8")


def generate(engine: Engine, *, kid: str | None = None, secret: bytes | None = None,
             now: datetime | None = None) -> KeyInfo:
    """The first active key. StateError("active_key_exists") if there is one: rotate instead."""
    return _new_active(engine, kid, secret, now, rotate=False)[0]


def rotate(engine: Engine, *, kid: str | None = None, secret: bytes | None = None,
           now: datetime | None = None) -> tuple[KeyInfo, str]:
    """A new active key; the old active one becomes retiring. Returns (new key, old kid).
    StateError("no_active_key") if there is none to rotate (generate the first one)."""
    new, old = _new_active(engine, kid, secret, now, rotate=True)
    assert old is not None  # rotate=True refuses when there is no active key
    return new, old


def revoke(engine: Engine, kid: str, *, now: datetime | None = None) -> KeyInfo:
    """Retiring key -> revoked (terminals drop it). The active key cannot be revoked — rotate
    first (`key_is_active`), so the server always has one key to sign with. Revoking a revoked
    key again is a no-op."""
    now = now or utc_now()
    with engine.begin() as conn:
        _serialize(conn)
        status = conn.execute(sa.select(keys.c.status).where(keys.c.kid == kid)
                              .with_for_update()).scalar()
        if status is None:
            raise NotFound("unknown_key_id", kid=kid)
        if status == ACTIVE:
            raise StateError("key_is_active", kid=kid)
        if status != REVOKED:
            conn.execute(sa.update(keys).where(keys.c.kid == kid).values(status=REVOKED))
            conn.execute(sa.update(issuer_keys).where(issuer_keys.c.kid == kid)
                         .values(revoked_at=now))
            log = ChangeLog()
            log.add("key", kid)
            log.flush(conn)
        return _info(conn, kid)


def list_keys(engine: Engine) -> list[KeyInfo]:
    """Every key, oldest first."""
    with engine.connect() as conn:
        kids = conn.execute(sa.select(keys.c.kid).order_by(keys.c.created_at, keys.c.kid)).scalars()
        return [_info(conn, kid) for kid in list(kids)]


def active_key(conn: Connection, secret: bytes | None = None) -> SigningKey:
    """The active key, decrypted with the passphrase (`secret`, default the environment's).
    StateError("no_active_key") without one, BadInput("issuer_passphrase_wrong") if the
    passphrase does not open it."""
    row = conn.execute(sa.select(keys.c.kid, issuer_keys.c.private_key)
                       .select_from(keys.outerjoin(issuer_keys, issuer_keys.c.kid == keys.c.kid))
                       .where(keys.c.status == ACTIVE)).first()
    if row is None or row.private_key is None:
        raise StateError("no_active_key")
    try:
        key = load_pem_private_key(row.private_key.encode("ascii"),
                                   password=secret if secret is not None else passphrase())
    except (ValueError, TypeError) as exc:
        raise BadInput("issuer_passphrase_wrong", kid=row.kid) from exc
    if not isinstance(key, Ed25519PrivateKey):  # only this module writes the column
        raise StateError("no_active_key")
    return SigningKey(str(row.kid), key)


# -- internals ----------------------------------------------------------------------------------

def _new_active(engine: Engine, kid: str | None, secret: bytes | None, now: datetime | None,
                *, rotate: bool) -> tuple[KeyInfo, str | None]:
    secret = secret if secret is not None else passphrase()
    now = now or utc_now()
    kid = kid if kid is not None else f"k{now:%Y%m%d}-{secrets.token_hex(3)}"
    if not _KEY_ID.fullmatch(kid):
        raise BadInput("bad_key_id", key_id=kid)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                BestAvailableEncryption(secret)).decode("ascii")
    return _insert_active(engine, kid, private, pem, now, rotate=rotate)


def _insert_active(engine: Engine, kid: str, private: Ed25519PrivateKey, pem: str,
                   now: datetime, *, rotate: bool) -> tuple[KeyInfo, str | None]:
    log = ChangeLog()
    with engine.begin() as conn:
        _serialize(conn)
        old = conn.execute(sa.select(keys.c.kid).where(keys.c.status == ACTIVE)).scalar()
        if old is not None and not rotate:
            raise StateError("active_key_exists", kid=old)
        if old is None and rotate:
            raise StateError("no_active_key")
        if conn.execute(sa.select(keys.c.kid).where(keys.c.kid == kid)).first() is not None:
            raise StateError("key_id_taken", kid=kid)
        if old is not None:
            conn.execute(sa.update(keys).where(keys.c.kid == old).values(status=RETIRING))
            conn.execute(sa.update(issuer_keys).where(issuer_keys.c.kid == old)
                         .values(retired_at=now))
            log.add("key", old)
        conn.execute(sa.insert(keys).values(kid=kid, public_key=tokens.public_key_bytes(private),
                                            status=ACTIVE, created_at=now))
        conn.execute(sa.insert(issuer_keys).values(kid=kid, private_key=pem))
        log.add("key", kid)
        log.flush(conn)
        return _info(conn, kid), old


def _serialize(conn: Connection) -> None:
    """One key change at a time (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEYS_LOCK})


def _info(conn: Connection, kid: str) -> KeyInfo:
    row = conn.execute(sa.select(keys, issuer_keys.c.private_key, issuer_keys.c.retired_at,
                                 issuer_keys.c.revoked_at)
                       .select_from(keys.outerjoin(issuer_keys, issuer_keys.c.kid == keys.c.kid))
                       .where(keys.c.kid == kid)).one()
    return KeyInfo(row.kid, row.status, bytes(row.public_key).hex(), row.created_at,
                   row.retired_at, row.revoked_at, row.private_key is not None)

"""The sync wire format (docs/server-api.md): pydantic v2 models shared by the server
(`sync/server/app.py`) and the terminal's sync client.

Money is integer minor units with its ISO 4217 currency, never a float. Journal entries travel
exactly as `terminal.journal.Entry.as_json()` gives them (the entry's members plus `hash`); the
server checks their shape and chain itself (`sync.server.chain`), so here they are plain objects.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from terminal.journal import canonical

API_VERSION = "v1"
MAX_PUSH_ENTRIES = 1000
DEFAULT_PULL_LIMIT = 1000
MAX_PULL_LIMIT = 5000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(_Model):
    """Every refused request: a stable `error` code and an English `message`."""

    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class Health(_Model):
    status: str
    database: str
    version: str = API_VERSION


class EnrolRequest(_Model):
    code: str = Field(min_length=1, max_length=64)
    terminal_id: str = Field(min_length=1, max_length=32)


class EnrolResponse(_Model):
    terminal_id: str
    branch: str | None
    credential: str


class PushRequest(_Model):
    entries: list[dict[str, Any]] = Field(max_length=MAX_PUSH_ENTRIES)


class Rejected(_Model):
    id: str | None
    seq: int | None
    reason: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Gap(_Model):
    """The range of the terminal's sequence numbers the server lacks (both ends included)."""

    from_seq: int
    to_seq: int


class Overspend(_Model):
    entry: str
    card: str
    purse: str
    amount: int
    currency: str
    terminals: list[str]


class PushResponse(_Model):
    applied: list[str]
    duplicates: list[str]
    rejected: list[Rejected]
    gap: Gap | None
    last_seq: int
    last_hash: str
    overspends: list[Overspend]


class Purse(_Model):
    name: str
    currency: str
    balance: int


class Card(_Model):
    number: str
    uid: str | None
    program: str
    status: str
    expiry: str | None
    pin_hash: str | None
    purses: list[Purse]


class Denied(_Model):
    """A denylist change: `listed` false means the card came off the list."""

    card: str
    reason: str | None
    listed: bool


class Key(_Model):
    key_id: str
    public_key_hex: str
    revoked: bool


class PullResponse(_Model):
    cursor: int
    reset: bool
    more: bool
    cards: list[Card]
    denylist: list[Denied]
    keys: list[Key]
    limits: dict[str, Any] | None
    prices: dict[str, Any] | None
    checksum: str


def checksum(body: dict[str, Any]) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of a pull response without its checksum."""
    return hashlib.sha256(canonical({k: v for k, v in body.items() if k != "checksum"})
                          ).hexdigest()


def verify_checksum(body: dict[str, Any]) -> bool:
    """What a client does with a received pull response (the parsed JSON object)."""
    return isinstance(body.get("checksum"), str) and body["checksum"] == checksum(body)

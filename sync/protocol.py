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
# Pull page sizes (objects per page). A client asks for DEFAULT_PULL_LIMIT explicitly, so it
# must stay within what older servers accept (their maximum was 5000); newer servers accept up
# to MAX_PULL_LIMIT. Bigger pages cost fewer round trips; see docs/benchmarks-sync.md.
DEFAULT_PULL_LIMIT = 5000
MAX_PULL_LIMIT = 20000


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


class RelayPushRequest(_Model):
    """A relay forwarding one of its branch's terminals' entries (docs/relay.md)."""

    terminal: str = Field(min_length=1, max_length=32)
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


class HeldPurse(_Model):
    purse: str = Field(min_length=1, max_length=16)
    #: Positive: how much the debit takes off this purse (minor units).
    amount: int = Field(gt=0, le=10**15)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class SecondFactor(_Model):
    challenge: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=16)


class AuthorizeRequest(_Model):
    """Hold money for a debit the terminal is about to commit (docs/server-api.md)."""

    #: Made by the terminal (a UUID): a resent request finds its hold instead of holding twice.
    hold_id: str = Field(min_length=1, max_length=36)
    card: str = Field(min_length=1, max_length=19)
    kind: str = Field(pattern="^(redeem|buyback|transfer)$")
    purses: list[HeldPurse] = Field(min_length=1, max_length=16)
    second_factor: SecondFactor | None = None


class AuthorizeResponse(_Model):
    """`approved` with the hold's expiry, or a reason code (terminal.reasons) and its details."""

    approved: bool
    hold_id: str
    reason: str | None
    params: dict[str, Any]
    expires_at: str | None
    #: A branch relay approved it without its central server: count it as offline exposure.
    branch_only: bool = False


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

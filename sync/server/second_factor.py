"""A second factor for online payments: a one-time code sent to the card holder's phone.

Online authorization (POST /v1/authorize) asks `required` whether a payment needs a code: the
card is bound to a phone (sync/server/phones.py) and the amount is above the configured
threshold. If so it calls `challenge`, which sends a fresh 6-digit code through a
`MessageGateway` and returns the challenge's id, its expiry and the masked phone for the cashier
to read out; the card holder tells the cashier the code, and the retried authorization passes
it to `verify`. See docs/second-factor.md.

- The code comes from `secrets`; only HMAC-SHA-256(salt, code) is stored, with a random salt
  per challenge. It lives `CODE_TTL` (5 minutes).
- A challenge is bound to the card, the amount and the terminal it was made for: it cannot
  approve another card, another amount or a payment at another terminal.
- `MAX_ATTEMPTS` (3) wrong codes kill the challenge; a right code spends it: it approves once.
- At most `MAX_CHALLENGES` (3) challenges per card in `RATE_WINDOW` (10 minutes), so a
  terminal cannot flood a phone with messages.
- The code and the full phone number are never logged.

Both functions run inside the caller's transaction (`conn`), so they serialize with whatever
else it locks. `verify` locks the challenge's row (FOR UPDATE on PostgreSQL; SQLite's
`BEGIN IMMEDIATE` serializes all writers) and spends it with conditional UPDATEs: two requests
with the same right code approve at most once. A refusal is a returned `Verification`, not an
exception, because the counted wrong attempt must be committed: the caller commits its
transaction after a refusal (rolling it back would give the guesser the attempt back).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.server.gateway import MessageGateway, mask_phone
from sync.server.schema import card_phones, otp_challenges
from terminal.errors import BadInput, StateError
from terminal.luhn import mask
from terminal.messages import LANGUAGES, text
from terminal.money import format_minor

log = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 3
MAX_CHALLENGES = 3
RATE_WINDOW = timedelta(minutes=10)

# The reasons `verify` refuses with (each has a message in terminal/messages.py).
WRONG_CODE = "wrong_code"
CODE_EXPIRED = "code_expired"
TOO_MANY_ATTEMPTS = "too_many_attempts"
CHALLENGE_USED = "challenge_used"
UNKNOWN_CHALLENGE = "unknown_challenge"
CHALLENGE_MISMATCH = "challenge_mismatch"


@dataclass(frozen=True)
class Challenge:
    """A code on its way to the card holder's phone."""

    id: str
    expires_at: datetime
    phone: str  # masked: "+86*******1234", for the cashier to read out

    def as_json(self) -> dict[str, Any]:
        return {"challenge": self.id, "expires_at": self.expires_at.isoformat(),
                "phone": self.phone}


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify`: ok, or the reason it is not (and, for a wrong code, how many
    tries are left)."""

    ok: bool
    reason: str | None = None
    attempts_left: int | None = None

    def params(self) -> dict[str, Any]:
        """The parameters of the reason's message."""
        return {} if self.attempts_left is None else {"attempts_left": self.attempts_left}

    def message(self, lang: str) -> str:
        return text(self.reason or "approve", lang, **self.params())

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "attempts_left": self.attempts_left}


def _utc(moment: datetime) -> datetime:
    """UTC and aware: SQLite keeps (and gives back) the UTC wall time without its zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _digest(salt: str, code: str) -> str:
    return hmac.new(bytes.fromhex(salt), code.encode("utf-8"), hashlib.sha256).hexdigest()


def bound_phone(conn: Connection, card: str, *, lock: bool = False) -> str | None:
    """The phone card `card` is bound to, or None. `lock` locks the binding's row (PostgreSQL)
    for the rest of the transaction: challenges of one card are then made one at a time."""
    query = sa.select(card_phones.c.phone).where(card_phones.c.card == card)
    return conn.execute(query.with_for_update() if lock else query).scalar()


def required(conn: Connection, card: str, amount: int, threshold: int) -> bool:
    """Whether paying `amount` (minor units) with `card` needs a code: the card is bound to a
    phone and the amount is above `threshold`."""
    return amount > threshold and bound_phone(conn, card) is not None


def challenge(conn: Connection, gateway: MessageGateway, card: str, terminal: str,
              amount: int, now: datetime, *, currency: str, lang: str = "en",
              ttl: timedelta = CODE_TTL, max_challenges: int = MAX_CHALLENGES,
              window: timedelta = RATE_WINDOW) -> Challenge:
    """Send a fresh code for paying `amount` `currency` with `card` at `terminal` to the card's
    phone, in `lang`. StateError `no_phone_bound` if the card has no phone,
    `too_many_challenges` past the rate limit; GatewayError if the message cannot be sent
    (raised inside the caller's transaction, which then rolls back: no challenge is kept)."""
    if amount <= 0:
        raise BadInput("amount_not_positive")
    if lang not in LANGUAGES:
        raise BadInput("bad_language", language=lang, allowed=", ".join(LANGUAGES))
    now = _utc(now)
    phone = bound_phone(conn, card, lock=True)
    if phone is None:
        raise StateError("no_phone_bound", card=mask(card))
    recent = conn.execute(sa.select(sa.func.count()).select_from(otp_challenges)
                          .where(otp_challenges.c.card == card,
                                 otp_challenges.c.created_at > now - window)).scalar_one()
    if recent >= max_challenges:
        raise StateError("too_many_challenges", limit=max_challenges,
                         minutes=int(window.total_seconds() // 60))
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(16)
    made = Challenge(str(uuid.uuid4()), now + ttl, mask_phone(phone))
    # The row first: a database error then costs no message.
    conn.execute(sa.insert(otp_challenges).values(
        id=made.id, card=card, terminal=terminal, amount=amount, salt=salt,
        code_hash=_digest(salt, code), attempts=0, message_id=None, created_at=now,
        expires_at=made.expires_at, used_at=None))
    message = text("sms_code", lang, otp=code, amount=f"{format_minor(amount, currency)}"
                   f" {currency}", terminal=terminal,
                   minutes=int(ttl.total_seconds() // 60))
    message_id = gateway.send(phone, message)
    conn.execute(sa.update(otp_challenges).where(otp_challenges.c.id == made.id)
                 .values(message_id=message_id))
    log.info("challenge %s for card %s at %s sent to %s (message %s)", made.id, mask(card),
             terminal, made.phone, message_id)
    return made


def verify(conn: Connection, challenge_id: str, code: str, card: str, amount: int,
           now: datetime, *, terminal: str) -> Verification:
    """Check `code` for challenge `challenge_id`, made for paying `amount` with `card` at
    `terminal`. A right code spends the challenge (ok once); a wrong one counts. Commit the
    transaction after a refusal too (see the module docstring)."""
    now = _utc(now)
    row = conn.execute(sa.select(otp_challenges).where(otp_challenges.c.id == challenge_id)
                       .with_for_update()).first()
    result = _check(conn, row, code, card, amount, terminal, now)
    log.info("challenge %s for card %s at %s: %s", challenge_id, mask(card), terminal,
             "ok" if result.ok else result.reason)
    return result


def _check(conn: Connection, row: Any, code: str, card: str, amount: int, terminal: str,
           now: datetime) -> Verification:
    if row is None:
        return Verification(False, UNKNOWN_CHALLENGE)
    if (row.card, row.amount, row.terminal) != (card, amount, terminal):
        return Verification(False, CHALLENGE_MISMATCH)
    if row.used_at is not None:
        return Verification(False, CHALLENGE_USED)
    if row.attempts >= MAX_ATTEMPTS:
        return Verification(False, TOO_MANY_ATTEMPTS)
    if _utc(row.expires_at) <= now:
        return Verification(False, CODE_EXPIRED)
    open_ = sa.update(otp_challenges).where(otp_challenges.c.id == row.id,
                                            otp_challenges.c.used_at.is_(None),
                                            otp_challenges.c.attempts == row.attempts)
    if hmac.compare_digest(_digest(row.salt, code.strip()), row.code_hash):
        spent = conn.execute(open_.values(used_at=now)).rowcount
        # Under the row lock nobody else can have spent it meanwhile; the condition makes sure.
        return Verification(True) if spent == 1 else Verification(False, CHALLENGE_USED)
    counted = conn.execute(open_.values(attempts=row.attempts + 1)).rowcount
    if counted != 1:
        return Verification(False, CHALLENGE_USED)
    left = MAX_ATTEMPTS - row.attempts - 1
    return (Verification(False, WRONG_CODE, left) if left
            else Verification(False, TOO_MANY_ATTEMPTS))

"""Expiry reminders: which cards have money that expires soon, and a text message to each
holder whose card is bound to a phone.

`expiring` is the report: active cards (not denylisted) whose expiry date is within `days` days
of today (UTC) and that have a positive balance, summed from the ledger, in some purse.

`send_reminders` sends one message per bound card and expiry date, ever. Table
`expiry_reminders` remembers each (card, expiry): a run claims a row ("sending") in a short
transaction, sends outside any transaction (a slow gateway holds no lock), then records "sent"
or "failed". A re-run skips what was sent and retries what failed. Two runs at once send each
message once: the claim is an INSERT .. ON CONFLICT DO NOTHING or a conditional UPDATE. A run
that died between its claim and its record leaves "sending"; after `SENDING_LEASE` the next run
takes it over (the holder may then get that reminder twice, rather than never).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server.db import insert, utc_now
from sync.server.gateway import GatewayError, MessageGateway, mask_phone
from sync.server.schema import card_phones, cards, denylist, expiry_reminders, ledger, purses
from terminal.errors import BadInput
from terminal.luhn import mask
from terminal.messages import LANGUAGES, text
from terminal.money import format_minor

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
SENDING_LEASE = timedelta(minutes=15)
SENT, FAILED, SENDING = "sent", "failed", "sending"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class PurseBalance:
    name: str
    currency: str
    balance: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "currency": self.currency, "balance": self.balance}


@dataclass(frozen=True)
class ExpiringCard:
    """A card with money that expires on `expiry`; `purses` are those with a positive balance.
    `phone` is the whole bound number (None if none): masked whenever it is shown."""

    number: str
    program: str
    expiry: date
    days_left: int
    purses: tuple[PurseBalance, ...]
    phone: str | None

    def as_json(self) -> dict[str, Any]:
        return {"card": mask(self.number), "program": self.program,
                "expiry": self.expiry.isoformat(), "days_left": self.days_left,
                "purses": [p.as_json() for p in self.purses],
                "phone": mask_phone(self.phone) if self.phone else None}


@dataclass(frozen=True)
class Expiring:
    today: date
    days: int
    cards: tuple[ExpiringCard, ...]

    def totals(self) -> dict[str, dict[str, int]]:
        """Per currency: the cards with money in it and the sum that expires."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: {"cards": 0, "balance": 0})
        for card in self.cards:
            for currency in sorted({p.currency for p in card.purses}):
                out[currency]["cards"] += 1
            for p in card.purses:
                out[p.currency]["balance"] += p.balance
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {"today": self.today.isoformat(), "days": self.days,
                "cards": [c.as_json() for c in self.cards], "totals": self.totals()}


def expiring(engine: Engine, days: int = DEFAULT_DAYS, now: datetime | None = None
             ) -> Expiring:
    """Active, not denylisted cards expiring from today to `days` days on (UTC dates, both
    included) with a positive ledger balance, soonest first."""
    if days < 0:
        raise BadInput("bad_days", days=days)
    today = _utc(now or utc_now()).date()
    balance = sa.func.sum(ledger.c.amount)
    sums = (sa.select(ledger.c.purse_id, balance.label("balance"))
            .group_by(ledger.c.purse_id).having(balance > 0).subquery("sums"))
    query = (
        sa.select(cards.c.number, cards.c.program, cards.c.expiry, purses.c.name,
                  purses.c.currency, sums.c.balance, card_phones.c.phone)
        .select_from(cards.join(purses, purses.c.card == cards.c.number)
                     .join(sums, sums.c.purse_id == purses.c.id)
                     .outerjoin(card_phones, card_phones.c.card == cards.c.number))
        .where(cards.c.status == "active",
               cards.c.expiry.between(today, today + timedelta(days=days)),
               ~sa.exists().where(denylist.c.card == cards.c.number))
        .order_by(cards.c.expiry, cards.c.number, purses.c.position))
    found: dict[str, ExpiringCard] = {}
    with engine.connect() as conn:
        for r in conn.execute(query):
            purse = PurseBalance(r.name, r.currency, int(r.balance))
            card = found.get(r.number)
            if card is None:
                found[r.number] = ExpiringCard(r.number, r.program, r.expiry,
                                               (r.expiry - today).days, (purse,), r.phone)
            else:
                found[r.number] = ExpiringCard(card.number, card.program, card.expiry,
                                               card.days_left, (*card.purses, purse),
                                               card.phone)
    return Expiring(today, days, tuple(found.values()))


@dataclass(frozen=True)
class Reminder:
    """One reminder this run tried: sent (with the gateway's message id) or failed (why)."""

    card: str
    expiry: date
    message_id: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"card": mask(self.card), "expiry": self.expiry.isoformat(),
                "message_id": self.message_id, "error": self.error}


@dataclass(frozen=True)
class RemindResult:
    sent: tuple[Reminder, ...]
    failed: tuple[Reminder, ...]
    already_sent: int  # reminded by an earlier run
    in_progress: int   # claimed by another run that is still within its lease
    no_phone: int      # expiring cards without a bound phone (see the report)

    def as_json(self) -> dict[str, Any]:
        return {"sent": [r.as_json() for r in self.sent],
                "failed": [r.as_json() for r in self.failed],
                "already_sent": self.already_sent, "in_progress": self.in_progress,
                "no_phone": self.no_phone}


def send_reminders(engine: Engine, gateway: MessageGateway, days: int = DEFAULT_DAYS,
                   now: datetime | None = None, lang: str = "en") -> RemindResult:
    """Message every bound card of `expiring(days)` not reminded of this expiry date yet (or
    whose reminder failed before). A gateway failure is recorded and retried by the next run;
    any other error propagates (its claim is taken over after the lease)."""
    if lang not in LANGUAGES:
        raise BadInput("bad_language", language=lang, allowed=", ".join(LANGUAGES))
    now = _utc(now or utc_now())
    report = expiring(engine, days, now)
    sent: list[Reminder] = []
    failed: list[Reminder] = []
    skipped = {SENT: 0, SENDING: 0}
    for card in report.cards:
        if card.phone is None:
            continue
        claim = _claim(engine, card.number, card.expiry, now)
        if isinstance(claim, str):
            skipped[claim] += 1
            continue
        message = text("sms_expiry_reminder", lang, card=mask(card.number),
                       program=card.program, expiry=card.expiry.isoformat(),
                       balance=", ".join(f"{format_minor(p.balance, p.currency)} {p.currency}"
                                         for p in card.purses))
        try:
            reminder = Reminder(card.number, card.expiry,
                                message_id=gateway.send(card.phone, message))
        except GatewayError as err:
            reminder = Reminder(card.number, card.expiry, error=err.english()[:200])
            failed.append(reminder)
            log.warning("expiry reminder for card %s failed: %s", mask(card.number),
                        err.english())
        else:
            sent.append(reminder)
            log.info("expiry reminder for card %s sent to %s (message %s)", mask(card.number),
                     mask_phone(card.phone), reminder.message_id)
        _record(engine, reminder, claim, now)
    no_phone = sum(1 for c in report.cards if c.phone is None)
    return RemindResult(tuple(sent), tuple(failed), skipped[SENT], skipped[SENDING], no_phone)


def _claim(engine: Engine, card: str, expiry: date, now: datetime) -> int | str:
    """Claim the reminder of (card, expiry) for this run: the attempt number, or why not
    (SENT: done before; SENDING: another run holds it)."""
    key = (expiry_reminders.c.card == card, expiry_reminders.c.expiry == expiry)
    with engine.begin() as conn:
        row = conn.execute(sa.select(expiry_reminders.c.status, expiry_reminders.c.attempts,
                                     expiry_reminders.c.last_attempt_at)
                           .where(*key).with_for_update()).first()
        if row is None:
            made = conn.execute(insert(conn, expiry_reminders).values(
                card=card, expiry=expiry, status=SENDING, attempts=1, message_id=None,
                error=None, last_attempt_at=now, sent_at=None).on_conflict_do_nothing()
                .returning(expiry_reminders.c.card))
            # (psycopg reports no rowcount for INSERT .. ON CONFLICT: RETURNING tells.)
            return 1 if made.first() is not None else SENDING
        if row.status == SENT:
            return SENT
        if row.status == SENDING and _utc(row.last_attempt_at) > now - SENDING_LEASE:
            return SENDING
        taken = conn.execute(sa.update(expiry_reminders)
                             .where(*key, expiry_reminders.c.status == row.status,
                                    expiry_reminders.c.attempts == row.attempts)
                             .values(status=SENDING, attempts=row.attempts + 1,
                                     last_attempt_at=now))
        return int(row.attempts) + 1 if taken.rowcount == 1 else SENDING


def _record(engine: Engine, reminder: Reminder, attempt: int, now: datetime) -> None:
    """Store how attempt `attempt` went, unless another run took the claim over meanwhile."""
    values: dict[str, Any] = (
        {"status": SENT, "message_id": reminder.message_id, "error": None, "sent_at": now}
        if reminder.error is None else {"status": FAILED, "error": reminder.error})
    with engine.begin() as conn:
        done = conn.execute(sa.update(expiry_reminders)
                            .where(expiry_reminders.c.card == reminder.card,
                                   expiry_reminders.c.expiry == reminder.expiry,
                                   expiry_reminders.c.status == SENDING,
                                   expiry_reminders.c.attempts == attempt)
                            .values(**values)).rowcount
    if done != 1:
        log.warning("expiry reminder for card %s: attempt %d was taken over by another run;"
                    " its outcome is not recorded", mask(reminder.card), attempt)

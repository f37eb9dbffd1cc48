"""Binding a card to its holder's phone (table `card_phones`): where one-time codes and expiry
reminders go. A bound card needs a code for online payments above the configured amount
(sync/server/second_factor.py). Only the issuer's operator binds (`cardpos server card
bind-phone`); binding again replaces the number.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.server.db import insert, utc_now
from sync.server.gateway import mask_phone
from sync.server.schema import card_phones, cards
from terminal.errors import BadInput, NotFound
from terminal.luhn import mask, normalize_card_number

log = logging.getLogger(__name__)

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def normalize_phone(text: str) -> str:
    """E.164: '+', then 8 to 15 digits, the first not 0. The spaces, dashes, dots and brackets
    people write are dropped: '+86 138-1234-1234' is '+8613812341234'. BadInput otherwise."""
    phone = re.sub(r"[\s\-.()]", "", text)
    if not E164.match(phone):
        raise BadInput("bad_phone", phone=text)
    return phone


def bind_phone(engine: Engine, number: str, phone: str, *, now: datetime | None = None
               ) -> tuple[str, str]:
    """Bind card `number` to `phone` (replacing any earlier number). Returns the normalized
    (card, phone). NotFound if the server does not know the card."""
    number = normalize_card_number(number)
    phone = normalize_phone(phone)
    now = now or utc_now()
    with engine.begin() as conn:
        if conn.execute(sa.select(cards.c.number).where(cards.c.number == number)).first() is None:
            raise NotFound("unknown_card", number=number)
        stmt = insert(conn, card_phones).values(card=number, phone=phone, bound_at=now)
        conn.execute(stmt.on_conflict_do_update(index_elements=[card_phones.c.card],
                                                set_={"phone": phone, "bound_at": now}))
    log.info("card %s bound to phone %s", mask(number), mask_phone(phone))
    return number, phone


def unbind_phone(engine: Engine, number: str) -> bool:
    """Forget card `number`'s phone; False if it had none."""
    number = normalize_card_number(number)
    with engine.begin() as conn:
        removed = conn.execute(sa.delete(card_phones).where(card_phones.c.card == number))
    if removed.rowcount:
        log.info("card %s unbound from its phone", mask(number))
    return bool(removed.rowcount)

"""Luhn (mod 10) check digits for printed card numbers.

A typed card number is the fallback credential for a damaged card; the check digit catches the
typing mistakes people make (one wrong digit, most swaps of neighbours) before any lookup.
"""

from __future__ import annotations

import re

from terminal.errors import BadInput

CARD_NUMBER = re.compile(r"^[0-9]{8,19}$")


def check_digit(body: str) -> str:
    """The digit to append to `body` (digits only) so the whole number passes Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these digits are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def is_valid(number: str) -> bool:
    """True if `number` is 8-19 digits with a correct Luhn check digit."""
    return bool(CARD_NUMBER.match(number)) and check_digit(number[:-1]) == number[-1]


def normalize_card_number(text: str) -> str:
    """Strip the spaces and dashes people type, then require a valid Luhn number."""
    number = re.sub(r"[\s-]", "", text)
    if not CARD_NUMBER.match(number):
        raise BadInput("bad_card_number", number=text)
    if not is_valid(number):
        raise BadInput("bad_check_digit", number=text)
    return number


def mask(number: str) -> str:
    """Owner-safe form for screens, receipts and logs: the last four digits only."""
    return "*" * (len(number) - 4) + number[-4:]

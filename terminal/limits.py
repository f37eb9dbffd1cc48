"""Offline limits and terminal policy: the one place their defaults live.

The server will push these per branch or terminal (issue 4); until then the store keeps the
defaults below, and `cardpos limits set` changes them locally. The offline limits bound what one
card spent at several disconnected terminals can cost: see docs/offline-risk.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terminal.errors import BadInput
from terminal.money import MAX_MINOR, check_currency


@dataclass(frozen=True)
class Limits:
    """Amounts are minor units of `currency`, the terminal's currency."""

    currency: str = "EUR"
    #: Local time zone that decides where a "day" starts for the per-card daily limit.
    timezone: str = "UTC"
    offline_per_transaction: int = 100_00
    offline_per_card_day: int = 200_00
    offline_terminal_total: int = 2_000_00
    offline_max_hours: int = 72
    pin_max_failures: int = 3
    expiring_soon_days: int = 30
    void_window_minutes: int = 30
    max_topup: int = 500_00
    max_purse_balance: int = 1_000_00
    #: Buyback prices above this need a supervisor PIN.
    buyback_supervisor_above: int = 50_00
    #: A typed number is weak proof: a PIN-less card redeemed by number needs a supervisor.
    typed_number_needs_supervisor: bool = True
    #: Clock difference tolerated between a code's issuer and this terminal.
    code_skew_seconds: int = 60
    #: Online, a debit above this of a card bound to a phone needs the one-time code the
    #: server sends to that phone (docs/second-factor.md).
    second_factor_above: int = 100_00
    #: Purses used, in this order, when a redemption names none; empty = the card's own order.
    purse_order: tuple[str, ...] = ()
    #: The self-service kiosk may take money off a card (else it only shows balances and quotes).
    kiosk_self_redeem: bool = False
    #: Seconds without a touch before the kiosk forgets the card and returns to its start screen.
    kiosk_idle_seconds: int = 45

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["purse_order"] = list(self.purse_order)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        """Build from stored or synced JSON; unknown keys and wrong types are BadInput."""
        defaults = cls()
        values: dict[str, Any] = {}
        for key, value in data.items():
            if not hasattr(defaults, key):
                raise BadInput("unknown_setting", name=key)
            values[key] = _coerce(key, getattr(defaults, key), value)
        return cls(**values).validated()

    def with_setting(self, name: str, text: str) -> Limits:
        """A copy with one setting changed from its text form (`cardpos limits set NAME VALUE`)."""
        data = self.as_json()
        if name not in data:
            raise BadInput("unknown_setting", name=name)
        default = getattr(self, name)
        value: Any
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise BadInput("bad_setting", name=name, value=text)
            value = text.lower() in ("true", "1", "yes")
        elif isinstance(default, int):
            if not (text.isascii() and text.isdigit()):
                raise BadInput("bad_setting", name=name, value=text)
            value = int(text)
        elif isinstance(default, tuple):
            value = [p for p in (s.strip() for s in text.split(",")) if p]
        else:
            value = text
        data[name] = value
        return Limits.from_json(data)

    def validated(self) -> Limits:
        check_currency(self.currency)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadInput("bad_setting", name="timezone", value=self.timezone) from None
        for name in ("offline_per_transaction", "offline_per_card_day", "offline_terminal_total",
                     "max_topup", "max_purse_balance", "buyback_supervisor_above",
                     "second_factor_above"):
            if getattr(self, name) > MAX_MINOR:
                raise BadInput("bad_setting", name=name, value=str(getattr(self, name)))
        for name, most in (("offline_max_hours", 24 * 366 * 10), ("expiring_soon_days", 3660),
                           ("void_window_minutes", 24 * 60), ("pin_max_failures", 100),
                           ("code_skew_seconds", 3600),
                           ("kiosk_idle_seconds", 3600)):
            if getattr(self, name) > most:
                raise BadInput("bad_setting", name=name, value=str(getattr(self, name)))
        if self.kiosk_idle_seconds < 5:
            raise BadInput("bad_setting", name="kiosk_idle_seconds",
                           value=str(self.kiosk_idle_seconds))
        if self.pin_max_failures < 1:
            raise BadInput("bad_setting", name="pin_max_failures", value=str(self.pin_max_failures))
        if not self.purse_order == tuple(dict.fromkeys(self.purse_order)):
            raise BadInput("bad_setting", name="purse_order", value=",".join(self.purse_order))
        return self


def _coerce(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif isinstance(default, tuple):
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise BadInput("bad_setting", name=name, value=str(value))
    return value

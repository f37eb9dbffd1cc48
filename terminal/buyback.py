"""Buyback pricing: what the terminal offers in cash for a card's remaining value.

The price is the balance times a rate in basis points (1/100 of a percent). The rate comes from
the season table (a program's own row wins over the catch-all row), lowered for cards close to
expiry and for small balances. The table is synced from the server later; the default below is
the one a new store starts with. Prices round down: the terminal never pays a fraction more.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from terminal.errors import BadInput

_MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


@dataclass(frozen=True)
class Season:
    """A date range (MM-DD, inclusive, may wrap the new year) and its rate for some programs."""

    name: str
    start: str
    end: str
    rate_bp: int
    programs: tuple[str, ...] = ()  # empty: every program

    def covers(self, day: date, program: str) -> bool:
        if self.programs and program not in self.programs:
            return False
        md = day.strftime("%m-%d")
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


@dataclass(frozen=True)
class Bracket:
    """Below `below` (days to expiry, or minor units of balance) the rate changes by `adjust_bp`."""

    below: int
    adjust_bp: int


@dataclass(frozen=True)
class BuybackTable:
    seasons: tuple[Season, ...]
    default_rate_bp: int
    expiry_brackets: tuple[Bracket, ...]
    balance_brackets: tuple[Bracket, ...]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuybackTable:
        try:
            seasons = tuple(Season(s["name"], s["start"], s["end"], int(s["rate_bp"]),
                                   tuple(s.get("programs", ()))) for s in data["seasons"])
            table = cls(seasons, int(data["default_rate_bp"]),
                        tuple(Bracket(int(b["below"]), int(b["adjust_bp"]))
                              for b in data["expiry_brackets"]),
                        tuple(Bracket(int(b["below"]), int(b["adjust_bp"]))
                              for b in data["balance_brackets"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput("bad_buyback_table", detail=str(exc)) from None
        for s in table.seasons:
            if not (_MONTH_DAY.match(s.start) and _MONTH_DAY.match(s.end)):
                raise BadInput("bad_buyback_table", detail=f"season {s.name}: dates are MM-DD")
        rates = [table.default_rate_bp, *(s.rate_bp for s in table.seasons)]
        if not all(0 <= r <= 10_000 for r in rates):
            raise BadInput("bad_buyback_table", detail="rates are 0..10000 basis points")
        return table


DEFAULT_TABLE = BuybackTable(
    seasons=(Season("peak", "11-15", "01-15", 9200),),
    default_rate_bp=8500,
    # Closest bracket wins: under 30 days to expiry -10 %, under 90 days -3 %.
    expiry_brackets=(Bracket(30, -1000), Bracket(90, -300)),
    # Under 10.00 of balance (in minor units of a 2-decimal currency) -2 %.
    balance_brackets=(Bracket(10_00, -200),),
)


@dataclass(frozen=True)
class Quote:
    balance: int
    currency: str
    rate_bp: int
    price: int
    season: str
    days_to_expiry: int | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _adjust(brackets: tuple[Bracket, ...], value: int) -> int:
    hits = [b for b in brackets if value < b.below]
    return min(hits, key=lambda b: b.below).adjust_bp if hits else 0


def quote(table: BuybackTable, balance: int, currency: str, program: str, today: date,
          expiry: date | None) -> Quote:
    """Price the buyback of `balance` on `today` for a card of `program` expiring on `expiry`."""
    season = next((s for s in table.seasons if s.covers(today, program) and s.programs), None) \
        or next((s for s in table.seasons if s.covers(today, program)), None)
    rate = season.rate_bp if season else table.default_rate_bp
    days = (expiry - today).days if expiry is not None else None
    if days is not None:
        rate += _adjust(table.expiry_brackets, days)
    rate += _adjust(table.balance_brackets, balance)
    rate = max(0, min(rate, 10_000))
    return Quote(balance, currency, rate, balance * rate // 10_000,
                 season.name if season else "default", days)

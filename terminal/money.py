"""Money as integer minor units with an ISO 4217 currency — never floats.

Amounts typed by people or read from files arrive as text in major units ("12.50"); they are parsed
here with `decimal` rules, refusing more decimals than the currency has, so "12.505 EUR" is an
error rather than a silent rounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from terminal.errors import BadInput

# ISO 4217 currencies in circulation, by minor-unit exponent.
_BY_EXPONENT = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP
        BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD
        FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD
        KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
        NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP
        SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED
        VES WST XCD XCG YER ZAR ZMW ZWG""",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
EXPONENTS: dict[str, int] = {
    code: exp for exp, codes in _BY_EXPONENT.items() for code in codes.split()
}

#: Largest amount accepted, in minor units: far above any card balance, far below SQLite's 2**63.
MAX_MINOR = 10**15 - 1
_AMOUNT = re.compile(r"^([0-9]{1,15})(?:\.([0-9]+))?$")


def exponent(currency: str) -> int:
    """Number of minor-unit digits of `currency`; BadInput for a code that is not ISO 4217."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise BadInput("unknown_currency", currency=currency) from None


def check_currency(currency: str) -> str:
    """Return `currency` if it is a known ISO 4217 code, else raise BadInput."""
    exponent(currency)
    return currency


def parse_major(text: str, currency: str) -> int:
    """Parse a non-negative amount in major units ("12.50") into minor units (1250).

    Refuses signs, exponents, thousands separators and more decimals than the currency has.
    """
    exp = exponent(currency)
    match = _AMOUNT.match(text.strip())
    if match is None:
        raise BadInput("bad_amount", amount=text, currency=currency)
    whole: str = match.group(1)
    frac: str = match.group(2) or ""
    if len(frac) > exp:
        raise BadInput("too_many_decimals", amount=text, currency=currency, digits=exp)
    minor = int(whole) * int(10**exp) + (int(frac.ljust(exp, "0")) if exp else 0)
    if minor > MAX_MINOR:
        raise BadInput("amount_too_large", amount=text, currency=currency)
    return minor


def format_minor(amount: int, currency: str) -> str:
    """Format minor units as major-unit text without a currency symbol: 1250 EUR -> "12.50"."""
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


@dataclass(frozen=True, order=True)
class Money:
    """An amount in minor units of one currency."""

    amount: int
    currency: str

    def __str__(self) -> str:
        return f"{format_minor(self.amount, self.currency)} {self.currency}"

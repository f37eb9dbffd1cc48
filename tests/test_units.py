"""Money parsing, Luhn, PIN hashing and buyback pricing."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal import buyback, luhn, money, pin
from terminal.errors import BadInput


class TestMoney:
    @pytest.mark.parametrize(("text", "currency", "minor"), [
        ("12.50", "EUR", 1250), ("12.5", "EUR", 1250), ("12", "EUR", 1200), ("0.01", "EUR", 1),
        ("1000", "JPY", 1000), ("1.234", "KWD", 1234), (" 7.00 ", "CNY", 700)])
    def test_parse(self, text: str, currency: str, minor: int) -> None:
        assert money.parse_major(text, currency) == minor

    @pytest.mark.parametrize(("text", "currency", "code"), [
        ("12.505", "EUR", "too_many_decimals"), ("1.5", "JPY", "too_many_decimals"),
        ("-1", "EUR", "bad_amount"), ("1e3", "EUR", "bad_amount"), ("1,000", "EUR", "bad_amount"),
        ("", "EUR", "bad_amount"), ("١٢", "EUR", "bad_amount"), ("12", "XXX", "unknown_currency"),
        ("NaN", "EUR", "bad_amount"), ("10000000000000", "EUR", "amount_too_large")])
    def test_refuse(self, text: str, currency: str, code: str) -> None:
        with pytest.raises(BadInput) as err:
            money.parse_major(text, currency)
        assert err.value.code == code

    @given(st.integers(min_value=0, max_value=money.MAX_MINOR),
           st.sampled_from(["EUR", "JPY", "KWD"]))
    def test_format_parse_round_trip(self, minor: int, currency: str) -> None:
        assert money.parse_major(money.format_minor(minor, currency), currency) == minor

    def test_format(self) -> None:
        assert money.format_minor(-1250, "EUR") == "-12.50"
        assert money.format_minor(5, "KWD") == "0.005"
        assert money.format_minor(500, "JPY") == "500"


class TestLuhn:
    def test_known_numbers(self) -> None:
        assert luhn.is_valid("79927398713") and luhn.is_valid("4539578763621486")
        assert not luhn.is_valid("79927398710")
        assert luhn.normalize_card_number("7992 7398-713") == "79927398713"

    @given(st.text(alphabet="0123456789", min_size=7, max_size=18))
    def test_check_digit_makes_valid_and_catches_single_errors(self, body: str) -> None:
        number = body + luhn.check_digit(body)
        assert luhn.is_valid(number)
        for i in range(len(number)):
            wrong = number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1:]
            assert not luhn.is_valid(wrong)

    def test_mask_shows_the_last_four_only(self) -> None:
        assert luhn.mask("79927398713") == "*******8713"

    @pytest.mark.parametrize("text", ["1234567", "12345678901234567890", "abcd5678", "١٢٣٤٥٦٧٨"])
    def test_malformed(self, text: str) -> None:
        with pytest.raises(BadInput) as err:
            luhn.normalize_card_number(text)
        assert err.value.code == "bad_card_number"


class TestPin:
    def test_hash_and_verify(self) -> None:
        encoded = pin.hash_pin("2468")
        assert encoded.startswith("scrypt$14$8$1$") and "2468" not in encoded
        assert pin.verify_pin("2468", encoded) and not pin.verify_pin("2469", encoded)
        assert pin.hash_pin("2468") != encoded  # salted

    @pytest.mark.parametrize("bad", ["123", "1234567890123", "12a4", "", "١٢٣٤"])
    def test_format(self, bad: str) -> None:
        with pytest.raises(BadInput):
            pin.hash_pin(bad)

    @pytest.mark.parametrize("encoded", [
        "", "scrypt$14$8$1$", "plain1234", "scrypt$30$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",
        "scrypt$20$16$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",  # 2 GiB of memory: refused
        "scrypt$14$8$1$!!!$AAAA"])
    def test_hostile_hashes_are_refused_cheaply(self, encoded: str) -> None:
        assert not pin.is_encoded_hash(encoded)
        assert not pin.verify_pin("1234", encoded)


class TestBuyback:
    table = buyback.DEFAULT_TABLE

    def price(self, balance: int, today: date, expiry: date | None, program: str = "fuel"
              ) -> buyback.Quote:
        return buyback.quote(self.table, balance, "EUR", program, today, expiry)

    def test_peak_and_off_season(self) -> None:
        far = date(2030, 1, 1)
        assert self.price(100_00, date(2026, 12, 1), far).rate_bp == 9200
        assert self.price(100_00, date(2027, 1, 15), far).season == "peak"  # wraps the new year
        off = self.price(100_00, date(2026, 6, 1), far)
        assert (off.rate_bp, off.price, off.season) == (8500, 85_00, "default")

    def test_expiry_and_small_balance_lower_the_rate(self) -> None:
        june = date(2026, 6, 1)
        assert self.price(100_00, june, date(2026, 6, 20)).rate_bp == 7500   # < 30 days: -10 %
        assert self.price(100_00, june, date(2026, 8, 1)).rate_bp == 8200    # < 90 days: -3 %
        assert self.price(9_99, june, None).rate_bp == 8300                  # < 10.00: -2 %

    def test_price_rounds_down(self) -> None:
        assert self.price(1_01, date(2026, 6, 1), None).price == 83  # 101 * 0.83 = 83.83

    def test_program_specific_season_wins(self) -> None:
        table = buyback.BuybackTable.from_json({
            **self.table.as_json(),
            "seasons": [{"name": "peak", "start": "11-15", "end": "01-15", "rate_bp": 9200},
                        {"name": "fuel-summer", "start": "06-01", "end": "08-31",
                         "rate_bp": 9500, "programs": ["fuel"]}]})
        june = date(2026, 6, 1)
        assert buyback.quote(table, 100_00, "EUR", "fuel", june, None).rate_bp == 9500
        assert buyback.quote(table, 100_00, "EUR", "phone", june, None).rate_bp == 8500

    @pytest.mark.parametrize("broken", [
        {"seasons": []}, {"default_rate_bp": 12000},
        {"seasons": [{"name": "x", "start": "13-01", "end": "01-01", "rate_bp": 1}]}])
    def test_bad_tables(self, broken: dict[str, object]) -> None:
        data = {**self.table.as_json(), **broken}
        if broken == {"seasons": []}:
            del data["seasons"]
        with pytest.raises(BadInput):
            buyback.BuybackTable.from_json(data)

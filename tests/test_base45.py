"""Base45 (RFC 9285): the RFC's examples, exhaustive canonicity, and refusal of bad text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal import base45
from terminal.errors import TokenError
from terminal.reasons import Reason

RFC_EXAMPLES = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]
QR_ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


@pytest.mark.parametrize(("data", "text"), RFC_EXAMPLES)
def test_rfc_examples_encode(data: bytes, text: str) -> None:
    assert base45.encode(data) == text


@pytest.mark.parametrize(("data", "text"), RFC_EXAMPLES)
def test_rfc_examples_decode(data: bytes, text: str) -> None:
    assert base45.decode(text) == data


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"", ""), (b"\x00", "00"), (b"\xff", "U5"), (b"\x00\x00", "000"), (b"\xff\xff", "FGW")],
)
def test_edges(data: bytes, text: str) -> None:
    assert base45.encode(data) == text
    assert base45.decode(text) == data


def test_alphabet_is_the_qr_alphanumeric_charset() -> None:
    assert set(base45.ALPHABET) == QR_ALPHANUMERIC
    assert len(base45.ALPHABET) == 45


@pytest.mark.parametrize(
    "text",
    [
        "GGW",  # RFC 9285 section 6: 65536 does not fit in two bytes
        "ZZZ",  # 72485
        ":::",  # 91124, the largest triple
        "V5",  # a final pair of 256
        "ZZ",  # a final pair of 1610
        "BB8GGW",  # an overflowing triple after a good one
        "A",  # length 3k+1
        "BB8A",
        "bb8",  # lower case is not in the alphabet
        "BB#",
        "BB\n",
        "BB8\x00",
        "BBé",
        "\u00a0BB",
    ],
)
def test_invalid_text_is_malformed(text: str) -> None:
    with pytest.raises(TokenError) as exc:
        base45.decode(text)
    assert exc.value.reason is Reason.MALFORMED_CODE


def test_every_pair_decodes_iff_canonical() -> None:
    for c in base45.ALPHABET:
        for d in base45.ALPHABET:
            text = c + d
            if base45.ALPHABET.index(c) + base45.ALPHABET.index(d) * 45 <= 0xFF:
                assert base45.encode(base45.decode(text)) == text
            else:
                with pytest.raises(TokenError):
                    base45.decode(text)


def test_every_triple_decodes_iff_canonical() -> None:
    accepted = 0
    for e in base45.ALPHABET:
        for d in base45.ALPHABET:
            for c in base45.ALPHABET:
                text = c + d + e
                try:
                    data = base45.decode(text)
                except TokenError:
                    continue
                accepted += 1
                assert base45.encode(data) == text
    assert accepted == 0x10000  # one text per 2-byte value, no more


@given(st.binary())
def test_round_trip(data: bytes) -> None:
    text = base45.encode(data)
    assert set(text) <= QR_ALPHANUMERIC
    assert len(text) == len(data) // 2 * 3 + len(data) % 2 * 2
    assert not text.endswith(" ")  # what lets from_qr_text strip whitespace safely
    assert base45.decode(text) == data


@given(st.text(alphabet=base45.ALPHABET))
def test_decoded_text_is_the_only_encoding(text: str) -> None:
    try:
        data = base45.decode(text)
    except TokenError as err:
        assert err.reason is Reason.MALFORMED_CODE
    else:
        assert base45.encode(data) == text


@given(st.text())
def test_arbitrary_text_only_raises_token_error(text: str) -> None:
    try:
        base45.decode(text)
    except TokenError as err:
        assert err.reason is Reason.MALFORMED_CODE

"""The signed card token: test vectors (kept equal to docs/token-format.md), round trips, and
refusal of every malformed, truncated, altered, forged, stale or unknown-key token."""

from __future__ import annotations

import dataclasses
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from terminal.errors import BadInput, TokenError
from terminal.reasons import Reason
from terminal.tokens import (
    NDEF_TYPE,
    QR_PREFIX,
    SIGNING_PREFIX,
    Dynamic,
    TokenPayload,
    dynamic_counter,
    from_qr_text,
    load_private_key,
    parse_token,
    public_key_bytes,
    sign_token,
    to_qr_text,
    verify_token,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "token-format.md"
QR_ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
REFUSED_WHEN_ALTERED = {Reason.MALFORMED_CODE, Reason.BAD_SIGNATURE, Reason.UNKNOWN_KEY}

# --- the test vectors; the same values are printed in docs/token-format.md ----------------------

SEED = bytes(range(32))
PUBLIC_KEY_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
KEYS = {"demo-2026": bytes.fromhex(PUBLIC_KEY_HEX)}

STATIC = TokenPayload(
    key_id="demo-2026",
    card_number="6006491234567891",
    purses=("fuel", "phone"),
    issued_at=1767225600,
    expires_at=1924992000,
)
STATIC_HEX = (
    "01000964656d6f2d3230323610600649123456789102046675656c0570686f6e656955b90072bd0c00"
    "8f3f1071319f27e3bbb16875d99f35ed9f13fb4b1f8201996e5260bf6ed160d04ccf5730f3ed3ec22066"
    "f2ce34cb0d2e0a08f1c6c4fafb3c0abfb7eda6be8e0f"
)
STATIC_QR = (
    "CP1:V50J810$CL2ENF6TF6732YZ0PD2--A.EI1P0%$ENTDL9E-3E- CU$AO20L+N830Y/7.DEI5KOZSBJMJ+EW5K "
    "1UUN2GM9QJG%HJSIA19O5LQ:EQO9QL86T:TGOOT0D33Q6UP- 5*51Y5P WVPQ7TAO/1U24OF0"
)

DYNAMIC = TokenPayload(
    key_id="demo-2026",
    card_number="600649000012342",
    purses=("general",),
    issued_at=1767225645,
    expires_at=None,
    dynamic=Dynamic(window_s=30, counter=58907521),
)
DYNAMIC_HEX = (
    "01010964656d6f2d323032360f600649000012342f010767656e6572616c6955b92d00000000001e0382"
    "db81ae325af27da20aa580b9a557e42af31e7a0fee827b648e095f3408582a6b819eb9931be0989c6d5a"
    "26c65d2fed0d0726f6f3457d9ec7d8c12620bfb1a62b990d"
)
DYNAMIC_QR = (
    "CP1:W50J810$CL2ENF6TF6L.1YZ0000PD2I.55.01$C5$CAECAEDKIN000000U00/J0XXR:0MHMBW*FPF1DCGR+K0"
    "%S3XUHJF%6U/QF1/HR1CL21EG5HHGWKNQN38DJ4$DQ+45ZBP/TU+0*9VEZ8C3K4IR+ 4NAOE0LVFJ"
)

VECTORS = [(STATIC, STATIC_HEX, STATIC_QR), (DYNAMIC, DYNAMIC_HEX, DYNAMIC_QR)]
STATIC_TOKEN = bytes.fromhex(STATIC_HEX)
DYNAMIC_TOKEN = bytes.fromhex(DYNAMIC_HEX)
VALID_NOW = 1767225650  # both vectors verify at this time


def reason_of(call: Any, *args: Any, **kwargs: Any) -> Reason:
    with pytest.raises(TokenError) as exc:
        call(*args, **kwargs)
    return exc.value.reason


def vector_fields(payload: TokenPayload, token_hex: str, qr: str) -> dict[str, str]:
    """A vector in the `name value` form used in the doc's vector blocks."""
    return {
        "seed": SEED.hex(),
        "public_key": PUBLIC_KEY_HEX,
        "key_id": payload.key_id,
        "card_number": payload.card_number,
        "purses": ",".join(payload.purses),
        "issued_at": str(payload.issued_at),
        "expires_at": "-" if payload.expires_at is None else str(payload.expires_at),
        "window_s": "-" if payload.dynamic is None else str(payload.dynamic.window_s),
        "counter": "-" if payload.dynamic is None else str(payload.dynamic.counter),
        "token": token_hex,
        "qr_text": qr,
    }


# --- vectors ------------------------------------------------------------------------------------


def test_public_key_of_the_seed() -> None:
    assert public_key_bytes(KEY).hex() == PUBLIC_KEY_HEX


@pytest.mark.parametrize(("payload", "token_hex", "qr"), VECTORS)
def test_vectors_rederive_byte_for_byte(payload: TokenPayload, token_hex: str, qr: str) -> None:
    token = sign_token(payload, KEY)
    assert token.hex() == token_hex
    assert to_qr_text(token) == qr
    assert from_qr_text(qr) == token
    assert parse_token(token)[0] == payload
    assert verify_token(token, KEYS, now=VALID_NOW) == payload


def test_doc_prints_the_same_vectors() -> None:
    blocks = re.findall(r"```text\n(seed .*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    in_doc = [dict(line.split(None, 1) for line in block.splitlines()) for block in blocks]
    assert in_doc == [vector_fields(*vector) for vector in VECTORS]


def test_doc_names_the_constants() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert f"`{QR_PREFIX}`" in doc
    assert f"`{NDEF_TYPE}`" in doc
    assert SIGNING_PREFIX.hex(" ") in doc


def test_static_layout_offsets() -> None:
    """The offsets of the doc's layout table, read off the static vector."""
    t = STATIC_TOKEN
    assert t[0] == 0x01 and t[1] == 0x00  # version, flags
    assert t[2] == 9 and t[3:12] == b"demo-2026"  # key id
    assert t[12] == 16 and t[13:21] == bytes.fromhex("6006491234567891")  # card number, BCD
    assert t[21] == 2 and t[22:27] == b"\x04fuel" and t[27:33] == b"\x05phone"  # purse hints
    assert struct.unpack(">II", t[33:41]) == (1767225600, 1924992000)  # issued_at, expires_at
    assert len(t) == 41 + 64  # signature


def test_dynamic_layout_odd_digit_count_and_tail() -> None:
    t = DYNAMIC_TOKEN
    assert t[1] == 0x01  # dynamic flag
    assert t[12] == 15 and t[13:21] == bytes.fromhex("600649000012342f")  # pad nibble F
    assert struct.unpack(">IIHI", t[30:44]) == (1767225645, 0, 30, 58907521)
    assert len(t) == 44 + 64


@pytest.mark.parametrize("token", [STATIC_TOKEN, DYNAMIC_TOKEN])
def test_signed_message_is_prefix_and_payload(token: bytes) -> None:
    _, message, signature = parse_token(token)
    assert message == SIGNING_PREFIX + token[:-64]
    assert signature == token[-64:]


# --- round trips --------------------------------------------------------------------------------

KEY_IDS = st.from_regex(r"[A-Za-z0-9._-]{1,16}", fullmatch=True)
CARD_NUMBERS = st.from_regex(r"[0-9]{8,19}", fullmatch=True)
PURSES = st.lists(st.from_regex(r"[a-z0-9_]{1,16}", fullmatch=True), max_size=8, unique=True)
DYNAMICS = st.none() | st.builds(
    Dynamic, window_s=st.integers(1, 0xFFFF), counter=st.integers(0, 0xFFFFFFFF)
)


@st.composite
def payloads(draw: st.DrawFn) -> TokenPayload:
    issued_at = draw(st.integers(0, 0xFFFFFFFE))
    return TokenPayload(
        key_id=draw(KEY_IDS),
        card_number=draw(CARD_NUMBERS),
        purses=tuple(draw(PURSES)),
        issued_at=issued_at,
        expires_at=draw(st.none() | st.integers(issued_at + 1, 0xFFFFFFFF)),
        dynamic=draw(DYNAMICS),
    )


@given(payloads())
def test_round_trip(payload: TokenPayload) -> None:
    token = sign_token(payload, KEY)
    parsed, message, signature = parse_token(token)
    assert parsed == payload
    assert message + signature == SIGNING_PREFIX + token
    qr = to_qr_text(token)
    assert set(qr) <= QR_ALPHANUMERIC
    assert from_qr_text(f" {qr}\r\n") == token
    keys = {payload.key_id: public_key_bytes(KEY)}
    assert verify_token(token, keys, now=payload.issued_at) == payload


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [STATIC_TOKEN, DYNAMIC_TOKEN])
def test_every_truncation_is_malformed(token: bytes) -> None:
    for length in range(len(token)):
        assert reason_of(parse_token, token[:length]) is Reason.MALFORMED_CODE
        assert reason_of(verify_token, token[:length], KEYS, VALID_NOW) is Reason.MALFORMED_CODE


@pytest.mark.parametrize("extra", [b"\x00", b"\xff" * 64, STATIC_TOKEN])
@pytest.mark.parametrize("token", [STATIC_TOKEN, DYNAMIC_TOKEN])
def test_trailing_bytes_are_malformed(token: bytes, extra: bytes) -> None:
    assert reason_of(verify_token, token + extra, KEYS, VALID_NOW) is Reason.MALFORMED_CODE


@pytest.mark.parametrize("token", [STATIC_TOKEN, DYNAMIC_TOKEN])
def test_every_bit_flip_is_refused(token: bytes) -> None:
    for i in range(len(token) * 8):
        altered = bytearray(token)
        altered[i // 8] ^= 0x80 >> (i % 8)
        assert reason_of(verify_token, bytes(altered), KEYS, VALID_NOW) in REFUSED_WHEN_ALTERED


@pytest.mark.parametrize("payload", [STATIC, DYNAMIC])
def test_forged_by_another_key_is_bad_signature(payload: TokenPayload) -> None:
    forged = sign_token(payload, Ed25519PrivateKey.generate())
    assert reason_of(verify_token, forged, KEYS, VALID_NOW) is Reason.BAD_SIGNATURE


def test_signature_of_another_token_is_bad_signature() -> None:
    spliced = STATIC_TOKEN[:-64] + DYNAMIC_TOKEN[-64:]
    assert reason_of(verify_token, spliced, KEYS, VALID_NOW) is Reason.BAD_SIGNATURE


def test_signature_without_domain_prefix_is_bad_signature() -> None:
    body = STATIC_TOKEN[:-64]
    assert reason_of(verify_token, body + KEY.sign(body), KEYS, VALID_NOW) is Reason.BAD_SIGNATURE


def test_unknown_key() -> None:
    assert reason_of(verify_token, STATIC_TOKEN, {}, VALID_NOW) is Reason.UNKNOWN_KEY
    other = {"demo-2027": KEYS["demo-2026"]}
    assert reason_of(verify_token, STATIC_TOKEN, other, VALID_NOW) is Reason.UNKNOWN_KEY


def test_unusable_stored_key_is_unknown_key() -> None:
    broken = {"demo-2026": bytes.fromhex(PUBLIC_KEY_HEX)[:31]}
    assert reason_of(verify_token, STATIC_TOKEN, broken, VALID_NOW) is Reason.UNKNOWN_KEY


def test_unknown_key_is_checked_before_the_signature() -> None:
    forged = sign_token(dataclasses.replace(STATIC, key_id="nobody"), Ed25519PrivateKey.generate())
    assert reason_of(verify_token, forged, KEYS, VALID_NOW) is Reason.UNKNOWN_KEY


def test_signature_is_checked_before_the_time() -> None:
    forged = sign_token(STATIC, Ed25519PrivateKey.generate())
    assert reason_of(verify_token, forged, KEYS, STATIC.issued_at - 3600) is Reason.BAD_SIGNATURE
    assert reason_of(verify_token, forged, KEYS, 1924992000 + 3600) is Reason.BAD_SIGNATURE


def test_not_yet_valid_beyond_skew() -> None:
    earliest = STATIC.issued_at - 60
    assert verify_token(STATIC_TOKEN, KEYS, now=earliest) == STATIC
    assert reason_of(verify_token, STATIC_TOKEN, KEYS, earliest - 1) is Reason.CODE_NOT_YET_VALID
    assert verify_token(STATIC_TOKEN, KEYS, now=STATIC.issued_at - 10, skew_s=10) == STATIC
    with pytest.raises(TokenError) as exc:
        verify_token(STATIC_TOKEN, KEYS, now=STATIC.issued_at - 11, skew_s=10)
    assert exc.value.reason is Reason.CODE_NOT_YET_VALID


def test_static_expiry_beyond_skew() -> None:
    assert STATIC.expires_at is not None
    latest = STATIC.expires_at + 60
    assert verify_token(STATIC_TOKEN, KEYS, now=latest) == STATIC
    assert reason_of(verify_token, STATIC_TOKEN, KEYS, latest + 1) is Reason.EXPIRED_CODE


def test_static_code_without_expiry_never_expires() -> None:
    token = sign_token(dataclasses.replace(STATIC, expires_at=None), KEY)
    assert verify_token(token, KEYS, now=0xFFFFFFFF).expires_at is None


def test_dynamic_code_expires_after_its_window() -> None:
    latest = DYNAMIC.issued_at + 30 + 60
    assert verify_token(DYNAMIC_TOKEN, KEYS, now=latest) == DYNAMIC
    assert reason_of(verify_token, DYNAMIC_TOKEN, KEYS, latest + 1) is Reason.EXPIRED_CODE
    assert reason_of(verify_token, DYNAMIC_TOKEN, KEYS, DYNAMIC.issued_at + 31, 0) is (
        Reason.EXPIRED_CODE
    )


def test_dynamic_code_also_honours_expires_at() -> None:
    payload = dataclasses.replace(DYNAMIC, expires_at=DYNAMIC.issued_at + 10)
    token = sign_token(payload, KEY)
    assert reason_of(verify_token, token, KEYS, DYNAMIC.issued_at + 11, 0) is Reason.EXPIRED_CODE


# --- structure, checked against a second, literal encoder of the documented layout -------------


def raw_token(
    *,
    version: int = 1,
    flags: int = 0,
    key_id: bytes = b"k1",
    card: bytes = bytes([8]) + bytes.fromhex("12345678"),
    purses: bytes = b"\x01\x04fuel",
    issued_at: int = 1000,
    expires_at: int = 2000,
    tail: bytes = b"",
) -> bytes:
    """Payload bytes written field by field from the doc's table, plus a dummy signature."""
    return (
        bytes([version, flags, len(key_id)])
        + key_id
        + card
        + purses
        + struct.pack(">II", issued_at, expires_at)
        + tail
        + bytes(64)
    )


def test_literal_encoder_agrees_with_parser() -> None:
    payload, _, _ = parse_token(raw_token())
    assert payload == TokenPayload("k1", "12345678", ("fuel",), 1000, 2000)
    payload, _, _ = parse_token(raw_token(flags=1, expires_at=0, tail=struct.pack(">HI", 30, 7)))
    assert payload.dynamic == Dynamic(30, 7) and payload.expires_at is None


@pytest.mark.parametrize(
    "fields",
    [
        {"version": 0},
        {"version": 2},
        {"flags": 0x02},
        {"flags": 0x80},
        {"flags": 0x01},  # dynamic flag without the dynamic part
        {"key_id": b""},
        {"key_id": b"k" * 17},
        {"key_id": b"k 1"},
        {"key_id": b"k\xe91"},
        {"key_id": b"k:1"},
        {"card": bytes([7]) + bytes.fromhex("1234567f")},
        {"card": bytes([20]) + bytes.fromhex("12345678901234567890")},
        {"card": bytes([9]) + bytes.fromhex("1234567890")},  # pad nibble 0 instead of F
        {"card": bytes([9]) + bytes.fromhex("123456789e")},
        {"card": bytes([8]) + bytes.fromhex("1234567a")},  # non-digit nibble
        {"card": bytes([8]) + bytes.fromhex("1234567f")},  # pad nibble inside an even count
        {"card": bytes([0])},
        {"purses": b"\x09" + b"\x01a" * 9},
        {"purses": b"\x02\x04fuel\x04fuel"},  # duplicate hint
        {"purses": b"\x01\x04Fuel"},
        {"purses": b"\x01\x00"},
        {"purses": b"\x01\x11" + b"a" * 17},
        {"issued_at": 2000, "expires_at": 2000},  # expires_at must be after issued_at
        {"issued_at": 2001, "expires_at": 2000},
        {"flags": 1, "tail": struct.pack(">HI", 0, 7)},  # window_s 0
    ],
)
def test_structural_problems_are_malformed(fields: dict[str, Any]) -> None:
    assert reason_of(parse_token, raw_token(**fields)) is Reason.MALFORMED_CODE


def test_empty_and_garbage_are_malformed() -> None:
    for raw in (b"", b"\x01", bytes(200), b"CP1:" + STATIC_TOKEN):
        assert reason_of(parse_token, raw) is Reason.MALFORMED_CODE


@given(st.binary(max_size=300))
def test_parse_and_verify_of_arbitrary_bytes_raise_only_token_error(raw: bytes) -> None:
    for call in (lambda: parse_token(raw), lambda: verify_token(raw, KEYS, VALID_NOW)):
        try:
            call()
        except TokenError as err:
            assert err.reason in REFUSED_WHEN_ALTERED


@given(st.sampled_from([b"\x01\x00", b"\x01\x01", STATIC_TOKEN[:12], DYNAMIC_TOKEN[:30]]),
       st.binary(max_size=200))
def test_plausible_prefixes_with_random_tails_are_refused(head: bytes, tail: bytes) -> None:
    raw = head + tail
    if raw in (STATIC_TOKEN, DYNAMIC_TOKEN):
        return
    assert reason_of(verify_token, raw, KEYS, VALID_NOW) in REFUSED_WHEN_ALTERED


@given(st.text())
def test_from_qr_text_of_arbitrary_text_raises_only_token_error(text: str) -> None:
    try:
        from_qr_text(text)
    except TokenError as err:
        assert err.reason is Reason.MALFORMED_CODE


@given(st.text(alphabet=sorted(QR_ALPHANUMERIC)))
def test_from_qr_text_of_prefixed_alphanumeric_text_raises_only_token_error(text: str) -> None:
    try:
        from_qr_text(QR_PREFIX + text)
    except TokenError as err:
        assert err.reason is Reason.MALFORMED_CODE


# --- QR text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("qr", [STATIC_QR, DYNAMIC_QR])
def test_qr_text_is_alphanumeric_mode(qr: str) -> None:
    assert set(qr) <= QR_ALPHANUMERIC


def test_qr_text_whitespace_is_stripped() -> None:
    assert from_qr_text(f"\t{STATIC_QR}\r\n") == STATIC_TOKEN


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        STATIC_QR[len(QR_PREFIX) :],  # no prefix
        "cp1:" + STATIC_QR[len(QR_PREFIX) :],  # prefix is upper case only
        "CP2:" + STATIC_QR[len(QR_PREFIX) :],
        "CP1:" + STATIC_QR[len(QR_PREFIX) :].lower(),
        STATIC_QR + "AB",  # base45 length 3k+1
        "x" + STATIC_QR,
    ],
)
def test_bad_qr_text_is_malformed(text: str) -> None:
    assert reason_of(from_qr_text, text) is Reason.MALFORMED_CODE


# --- signing input checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"key_id": ""},
        {"key_id": "k" * 17},
        {"key_id": "demo 2026"},
        {"key_id": "démo"},
        {"card_number": "1234567"},
        {"card_number": "1" * 20},
        {"card_number": "1234567a"},
        {"card_number": "١٢٣٤٥٦٧٨"},  # Arabic-Indic digits are not ASCII digits
        {"card_number": "12345678\n"},
        {"purses": tuple(f"p{i}" for i in range(9))},
        {"purses": ("Fuel",)},
        {"purses": ("",)},
        {"purses": ("a" * 17,)},
        {"purses": ("fuel", "fuel")},
        {"issued_at": -1},
        {"issued_at": 2**32},
        {"expires_at": STATIC.issued_at},
        {"expires_at": STATIC.issued_at - 1},
        {"expires_at": 2**32},
        {"dynamic": Dynamic(window_s=0, counter=1)},
        {"dynamic": Dynamic(window_s=2**16, counter=1)},
        {"dynamic": Dynamic(window_s=30, counter=-1)},
        {"dynamic": Dynamic(window_s=30, counter=2**32)},
    ],
)
def test_sign_refuses_out_of_range_fields(changes: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        sign_token(dataclasses.replace(STATIC, **changes), KEY)


# --- helpers ------------------------------------------------------------------------------------


def test_dynamic_counter() -> None:
    assert dynamic_counter(DYNAMIC.issued_at, 30) == 58907521
    assert dynamic_counter(59, 30) == 1 and dynamic_counter(60, 30) == 2
    with pytest.raises(BadInput):
        dynamic_counter(60, 0)


def test_load_private_key_from_hex_seed() -> None:
    for data in (SEED.hex().encode(), b"  " + SEED.hex().upper().encode() + b"\n"):
        assert public_key_bytes(load_private_key(data)).hex() == PUBLIC_KEY_HEX


def test_load_private_key_from_pem() -> None:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert public_key_bytes(load_private_key(pem + b"\n")).hex() == PUBLIC_KEY_HEX


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"00" * 31,
        b"00" * 33,
        b"not hex at all",
        b"\xff\xfe",
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
)
def test_load_private_key_refuses_other_input(data: bytes) -> None:
    with pytest.raises(BadInput):
        load_private_key(data)

"""The nfcpy reader adapter against the real nfcpy stack, over nfcpy's ``udp:`` emulated link.

The other end of the link is `drivers.tag_responder`: a Type 2 (NTAG215) or Type 4 tag that
answers nfcpy's frames on 127.0.0.1 (a free port per test). Nothing here is mocked: nfcpy's
ContactlessFrontend polls, activates and reads the tags exactly as it would over USB, and the
adapter's events are what a UI would get. nfcpy's udp poll waits up to 1 s for a tag, so a tap
made while the reader is already polling shows up within about a second; where a test does
not care, the tag is put on the reader before the reader starts.
"""

from __future__ import annotations

import ctypes.util
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import ndef  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.nfcpy_reader import NfcpyReader, open_nfcpy, token_from_ndef
from drivers.tag_responder import DEFAULT_ATS, TagKind, TagResponder, ndef_message
from terminal import tokens
from terminal.errors import BadInput
from terminal.ports import (
    CardPresented,
    CardRemoved,
    DeviceEvent,
    DeviceState,
    DeviceStatus,
)
from tests.needs import require

UID = bytes.fromhex("04A1B2C3D4E501")
UID_HEX = "04A1B2C3D4E501"
KINDS: list[TagKind] = ["type2", "type4"]
WAIT = 5.0  # the longest any single event may take to arrive
#: A second record long enough to make the NDEF message over 255 bytes: a 3-byte TLV length on
#: the Type 2 tag, READ BINARY answers longer than one ISO-DEP frame (chained) on the Type 4 tag.
LONG_URI = "https://issuer.example/balance?" + "x" * 300
NOW = 1_780_000_000


class Events:
    """The sink: collects events from the reader's worker thread for the test to take."""

    def __init__(self) -> None:
        self._queue: queue.Queue[DeviceEvent] = queue.Queue()

    def __call__(self, event: DeviceEvent) -> None:
        self._queue.put(event)

    def next(self, timeout: float = WAIT) -> DeviceEvent:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None

    def card(self, timeout: float = WAIT) -> CardPresented:
        event = self.next(timeout)
        assert isinstance(event, CardPresented), event
        return event

    def status(self, timeout: float = WAIT) -> DeviceStatus:
        event = self.next(timeout)
        assert isinstance(event, DeviceStatus), event
        return event

    def quiet(self, seconds: float) -> None:
        """Assert that nothing happens for `seconds`."""
        try:
            event = self._queue.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected event {event!r}")


@contextmanager
def running(reader: NfcpyReader) -> Iterator[tuple[NfcpyReader, Events]]:
    events = Events()
    reader.start(events)
    try:
        yield reader, events
    finally:
        reader.stop()


@contextmanager
def reading(tag: TagResponder) -> Iterator[tuple[NfcpyReader, Events]]:
    """A reader on `tag`'s udp link, started, with its "ready" status already taken."""
    with running(NfcpyReader(tag.path)) as (reader, events):
        ready = events.status()
        assert (ready.state, ready.code) == (DeviceState.READY, "reader_ready")
        yield reader, events


@pytest.fixture(scope="module")
def issuer() -> tuple[bytes, dict[str, bytes]]:
    """A real signed token and the public keys that verify it."""
    key = Ed25519PrivateKey.generate()
    payload = tokens.TokenPayload("issuer-1", "6280001234567890", ("fuel", "phone"), NOW, None)
    return tokens.sign_token(payload, key), {"issuer-1": tokens.public_key_bytes(key)}


@pytest.mark.parametrize("uri", [None, LONG_URI], ids=["token-only", "long-message"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_tap_gives_the_uid_and_the_exact_token(
        kind: TagKind, uri: str | None, issuer: tuple[bytes, dict[str, bytes]]) -> None:
    token, keys = issuer
    with TagResponder(kind, UID, ndef_message(token, uri)) as tag:
        tag.present()
        with reading(tag) as (reader, events):
            card = events.card()
            assert card == CardPresented(reader.name, UID_HEX, token)
            assert card.token is not None
            assert tokens.verify_token(card.token, keys, NOW).card_number == "6280001234567890"
            tag.remove()
            assert events.next() == CardRemoved(reader.name)
            events.quiet(0.3)


@pytest.mark.parametrize(("kind", "uid", "message"), [
    ("type2", UID, b""),
    ("type2", UID, ndef_message(uri="https://issuer.example/")),
    ("type4", bytes.fromhex("08A1B2C3"), b""),
    ("type4", UID, ndef_message(uri="https://issuer.example/")),
], ids=["type2-empty", "type2-uri-only", "type4-4-byte-uid-empty", "type4-uri-only"])
def test_a_tag_without_a_token_gives_its_uid_and_none(
        kind: TagKind, uid: bytes, message: bytes) -> None:
    with TagResponder(kind, uid, message) as tag:
        tag.present()
        with reading(tag) as (reader, events):
            assert events.card() == CardPresented(reader.name, uid.hex().upper(), None)
            tag.remove()
            assert events.next() == CardRemoved(reader.name)


@pytest.mark.parametrize("kind", KINDS)
def test_two_taps_give_two_events_however_long_the_card_rests(kind: TagKind) -> None:
    with TagResponder(kind, UID, ndef_message(b"\x01token")) as tag, reading(tag) as (r, events):
        tag.present()
        assert events.card() == CardPresented(r.name, UID_HEX, b"\x01token")
        events.quiet(1.0)  # about ten presence checks: no event per poll
        tag.remove()
        assert events.next() == CardRemoved(r.name)
        events.quiet(0.3)
        tag.present()
        assert events.card() == CardPresented(r.name, UID_HEX, b"\x01token")
        tag.remove()
        assert events.next() == CardRemoved(r.name)
        events.quiet(0.5)
        assert tag.activations >= 2


# Commands a tag answers before it leaves (see tag_responder.leave_mid_read). Type 2: AUTH
# probe and GET_VERSION, then READs of 16 bytes: 3 leaves after the capability container, 6 in
# the middle of the token. Type 4: RATS, SELECT app, SELECT CC, 2 READs, SELECT NDEF, READ of
# the length: 7 leaves before the message, 8 between the blocks of a chained READ BINARY answer.
@pytest.mark.parametrize(("kind", "after"), [("type2", 3), ("type2", 6), ("type4", 7),
                                             ("type4", 8)])
def test_a_tag_leaving_mid_read_is_reported_and_never_presented(
        kind: TagKind, after: int, issuer: tuple[bytes, dict[str, bytes]]) -> None:
    token, _ = issuer
    with TagResponder(kind, UID, ndef_message(token, LONG_URI)) as tag:
        tag.leave_mid_read(after)
        tag.present()
        with reading(tag) as (reader, events):
            assert tag.wait_left(WAIT)
            hint = events.status()
            assert hint == DeviceStatus("reader", reader.name, DeviceState.READY,
                                        "card_removed_mid_read", UID_HEX)
            events.quiet(0.5)  # no CardPresented, and no CardRemoved for a card never presented
            tag.present()  # the customer taps again
            assert events.card() == CardPresented(reader.name, UID_HEX, token)
            tag.remove()
            assert events.next() == CardRemoved(reader.name)


def test_corrupt_ndef_data_are_reported_once_and_the_reader_goes_on() -> None:
    corrupt = ndef_message(b"\x01" * 40)[:-10]  # the record says 40 bytes, 30 follow
    with TagResponder("type2", UID, corrupt) as tag:
        tag.present()
        with reading(tag) as (reader, events):
            hint = events.status()
            assert (hint.state, hint.code) == (DeviceState.READY, "card_unreadable")
            assert hint.detail.startswith(UID_HEX)
            tag.remove()
            events.quiet(0.5)
            tag.load(ndef_message(b"\x01good"))
            tag.present()
            assert events.card() == CardPresented(reader.name, UID_HEX, b"\x01good")


def test_a_corrupt_answer_during_activation_is_the_cards_fault_not_the_readers() -> None:
    """A garbled ATS makes nfcpy raise inside its own activation code; the worker lives on,
    reports the card once (not at every poll while it lies there) and reads it once fixed."""
    with TagResponder("type4", UID, ndef_message(b"\x01ok"), ats=b"\x01") as tag:
        tag.present()
        with reading(tag) as (reader, events):
            hint = events.status()
            assert (hint.state, hint.code) == (DeviceState.READY, "card_unreadable")
            assert hint.detail.startswith(UID_HEX) and "IndexError" in hint.detail
            events.quiet(1.5)  # polled again and again, reported once
            tag.ats = DEFAULT_ATS
            assert events.card(timeout=WAIT) == CardPresented(reader.name, UID_HEX, b"\x01ok")


def test_a_failing_sink_does_not_stop_the_reader() -> None:
    events = Events()
    failed = threading.Event()

    def sink(event: DeviceEvent) -> None:
        if isinstance(event, CardPresented) and not failed.is_set():
            failed.set()
            raise RuntimeError("a consumer bug")
        events(event)

    with TagResponder("type2", UID, ndef_message(b"\x01t")) as tag:
        tag.present()
        reader = NfcpyReader(tag.path)
        reader.start(sink)
        try:
            assert events.status().code == "reader_ready"
            assert failed.wait(WAIT)
            tag.remove()
            assert events.next() == CardRemoved(reader.name)
            tag.present()
            assert events.card() == CardPresented(reader.name, UID_HEX, b"\x01t")
        finally:
            reader.stop()


def _worker_threads(reader: NfcpyReader) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"reader {reader.name}"]


def test_stop_is_prompt_and_ends_the_worker() -> None:
    with TagResponder("type4", UID, ndef_message(b"\x01t")) as tag:
        # Idle: nfcpy's udp poll waits up to 1 s for an answer, so stop waits that long at most.
        reader = NfcpyReader(tag.path)
        with running(reader) as (_, events):
            assert events.status().code == "reader_ready"
            time.sleep(0.4)
            started = time.monotonic()
            reader.stop()
            idle_stop = time.monotonic() - started
        assert idle_stop < 1.5, idle_stop
        assert _worker_threads(reader) == []

        # A card on the reader: nfcpy checks `terminate` at every presence check (0.1 s).
        tag.present()
        reader = NfcpyReader(tag.path)
        with running(reader) as (_, events):
            assert events.status().code == "reader_ready"
            assert events.card().uid == UID_HEX
            time.sleep(0.3)
            started = time.monotonic()
            reader.stop()
            present_stop = time.monotonic() - started
            assert events.next(0) == CardRemoved(reader.name)
        assert present_stop < 0.5, present_stop
        assert _worker_threads(reader) == []

        # A stopped reader starts again.
        with running(reader) as (_, events):
            assert events.status().code == "reader_ready"
            assert events.card().uid == UID_HEX


def test_a_missing_usb_reader_is_reported_once_and_retried_with_bounded_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    require(ctypes.util.find_library("usb-1.0") is not None,
            "libusb-1.0 (Debian libusb-1.0-0) for nfcpy's USB transport")
    caplog.set_level(logging.INFO, logger="drivers.nfcpy_reader")
    reader = NfcpyReader("usb:ffff:ffff", backoff=(0.05, 0.2))  # no such vendor:product
    with running(reader) as (_, events):
        status = events.status()
        assert (status.state, status.code) == (DeviceState.MISSING, "reader_missing")
        assert "usb:ffff:ffff" in status.detail
        events.quiet(1.2)  # still missing: retried, not reported again
        started = time.monotonic()
    assert time.monotonic() - started < 0.5  # stop() cut the backoff wait short
    delays = [float(r.getMessage().split(" in ")[1].split(" s")[0]) for r in caplog.records
              if "opening the reader again" in r.getMessage()]
    assert len(delays) >= 5, delays
    assert delays[:3] == [0.05, 0.1, 0.2] and max(delays) == 0.2


@pytest.mark.parametrize(("arg", "path"), [
    (None, "usb"), ("usb", "usb"), ("usb:054c:06c1", "usb:054c:06c1"),
    ("udp:127.0.0.1:54321", "udp:127.0.0.1:54321"), ("nfcpy:udp:127.0.0.1:54321",
                                                     "udp:127.0.0.1:54321"),
    ("tty:USB0:pn532", "tty:USB0:pn532")])
def test_open_nfcpy_takes_the_spec_after_the_kind(arg: str | None, path: str) -> None:
    reader = open_nfcpy(arg)
    assert (reader.path, reader.name) == (path, f"nfcpy:{path}")


@pytest.mark.parametrize("arg", ["", "pcsc", "nfcpy:", "usbx", "/dev/ttyUSB0"])
def test_open_nfcpy_refuses_what_nfcpy_cannot_open(arg: str) -> None:
    with pytest.raises(BadInput) as err:
        open_nfcpy(arg)
    assert err.value.code == "bad_device_spec"


def test_token_from_ndef_takes_the_first_token_record_whatever_the_case() -> None:
    other = ndef.Record("urn:nfc:ext:example.com:t", "", b"not ours")
    first = ndef.Record("urn:nfc:ext:CardPos.ORG:T", "", b"\x01first")
    second = ndef.Record(f"urn:nfc:ext:{tokens.NDEF_TYPE}", "", b"\x01second")
    message = b"".join(ndef.message_encoder([ndef.UriRecord("https://x.example/"), other,
                                             first, second]))
    assert token_from_ndef(message) == b"\x01first"
    assert token_from_ndef(ndef_message(uri="https://x.example/")) is None
    assert token_from_ndef(b"") is None
    with pytest.raises(ndef.DecodeError):
        token_from_ndef(ndef_message(b"\x01" * 40)[:-10])

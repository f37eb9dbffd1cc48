"""The PC/SC reader adapter against a real pcscd with vsmartcard's vpcd, and the emulated card.

The first group runs the reader's APDU sequence (drivers.apdu.read_card) straight against the
emulated card's applet: exact byte frames, no pcscd, fast. The rest start a private `pcscd -f`
(tests/pcscd.py: its own network and mount namespaces, so vpcd's port is reachable from
nowhere else and a system pcscd is left alone), present emulated cards to its vpcd, and check
the events `PcscReader` delivers — including pcscd being killed, restarted without the reader,
and restarted with it. Each reader runs in a spawned child process (`ReaderProcess`), because
libpcsclite picks its pcscd socket once per process and an earlier test may have picked the
system's. Every wait has a timeout.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers import apdu
from drivers.vcard import CardApplet, Carrier, Fault, parse_uid
from terminal.errors import BadInput
from terminal.ports import CardPresented, CardRemoved, DeviceEvent, DeviceState, DeviceStatus
from terminal.tokens import TokenPayload, parse_token, sign_token, to_qr_text
from tests.needs import require
from tests.pcscd import READER, READER_2, Pcscd, ReaderProcess, missing

ROOT = Path(__file__).resolve().parent.parent
UID = bytes.fromhex("04A1B2C3D4E5F6")
#: vpcd looks for a card every 0.4 s: an event comes within one poll plus the read.
EVENT_TIMEOUT = 5.0
#: Three vpcd polls: long enough to see a duplicate event if the adapter sent one per poll.
QUIET_S = 1.3


def make_token(purses: tuple[str, ...] = ("fuel",)) -> bytes:
    payload = TokenPayload(key_id="issuer-1", card_number="6280001234567890", purses=purses,
                           issued_at=1_780_000_000, expires_at=1_800_000_000)
    return sign_token(payload, Ed25519PrivateKey.generate())


# -- the read sequence against the applet (no pcscd) -------------------------------------------


def read(applet: CardApplet) -> apdu.CardData:
    def transmit(command: bytes) -> bytes:
        response = applet.respond(command)
        if response is None:
            raise apdu.CardRemovedMidRead("pulled")
        return response

    applet.reset()
    return apdu.read_card(transmit)


@pytest.mark.parametrize("carrier", list(Carrier))
def test_read_sequence_finds_the_token_wherever_the_card_keeps_it(carrier: Carrier) -> None:
    token = make_token()
    data = read(CardApplet(UID, token, carrier))
    assert data.uid == "04A1B2C3D4E5F6"
    assert data.token == token
    assert data.via == ("ndef" if carrier is Carrier.NDEF else "cardpos")


@pytest.mark.parametrize("size", [1, 127, 128, 255, 256, 257, 600, apdu.MAX_TOKEN_LEN])
@pytest.mark.parametrize("carrier", [Carrier.CARDPOS, Carrier.NDEF])
def test_tokens_longer_than_one_read_arrive_whole(size: int, carrier: Carrier) -> None:
    token = bytes(i % 251 for i in range(size))
    # max_read 15: the smallest a Type 4 tag may declare, so even short tokens take many reads
    assert read(CardApplet(UID, token, carrier, max_read=15)).token == token
    assert read(CardApplet(UID, token, carrier, max_read=256)).token == token


def test_card_without_a_token_gives_its_uid_only() -> None:
    for carrier in Carrier:
        data = read(CardApplet(bytes.fromhex("04A1B2C3"), None, carrier))
        assert (data.uid, data.token, data.via) == ("04A1B2C3", None, "none")


def test_ndef_message_without_a_cardpos_record_is_no_token() -> None:
    applet = CardApplet(UID, None, Carrier.NDEF)
    uri = apdu.encode_ndef_message([apdu.NdefRecord(0x01, b"U", b"\x04example.com")])
    applet._apps[apdu.NDEF_AID][apdu.NDEF_FILE_ID] = len(uri).to_bytes(2, "big") + uri
    assert read(applet).token is None


@pytest.mark.parametrize(("fault", "error", "words"), [
    (Fault.TRUNCATED_UID, apdu.CorruptResponse, "no status word"),
    (Fault.OVERLONG_READ, apdu.CorruptResponse, "with Le"),
    (Fault.BAD_NDEF, apdu.CorruptResponse, "past the end"),
    (Fault.PULL_MID_READ, apdu.CardRemovedMidRead, "pulled"),
])
def test_misbehaving_cards_raise_typed_errors(fault: Fault, error: type[Exception],
                                              words: str) -> None:
    carrier = Carrier.NDEF if fault is Fault.BAD_NDEF else Carrier.CARDPOS
    with pytest.raises(error) as info:
        read(CardApplet(UID, make_token(), carrier, fault))
    assert isinstance(info.value, apdu.CardReadError)
    assert words in info.value.detail
    assert info.value.code in ("card_unreadable", "card_removed_mid_read")


def test_reader_checks_every_answer() -> None:
    def answering(*responses: bytes) -> apdu.Transmit:
        it = iter(responses)
        return lambda _command: next(it)

    def refused(error: type[apdu.CardReadError], *responses: bytes) -> str:
        with pytest.raises(error) as info:
            apdu.read_card(answering(*responses))
        return info.value.detail

    ok = b"\x90\x00"
    assert refused(apdu.CorruptResponse, b"\x01\x02\x03" + ok) == "UID of 3 bytes"
    assert refused(apdu.UnsupportedCard, b"\x6d\x00") == "GET UID answered 6D00"
    assert refused(apdu.CorruptResponse, UID + ok, b"\x6f\x00") == "SELECT answered 6F00"
    # a length prefix beyond the limit, and a read that returns nothing
    assert "claims 65535 bytes" in refused(apdu.CorruptResponse,
                                           UID + ok, ok, ok, b"\xff\xff" + ok)
    assert "returned no data" in refused(apdu.CorruptResponse,
                                         UID + ok, ok, ok, b"\x00\x10" + ok, ok)
    # 6Cxx: the card names the right Le and the reader asks again once
    token = b"0123456789"
    data = apdu.read_card(answering(UID + ok, ok, ok, b"\x6c\x02", b"\x00\x0a" + ok,
                                    token + ok))
    assert data.token == token


def test_apdu_and_ndef_encodings_round_trip() -> None:
    for cmd in (apdu.get_uid(), apdu.select_aid(apdu.CARDPOS_AID), apdu.select_file(0xE104),
                apdu.read_binary(0x1234, 256), apdu.Command(0x00, 0x20, 0, 0)):
        assert apdu.Command.parse(cmd.to_bytes()) == cmd
    assert apdu.get_uid().to_bytes() == bytes.fromhex("FFCA000000")
    assert apdu.CARDPOS_AID.hex().upper() == "F063617264706F73"
    with pytest.raises(ValueError, match="extended"):
        apdu.Command.parse(bytes.fromhex("00B00000000100"))
    records = [apdu.NdefRecord(0x01, b"T", b"\x02enhi"), apdu.token_record(b"x" * 300),
               apdu.NdefRecord(0x04, b"example.com:z", b"", b"id")]
    assert apdu.parse_ndef_message(apdu.encode_ndef_message(records)) == records
    assert apdu.token_from_ndef([apdu.NdefRecord(0x04, b"CardPOS.org:T", b"t")]) == b"t"


def test_uid_text_is_checked() -> None:
    assert parse_uid("04:a1:b2:c3") == bytes.fromhex("04A1B2C3")
    for bad in ("04A1B2", "zz", "04A1B2C3D4"):
        with pytest.raises(BadInput):
            parse_uid(bad)


# -- against a real pcscd ------------------------------------------------------------------


class Events:
    """A `PcscReader` in its own process (tests/pcscd.py says why) and its events, with bounded
    waits for the tests."""

    def __init__(self, pcscd: Pcscd, reader_filter: str | None = READER, **options: Any
                 ) -> None:
        self.process = ReaderProcess(pcscd, reader_filter, **options)
        self.threads: set[str] = set()

    def next(self, timeout: float = EVENT_TIMEOUT) -> DeviceEvent:
        try:
            thread, event = self.process.get(timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None
        self.threads.add(thread)
        return event

    def until(self, match: Callable[[DeviceEvent], bool], timeout: float = EVENT_TIMEOUT
              ) -> tuple[DeviceEvent, list[DeviceEvent]]:
        """The first event that matches, and the ones before it."""
        before: list[DeviceEvent] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.next(left)
            except AssertionError:
                break
            if match(event):
                return event, before
            before.append(event)
        raise AssertionError(f"no matching event within {timeout} s; got {before}")

    def status(self, code: str, timeout: float = EVENT_TIMEOUT) -> DeviceStatus:
        event, _ = self.until(lambda e: isinstance(e, DeviceStatus) and e.code == code, timeout)
        assert isinstance(event, DeviceStatus)
        return event

    def quiet(self, seconds: float = QUIET_S) -> list[DeviceEvent]:
        """Whatever arrives within `seconds` (a test usually expects nothing)."""
        got: list[DeviceEvent] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.next(left))
            except AssertionError:
                break
        return got

    def stop(self) -> float:
        """Stop the reader; how long its stop() took. Its events all came from its worker."""
        took, alive = self.process.stop()
        assert alive == [], alive
        assert self.threads <= {"pcsc-reader"}, self.threads
        return took


@pytest.fixture(scope="module")
def daemon() -> Iterator[Pcscd]:
    why = missing()
    require(why is None, f"a real pcscd with vpcd: {why}")
    with Pcscd() as p:
        p.start()
        yield p


@pytest.fixture
def pcscd(daemon: Pcscd) -> Iterator[Pcscd]:
    """The module's pcscd, running with the vpcd reader at the start and end of each test."""
    if not daemon.running:
        daemon.start()
    yield daemon
    if not daemon.running:
        daemon.start()


@pytest.fixture
def events(pcscd: Pcscd) -> Iterator[Events]:
    """A started reader for "pcsc:Virtual PCD 00 00", past its first READY status."""
    reader = Events(pcscd, READER)
    ready = reader.next()
    assert isinstance(ready, DeviceStatus)
    assert (ready.state, ready.code, ready.name) == (DeviceState.READY, "reader_ready",
                                                    f"pcsc:{READER}")
    yield reader
    assert reader.stop() < 2.0


def test_tap_gives_one_card_event_with_uid_and_token(pcscd: Pcscd, events: Events) -> None:
    token = make_token()
    card = pcscd.card(UID, token)
    card.insert()
    event = events.next()
    assert event == CardPresented(READER, "04A1B2C3D4E5F6", token)
    assert parse_token(token)[0].card_number == "6280001234567890"
    assert events.quiet() == []  # the card stays: no event per poll
    card.remove()
    assert events.next() == CardRemoved(READER)
    assert events.quiet(0.5) == []


def test_tap_of_a_type4_tag_reads_the_token_from_its_ndef_file(pcscd: Pcscd,
                                                                events: Events) -> None:
    token = make_token(purses=tuple(f"purse_{i}" for i in range(8)))
    long_blob = bytes(range(256)) * 3  # 768 bytes: an NDEF long record, read in 7 chunks
    for payload in (token, long_blob):
        card = pcscd.card(UID, payload, carrier=Carrier.NDEF)
        card.insert()
        assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", payload)
        card.remove()
        assert events.next() == CardRemoved(READER)


def test_card_without_token_and_slow_card(pcscd: Pcscd, events: Events) -> None:
    bare = pcscd.card(bytes.fromhex("08112233"), None, carrier=Carrier.BOTH)
    bare.insert()
    assert events.next() == CardPresented(READER, "08112233", None)
    bare.remove()
    assert events.next() == CardRemoved(READER)

    token = make_token()
    slow = pcscd.card(UID, token, delay_s=0.05)  # 7 APDUs at 50 ms each
    slow.insert()
    assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", token)
    slow.remove()
    assert events.next() == CardRemoved(READER)


def test_card_pulled_away_mid_read(pcscd: Pcscd, events: Events) -> None:
    card = pcscd.card(UID, make_token(), fault=Fault.PULL_MID_READ)
    card.insert()
    status = events.next()
    assert isinstance(status, DeviceStatus)
    assert (status.state, status.code) == (DeviceState.READY, "card_removed_mid_read")
    assert READER in status.detail
    assert events.quiet() == []  # neither a CardPresented nor a CardRemoved for it
    assert not card.inserted
    # the next tap is read normally
    token = make_token()
    good = pcscd.card(UID, token)
    good.insert()
    assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", token)
    good.remove()
    assert events.next() == CardRemoved(READER)


@pytest.mark.parametrize("fault", [Fault.TRUNCATED_UID, Fault.OVERLONG_READ, Fault.BAD_NDEF])
def test_corrupt_answer_is_a_clear_status_not_a_card(pcscd: Pcscd, events: Events,
                                                     fault: Fault) -> None:
    card = pcscd.card(UID, make_token(), carrier=Carrier.NDEF if fault is Fault.BAD_NDEF
                      else Carrier.CARDPOS, fault=fault)
    card.insert()
    status = events.next()
    assert isinstance(status, DeviceStatus)
    assert (status.state, status.code) == (DeviceState.READY, "card_unreadable")
    card.remove()
    assert events.quiet(1.0) == []


def test_any_reader_spec_watches_both_vpcd_slots(pcscd: Pcscd) -> None:
    events = Events(pcscd, None)  # what open_pcsc(None) makes for the spec "pcsc"
    try:
        ready = events.status("reader_ready")
        assert (ready.name, ready.detail) == ("pcsc", f"{READER}, {READER_2}")
        token = make_token()
        first, second = pcscd.card(UID, token, slot=1), pcscd.card(bytes.fromhex("04000001"))
        first.insert()
        second.insert()
        got = {events.next(), events.next()}
        assert got == {CardPresented(READER_2, "04A1B2C3D4E5F6", token),
                       CardPresented(READER, "04000001", None)}
        first.remove()
        second.remove()
        assert {events.next(), events.next()} == {CardRemoved(READER), CardRemoved(READER_2)}
    finally:
        events.stop()


def test_reader_filter_that_matches_nothing_is_missing(pcscd: Pcscd) -> None:
    events = Events(pcscd, "ACS ACR122U")
    try:
        status = events.next()
        assert isinstance(status, DeviceStatus)
        assert (status.state, status.code) == (DeviceState.MISSING, "reader_missing")
        assert READER in status.detail  # says what it does see
    finally:
        events.stop()


def test_pcscd_killed_and_restarted(pcscd: Pcscd, events: Events) -> None:
    token = make_token()
    card = pcscd.card(UID, token)
    card.insert()
    assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", token)

    pcscd.kill()
    # the card on the reader can no longer be vouched for, then the failure
    assert events.next() == CardRemoved(READER)
    failed = events.next()
    assert isinstance(failed, DeviceStatus)
    assert (failed.state, failed.code) == (DeviceState.FAILED, "pcscd_unavailable")
    assert events.quiet(1.0) == []  # retrying quietly, not one event per attempt
    card.remove()

    pcscd.start()
    ready = events.next()
    assert isinstance(ready, DeviceStatus)
    assert (ready.state, ready.code) == (DeviceState.READY, "reader_ready")
    again = pcscd.card(UID, token)
    again.insert()
    assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", token)
    again.remove()
    assert events.next() == CardRemoved(READER)


def test_reader_vanishes_and_comes_back(pcscd: Pcscd, events: Events) -> None:
    # vpcd's reader cannot be unplugged while pcscd runs (pcscd's SIGUSR1 rescan only adds
    # USB readers), so pcscd restarts with a configuration that has no reader at all.
    pcscd.stop()
    assert events.status("pcscd_unavailable").state is DeviceState.FAILED
    pcscd.start(readers=False)
    missing_status = events.status("reader_missing")
    assert missing_status.state is DeviceState.MISSING
    assert missing_status.detail == "readers seen: none"
    pcscd.stop()
    pcscd.start()
    assert events.status("reader_ready").state is DeviceState.READY
    card = pcscd.card(UID)
    card.insert()
    assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", None)
    card.remove()
    assert events.next() == CardRemoved(READER)


def test_stop_is_prompt_idle_and_while_pcscd_is_down(pcscd: Pcscd) -> None:
    events = Events(pcscd, READER, wait_s=30.0)  # only SCardCancel can end its wait early
    events.status("reader_ready")
    assert events.stop() < 0.5

    pcscd.stop()
    events = Events(pcscd, READER, backoff_s=(30.0, 30.0))  # waiting out a long backoff
    events.status("pcscd_unavailable")
    assert events.stop() < 0.5


def test_a_failing_sink_does_not_kill_the_worker(pcscd: Pcscd) -> None:
    events = Events(pcscd, READER, fail_first=True)
    try:
        first = events.next()  # queued, then the sink raised
        assert isinstance(first, DeviceStatus) and first.code == "reader_ready"
        card = pcscd.card(UID)
        card.insert()
        assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", None)
        card.remove()
        assert events.next() == CardRemoved(READER)
    finally:
        events.stop()


def test_emulate_card_command_presents_until_ctrl_c(pcscd: Pcscd, events: Events) -> None:
    """`emulate()` (behind `cardpos devices emulate-card`) as a person runs it: a process that
    connects to vpcd on 127.0.0.1:35963 (here inside pcscd's namespace) until Ctrl-C."""
    token = make_token()
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO)\n"
            "from drivers.vcard import emulate\n"
            "emulate(sys.argv[1], sys.argv[2])\n")
    proc = subprocess.Popen(
        pcscd.in_netns([sys.executable, "-c", code, "04A1B2C3D4E5F6", to_qr_text(token)]),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert events.next() == CardPresented(READER, "04A1B2C3D4E5F6", token)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert events.next() == CardRemoved(READER)
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=5)
    assert b"inserted" in err and b"interrupted" in err, err


#: Another PC/SC client that takes the card for itself until its stdin closes.
HOLD_EXCLUSIVELY = """
import sys, time
from smartcard import scard
hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
deadline = time.monotonic() + 5
while True:  # vpcd reports the card at its next poll
    hresult, hcard, _ = scard.SCardConnect(ctx, sys.argv[1], scard.SCARD_SHARE_EXCLUSIVE,
                                           scard.SCARD_PROTOCOL_T1)
    if hresult == 0 or time.monotonic() > deadline:
        break
    time.sleep(0.05)
print("held" if hresult == 0 else scard.SCardGetErrorMessage(hresult), flush=True)
sys.stdin.read()
scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)  # let go, as a program that ends well
scard.SCardReleaseContext(ctx)
"""


def test_card_held_exclusively_by_another_program_is_reader_busy(pcscd: Pcscd) -> None:
    card = pcscd.card(UID)
    card.insert()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_EXCLUSIVELY, READER], env=pcscd.env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        events = Events(pcscd, READER)
        try:
            events.status("reader_ready")
            busy = events.next()
            assert isinstance(busy, DeviceStatus)
            assert (busy.state, busy.code) == (DeviceState.READY, "reader_busy")
        finally:
            events.stop()
    finally:
        holder.communicate(input="", timeout=5)
        card.remove()


def test_devices_watch_command_prints_the_tap(pcscd: Pcscd) -> None:
    """`cardpos devices watch --reader SPEC --once --json` through the registry to this adapter."""
    token = make_token()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from cardpos.cli import main; sys.exit(main())",
         "devices", "watch", "--reader", f"pcsc:{READER}", "--once", "--json", "--timeout", "20"],
        cwd=ROOT, env=pcscd.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    card = pcscd.card(UID, token)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # the reader's status comes first
        assert (first["kind"], first["code"]) == ("status", "reader_ready")
        card.insert()
        event = json.loads(proc.stdout.readline())
        if event.get("code") == "card_unreadable":  # slow to answer on a loaded machine:
            event = json.loads(proc.stdout.readline())  # the hint, then the card all the same
        assert event == {"kind": "card", "reader": READER, "uid": "04A1B2C3D4E5F6",
                         "token": to_qr_text(token)}
        assert proc.wait(timeout=10) == 0
    finally:
        card.remove()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def test_tap_latency_benchmark_runs(pcscd: Pcscd) -> None:
    """bench/tap_latency.py end to end at 2 taps per card (its own private pcscd)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "tap_latency.py"), "--taps", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = proc.stdout[proc.stdout.index("== summary"):]
    for line in ("no token", "token, cardpos file", "token, Type 4 NDEF", "pcsc-lite version",
                 "command: "):
        assert line in summary, line

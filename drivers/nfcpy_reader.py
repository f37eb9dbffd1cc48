"""Card reader adapter for nfcpy: a USB contactless frontend (Sony RC-S380, ACR122U, PN533
boards, ...) or nfcpy's ``udp:`` emulated link, as the `terminal.ports.Device` port.

Spec strings (configuration): ``nfcpy:usb``, ``nfcpy:usb:054c:06c1`` (vendor:product),
``nfcpy:usb:001:023`` (bus:device), ``nfcpy:tty:USB0:pn532``, ``nfcpy:udp:127.0.0.1:54321``.

Threads: `start` runs nfcpy's blocking `ContactlessFrontend.connect` loop on the adapter's own
worker thread; every event goes to the sink on that thread. nfcpy calls back on the same
thread: *on-discover* before it activates a tag, *on-connect* once the tag is activated (we
read the UID and the NDEF token here) and *on-release* when the tag has gone. `connect`
returns after each tag, so one tap gives one `CardPresented` and one `CardRemoved`, however
long the card rests on the reader. `stop` sets an event that nfcpy's *terminate* callback
reads between polls and while it watches a tag; over USB a poll takes tens of milliseconds,
over ``udp:`` up to 1 s (nfcpy's udp driver waits that long for an answer to a poll).

Failures never end the thread: a reader that is missing, busy or not permitted is reported as
`DeviceStatus` MISSING and opened again with a bounded exponential backoff; a reader that
fails while in use is reported FAILED and reopened the same way. Problems with one card — it
left mid-read, or its data are corrupt — are hints about the card (state READY: the reader
itself is fine), and no `CardPresented` is sent for that tap, so nothing half-read reaches the
core. Codes: reader_ready, reader_missing, reader_busy, reader_access_denied, reader_failed,
card_removed_mid_read, card_unreadable.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from typing import Any

import ndef  # type: ignore[import-untyped]
import nfc  # type: ignore[import-untyped]
import nfc.tag.tt2  # type: ignore[import-untyped]
import nfc.tag.tt4  # type: ignore[import-untyped]

from terminal.errors import BadInput
from terminal.ports import (
    CardPresented,
    CardRemoved,
    DeviceEvent,
    DeviceState,
    DeviceStatus,
    EventSink,
)
from terminal.tokens import NDEF_TYPE

log = logging.getLogger(__name__)

SPEC_PREFIX = "nfcpy:"
#: The device path kinds nfcpy knows (`nfc.ContactlessFrontend.open`).
NFCPY_BUSES = ("usb", "tty", "com", "udp")
#: The NDEF record type of the token as ndeflib names it (compared case-insensitively).
TOKEN_RECORD_TYPE = f"urn:nfc:ext:{NDEF_TYPE}".lower()
#: Technologies polled: Type A (Type 2 and 4A tags), Type B (4B) and FeliCa (Type 3, UID only).
USB_TARGETS = ("106A", "106B", "212F")
#: Over udp: Type A only, because nfcpy's udp driver waits 1 s for each silent technology.
UDP_TARGETS = ("106A",)
#: A tag whose data cannot be read is reported once, not at every poll while it lies there.
UNREADABLE_REPEAT_S = 3.0


def open_nfcpy(arg: str | None) -> NfcpyReader:
    """The reader for the text after ``nfcpy:`` in a reader spec: "usb" (also for None, a bare
    ``nfcpy``), "usb:054c:06c1", "udp:127.0.0.1:54321", ... A full ``nfcpy:...`` spec is
    accepted too. Raises `BadInput` ("bad_device_spec") for anything that is not an nfcpy
    device path; whether the device is there is found out (and reported) by the worker."""
    path = "usb" if arg is None else arg.strip()
    if path.startswith(SPEC_PREFIX):
        path = path[len(SPEC_PREFIX):]
    if path.split(":")[0] not in NFCPY_BUSES:
        raise BadInput("bad_device_spec", what="reader", spec=f"{SPEC_PREFIX}{path}",
                       allowed=", ".join(f"{SPEC_PREFIX}{bus}" for bus in NFCPY_BUSES))
    return NfcpyReader(path)


def token_from_ndef(octets: bytes) -> bytes | None:
    """The payload of the first cardpos token record in an NDEF message, or None if it has
    none. Raises `ndef.DecodeError` for a message that is not valid NDEF."""
    for record in ndef.message_decoder(octets, errors="relax"):
        if str(record.type).lower() == TOKEN_RECORD_TYPE:
            return bytes(record.data)
    return None


class _Backoff:
    """Delays between attempts to open a reader: doubling from `low` up to `high` seconds."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.high, self.low * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class NfcpyReader:
    """The nfcpy card reader at nfcpy device `path` ("usb", "usb:054c:06c1",
    "udp:127.0.0.1:54321", ...). Events name it `name` (default ``nfcpy:<path>``).

    `targets` are the technologies polled (default: `UDP_TARGETS` over udp, else
    `USB_TARGETS`); `poll_gap` is the pause between two polls of an empty field; `backoff` the
    first and the longest wait before the reader is opened again; `stop_timeout` how long
    `stop` waits for the worker.
    """

    def __init__(self, path: str, *, name: str | None = None,
                 targets: tuple[str, ...] | None = None, poll_gap: float = 0.1,
                 backoff: tuple[float, float] = (0.5, 8.0), stop_timeout: float = 5.0) -> None:
        self.path = path
        self.name = name or f"{SPEC_PREFIX}{path}"
        self.targets = targets or (UDP_TARGETS if path.startswith("udp") else USB_TARGETS)
        self.poll_gap = poll_gap
        self.stop_timeout = stop_timeout
        self._backoff = _Backoff(*backoff)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: EventSink | None = None
        self._status_now: tuple[DeviceState, str] | None = None
        # Where the worker is in a tap; tells a card's fault from the reader's (worker only).
        self._phase = "idle"  # idle -> activating -> reading -> present -> idle
        self._discovered_uid = ""
        self._unreadable: tuple[str, float] = ("", 0.0)

    # --- the port (caller's thread) ----------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Start the worker thread; returns at once. Events go to `sink` on the worker."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self.name} is already started")
        self._sink = sink
        self._stop.clear()
        self._status_now = None
        self._thread = threading.Thread(target=self._run, name=f"reader {self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to stop and wait for it, at most `stop_timeout` seconds."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(self.stop_timeout)
        if thread.is_alive():
            log.error("%s: worker did not stop within %.1f s; left behind as a daemon thread",
                      self.name, self.stop_timeout)

    # --- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        log.info("%s: worker started", self.name)
        while not self._stop.is_set():
            clf = self._open()
            if clf is not None:
                try:
                    self._serve(clf)
                finally:
                    clf.close()
            if not self._stop.is_set():
                delay = self._backoff.next_delay()
                log.info("%s: opening the reader again in %.2f s", self.name, delay)
                self._stop.wait(delay)
        log.info("%s: worker stopped", self.name)

    def _open(self) -> Any:
        """An open `nfc.ContactlessFrontend`, or None after reporting why there is none."""
        try:
            clf = nfc.ContactlessFrontend(self.path)
        except OSError as exc:
            detail = f"{self.path}: {exc}"
            if exc.errno == errno.EBUSY:
                self._status(DeviceState.MISSING, code="reader_busy", detail=detail)
            elif exc.errno == errno.EACCES:
                self._status(DeviceState.MISSING, code="reader_access_denied", detail=detail)
            else:  # ENODEV, or a host name that does not resolve
                self._status(DeviceState.MISSING, code="reader_missing", detail=detail)
            return None
        except Exception as exc:
            log.exception("%s: nfcpy failed to open the reader", self.name)
            self._status(DeviceState.FAILED, code="reader_failed", detail=repr(exc))
            return None
        self._status(DeviceState.READY, code="reader_ready", detail=str(clf.device))
        return clf

    def _serve(self, clf: Any) -> None:
        """Run nfcpy's connect loop, one tag per call, until stopped or the reader fails."""
        options = {
            "targets": list(self.targets),
            "iterations": 1,  # return to `terminate` after each poll
            "on-discover": self._on_discover,
            "on-connect": self._on_connect,
            "on-release": self._on_release,
        }
        while not self._stop.is_set():
            self._phase = "idle"
            try:
                result = clf.connect(rdwr=options, terminate=self._terminate)
            except Exception as exc:
                if self._phase == "activating":  # the tag answered nonsense during activation
                    log.exception("%s: tag %s failed to activate", self.name,
                                  self._discovered_uid)
                    self._card_unreadable(self._discovered_uid, repr(exc))
                    self._stop.wait(self.poll_gap)
                    continue
                log.exception("%s: reader failed", self.name)
                self._end_presence()
                self._status(DeviceState.FAILED, code="reader_failed", detail=repr(exc))
                return
            if result is False and not self._stop.is_set():
                # nfcpy logs the I/O error and returns False: the reader is gone or broken.
                self._end_presence()
                self._status(DeviceState.FAILED, code="reader_failed",
                             detail=f"{self.path}: lost the connection to the reader")
                return
            if result:
                self._backoff.reset()  # a tap went through: the reader works

    def _terminate(self) -> bool:
        """nfcpy asks between polls and while it watches a tag: pause between empty polls."""
        if self._phase == "present":
            return self._stop.is_set()
        self._phase = "idle"  # also after an activation that came to nothing (tag gone)
        return self._stop.wait(self.poll_gap)

    def _on_discover(self, target: Any) -> bool:
        # As nfcpy's default: leave peer-to-peer devices (phones in NFC-DEP mode) alone.
        if target.sel_res and target.sel_res[0] & 0x40:
            return False
        if target.sensf_res and target.sensf_res[1:3] == b"\x01\xfe":
            return False
        uid = (target.sdd_res or (target.sensb_res and target.sensb_res[1:5])
               or (target.sensf_res and target.sensf_res[1:9]) or b"")
        self._discovered_uid = bytes(uid).hex().upper()
        self._phase = "activating"
        return True

    def _on_connect(self, tag: Any) -> bool:
        """Read the tag; True keeps nfcpy watching it until it leaves (then on-release)."""
        self._phase = "reading"
        uid = bytes(tag.identifier).hex().upper()
        try:
            token, complete = self._read_token(tag)
        except Exception as exc:  # a corrupt NDEF message, or nfcpy tripping over the tag
            log.exception("%s: could not read tag %s", self.name, uid)
            self._card_unreadable(uid, repr(exc))
            return False
        if not complete:
            log.warning("%s: tag %s left the field mid-read", self.name, uid)
            self._status(DeviceState.READY, code="card_removed_mid_read", detail=uid,
                         always=True)
            return False
        self._phase = "present"
        log.info("%s: tag %s (%s) presented, token: %s", self.name, uid, tag.type,
                 "none" if token is None else f"{len(token)} bytes")
        self._emit(CardPresented(self.name, uid, token))
        return True

    def _on_release(self, tag: Any) -> bool:
        log.info("%s: tag %s removed", self.name, bytes(tag.identifier).hex().upper())
        self._end_presence()
        return True  # makes connect() return: the next tap starts a fresh connect

    def _end_presence(self) -> None:
        """Close a tap: every CardPresented is followed by one CardRemoved, also when the
        reader fails while the card lies on it."""
        if self._phase == "present":
            self._emit(CardRemoved(self.name))
        self._phase = "idle"

    def _read_token(self, tag: Any) -> tuple[bytes | None, bool]:
        """(token or None, whether the read completed). Type 2 and Type 4 tags carry NDEF;
        other types (Type 1, Type 3 / FeliCa) are identified by their UID alone."""
        if not isinstance(tag, nfc.tag.tt2.Type2Tag | nfc.tag.tt4.Type4Tag):
            return None, True
        started = time.monotonic()
        try:
            message = tag.ndef  # nfcpy turns most read errors into None, like "no NDEF"
        except (nfc.clf.CommunicationError, nfc.tag.TagCommandError):
            if not tag.is_present:
                return None, False
            raise  # present but answering nonsense: unreadable
        if message is None:
            if not tag.is_present:
                return None, False
            log.debug("%s: tag carries no NDEF message", self.name)
            return None, True
        octets = bytes(message.octets)
        log.debug("%s: read %d NDEF bytes in %.1f ms", self.name, len(octets),
                  (time.monotonic() - started) * 1000)
        return token_from_ndef(octets), True

    # --- events ----------------------------------------------------------------------------------

    def _card_unreadable(self, uid: str, detail: str) -> None:
        last_uid, last_at = self._unreadable
        now = time.monotonic()
        self._unreadable = (uid, now)
        if uid == last_uid and now - last_at < UNREADABLE_REPEAT_S:
            return  # the same bad tag still lying on the reader
        self._status(DeviceState.READY, code="card_unreadable", detail=f"{uid}: {detail}",
                     always=True)

    def _status(self, state: DeviceState, *, code: str, detail: str = "",
                always: bool = False) -> None:
        """Report a state change (repeats of the same state and code are only logged)."""
        if not always and self._status_now == (state, code):
            log.debug("%s: still %s (%s): %s", self.name, state.value, code, detail)
            return
        if not always:
            self._status_now = (state, code)
        level = logging.INFO if state is DeviceState.READY and not always else logging.WARNING
        log.log(level, "%s: %s (%s) %s", self.name, state.value, code, detail)
        self._emit(DeviceStatus("reader", self.name, state, code, detail))

    def _emit(self, event: DeviceEvent) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            sink(event)
        except Exception:  # a consumer's bug must not kill the reader
            log.exception("%s: the event sink raised on %r", self.name, event)

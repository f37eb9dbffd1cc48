"""PC/SC card readers through pyscard and pcscd: one worker thread that sees taps and readers.

`open_pcsc(None)` watches every reader pcscd knows ("pcsc"); `open_pcsc("Virtual PCD 00 00")`
only those whose name starts with that text ("pcsc:Virtual PCD 00 00"). The adapter implements
`terminal.ports.Device`:

- `start(sink)` starts ONE worker thread ("pcsc-reader"); every event goes to `sink` on it.
- The thread blocks in `SCardGetStatusChange` (pyscard's low-level `smartcard.scard`, which
  releases the GIL) on the matching readers plus pcsc-lite's "\\\\?PnP?\\Notification"
  pseudo-reader, so a reader plugged in or out wakes it; without PnP support it re-lists the
  readers every `wait_s`. `stop()` cancels the wait with `SCardCancel` and joins the thread.
- A card that arrives is read at once (drivers.apdu.read_card: UID, then the token from the
  cardpos application or the Type 4 NDEF file): one `CardPresented` per tap, then one
  `CardRemoved` when it leaves. pcsc-lite counts card events in the upper 16 bits of a reader's
  state, so a card taken away and tapped again between two looks is still two taps.
- Failures are `DeviceStatus` events, never a dead thread: no matching reader is MISSING
  "reader_missing"; pcscd not running or gone is FAILED "pcscd_unavailable", and the thread
  re-establishes its context with a bounded backoff until pcscd is back (then READY
  "reader_ready"). A tap that yields no card event is a READY status with the reason:
  "card_removed_mid_read", "card_unreadable" (corrupt or refused answer, card mute),
  "card_unsupported" (no UID), "reader_busy" (another program holds the card exclusively).
  pcscd refusing this user (polkit) is FAILED "reader_access_denied"; any other PC/SC failure
  is FAILED "reader_failed", and the watch starts over.

Why no pyscard monitors (CardMonitor/ReaderMonitor): they start threads of their own per
observer and poll; one thread of ours with one blocking call is simpler to stop and to reason
about. Findings about pcscd and vpcd, and the latency figures: docs/pcsc.md.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from smartcard import scard  # type: ignore[import-untyped]

from drivers import apdu
from drivers.apdu import CardReadError, CardRemovedMidRead
from terminal.ports import (
    CardPresented,
    CardRemoved,
    DeviceEvent,
    DeviceState,
    DeviceStatus,
    EventSink,
)

log = logging.getLogger(__name__)

PNP_READER = "\\\\?PnP?\\Notification"
DEVICE = "reader"

#: The pcscd connection is gone: re-establish the context (after a backoff).
_SERVICE_GONE = frozenset({scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED,
                           scard.SCARD_F_COMM_ERROR, scard.SCARD_E_INVALID_HANDLE})
#: The card is certainly gone.
_CARD_GONE = frozenset({scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD,
                        scard.SCARD_W_RESET_CARD})
#: The reader went away between listing it and using it: list again.
_READER_GONE = frozenset({scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE})
_CHANGED = scard.SCARD_STATE_CHANGED
_UNUSABLE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE


class PcscError(Exception):
    """A PC/SC call failed; `hresult` is its code."""

    def __init__(self, call: str, hresult: int) -> None:
        self.hresult = hresult
        super().__init__(f"{call}: {scard.SCardGetErrorMessage(hresult)} ({hresult:#010x})")


#: Reads of one presentation before a failure is shown (`_read_again_if_transient`).
READ_ATTEMPTS = 3


class ServiceLost(PcscError):
    """pcscd is not running, or our connection to it broke."""


class ReaderBusy(CardReadError):
    """Another program has the reader (or the card on it) for itself."""

    code = "reader_busy"


class _TransientReadError(CardReadError):
    """The card is still there but the exchange failed (weak coupling, a busy service): worth
    reading again before telling the cashier."""


class _LinkBroken(Exception):
    """An exchange with the card failed without saying why (a transmit error, or an empty
    answer: vpcd's answer when the card's connection closes mid-command)."""


def _error(call: str, hresult: int) -> PcscError:
    return ServiceLost(call, hresult) if hresult in _SERVICE_GONE else PcscError(call, hresult)


def _check(call: str, hresult: int) -> None:
    if hresult != scard.SCARD_S_SUCCESS:
        raise _error(call, hresult)


def _probe_pcscd() -> int:
    """The result of listing readers on a fresh context: how pcscd answers right now."""
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return int(hresult)
    try:
        hresult, _names = scard.SCardListReaders(ctx, [])
    finally:
        scard.SCardReleaseContext(ctx)
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return int(scard.SCARD_S_SUCCESS)
    return int(hresult)


@dataclass
class _Slot:
    """What the worker knows about one reader."""

    state: int = scard.SCARD_STATE_UNAWARE  # last event state, passed back as "current"
    present: bool = False
    events: int = -1  # pcsc-lite's card event counter (upper 16 bits of the state)
    shown: bool = False  # a CardPresented went out for the card on it now


@dataclass
class _Backoff:
    """Delays for retries: first, doubled each time, at most limit; reset on success."""

    first: float
    limit: float
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.limit)
        return delay

    def reset(self) -> None:
        self._next = self.first


class PcscReader:
    """The PC/SC reader(s) whose name starts with `reader_filter` (all if None).

    `wait_s` bounds each blocking wait (the re-list interval without PnP); `backoff_s` is the
    (first, longest) delay between attempts to reach pcscd; `removal_grace_s` is how long a
    failed exchange waits to see whether the card left (vpcd notices within 0.4 s, a real
    reader at once); `stop_timeout_s` bounds `stop()`.
    """

    def __init__(self, reader_filter: str | None = None, *, wait_s: float = 1.0,
                 backoff_s: tuple[float, float] = (0.1, 2.0), removal_grace_s: float = 1.0,
                 stop_timeout_s: float = 3.0) -> None:
        self.reader_filter = reader_filter or None
        self.name = "pcsc" if self.reader_filter is None else f"pcsc:{self.reader_filter}"
        self.wait_s = wait_s
        self.removal_grace_s = removal_grace_s
        self.stop_timeout_s = stop_timeout_s
        self._backoff = _Backoff(*backoff_s)
        self._sink: EventSink | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ctx_lock = threading.Lock()
        self._ctx: int | None = None
        self._status: tuple[DeviceState, str] | None = None

    # -- the port ----------------------------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Start the worker thread; returns at once. Events go to `sink` on that thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self.name} is already started (or still stopping)")
        self._sink = sink
        self._stop.clear()
        self._status = None
        self._thread = threading.Thread(target=self._run, name="pcsc-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker: cancel its wait, join it (at most `stop_timeout_s`). Called from
        any thread but the worker's."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        deadline = time.monotonic() + self.stop_timeout_s
        # A cancel that lands between two waits is lost, so cancel until the thread has gone.
        while thread.is_alive() and time.monotonic() < deadline:
            self._cancel()
            thread.join(0.05)
        if thread.is_alive():
            # Only a card that never answers can hold the thread (pcscd has no transmit
            # timeout for vpcd). It ends when the exchange does; until then start() refuses
            # and stop() may be called again.
            log.warning("%s: worker still busy after %.1f s (a card not answering?)",
                        self.name, self.stop_timeout_s)
            return
        self._thread = None

    def _cancel(self) -> None:
        with self._ctx_lock:
            if self._ctx is None:
                return
            hresult = scard.SCardCancel(self._ctx)
        if hresult != scard.SCARD_S_SUCCESS:
            log.debug("SCardCancel: %s", scard.SCardGetErrorMessage(hresult))

    # -- worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        log.info("%s: worker started", self.name)
        while not self._stop.is_set():
            try:
                ctx = self._establish()
                try:
                    self._watch(ctx)
                finally:
                    self._release()
            except PcscError as exc:
                self._set_status(DeviceState.FAILED, self._diagnose(exc), str(exc))
                self._stop.wait(self._backoff.next())
            except Exception as exc:  # never a dead thread: report, back off, start over
                log.exception("%s: unexpected failure, restarting the watch", self.name)
                self._set_status(DeviceState.FAILED, "reader_failed", repr(exc))
                self._stop.wait(self._backoff.next())
        log.info("%s: worker stopped", self.name)

    def _diagnose(self, exc: PcscError) -> str:
        """The hint code for a PC/SC failure of the watch.

        pcsc-lite does not always say "no service" when pcscd dies under a call (seen: "Access
        denied", 0x8010006A, from SCardListReaders right after a SIGKILL), and "Access denied"
        is also pcscd's answer when polkit refuses this user. So ask pcscd afresh."""
        probe = exc.hresult if isinstance(exc, ServiceLost) else _probe_pcscd()
        if probe in _SERVICE_GONE:
            log.warning("%s: pcscd unavailable: %s", self.name, exc)
            return "pcscd_unavailable"
        if probe == scard.SCARD_W_SECURITY_VIOLATION:
            log.warning("%s: pcscd refuses access (polkit?): %s", self.name, exc)
            return "reader_access_denied"
        log.warning("%s: PC/SC failure, starting over: %s", self.name, exc)
        return "reader_failed"

    def _establish(self) -> int:
        hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise ServiceLost("SCardEstablishContext", hresult)
        with self._ctx_lock:
            self._ctx = ctx
        self._backoff.reset()
        return int(ctx)

    def _release(self) -> None:
        with self._ctx_lock:
            ctx, self._ctx = self._ctx, None
        if ctx is not None:
            hresult = scard.SCardReleaseContext(ctx)
            if hresult != scard.SCARD_S_SUCCESS:
                log.debug("SCardReleaseContext: %s", scard.SCardGetErrorMessage(hresult))

    def _pnp_supported(self, ctx: int) -> bool:
        hresult, states = scard.SCardGetStatusChange(
            ctx, 0, [(PNP_READER, scard.SCARD_STATE_UNAWARE)])
        if hresult not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            _check("SCardGetStatusChange(PnP)", hresult)
            return False
        return not states[0][1] & scard.SCARD_STATE_UNKNOWN

    def _list(self, ctx: int) -> tuple[list[str], list[str]]:
        """(matching readers, all readers)."""
        hresult, names = scard.SCardListReaders(ctx, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return [], []
        _check("SCardListReaders", hresult)
        names = [str(n) for n in names]
        wanted = [n for n in names if self.reader_filter is None
                  or n.startswith(self.reader_filter)]
        return wanted, names

    def _watch(self, ctx: int) -> None:
        """Wait for reader and card changes until stopped; ServiceLost when pcscd goes."""
        slots: dict[str, _Slot] = {}
        try:
            self._watch_slots(ctx, slots)
        finally:
            # Lost pcscd (or stopping): whatever card was on a reader, we cannot vouch for it
            # any more, so the UI must not keep showing it.
            for reader, slot in slots.items():
                if slot.shown:
                    self._emit(CardRemoved(reader))

    def _watch_slots(self, ctx: int, slots: dict[str, _Slot]) -> None:
        pnp = self._pnp_supported(ctx)
        pnp_state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            wanted, everything = self._list(ctx)
            for gone in [n for n in slots if n not in wanted]:
                if slots.pop(gone).shown:
                    self._emit(CardRemoved(gone))
                log.info("%s: reader %r went away", self.name, gone)
            for new in wanted:
                if new not in slots:
                    slots[new] = _Slot()
                    log.info("%s: reader %r is here", self.name, new)
            if wanted:
                self._set_status(DeviceState.READY, "reader_ready", ", ".join(wanted))
            else:
                seen = ", ".join(everything) or "none"
                self._set_status(DeviceState.MISSING, "reader_missing", f"readers seen: {seen}")
            if not wanted and not pnp:
                self._stop.wait(self.wait_s)
                continue
            query = [(n, s.state) for n, s in slots.items()]
            if pnp:
                query.append((PNP_READER, pnp_state))
            hresult, states = scard.SCardGetStatusChange(ctx, int(self.wait_s * 1000), query)
            if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hresult in _READER_GONE:
                continue  # list again
            _check("SCardGetStatusChange", hresult)
            for reader, event, _atr in states:
                if reader == PNP_READER:
                    pnp_state = event & ~_CHANGED
                elif event & _CHANGED and reader in slots:
                    self._on_change(ctx, reader, slots[reader], event)
                elif reader in slots:
                    slots[reader].state = event & ~_CHANGED

    def _on_change(self, ctx: int, reader: str, slot: _Slot, event: int) -> None:
        present = bool(event & scard.SCARD_STATE_PRESENT) and not event & _UNUSABLE
        events = event >> 16
        retapped = slot.present and present and slot.events not in (-1, events)
        if slot.shown and (not present or retapped):
            slot.shown = False
            self._emit(CardRemoved(reader))
        slot.state = event & ~_CHANGED
        slot.events = events
        was_present, slot.present = slot.present, present
        if present and (not was_present or retapped):
            if event & scard.SCARD_STATE_MUTE:
                settled = self._wait_for_answer(ctx, reader, slot)
                if settled == "mute":
                    self._card_status("card_unreadable", reader, "card does not answer (mute)")
                    # Not read yet: if it answers later (a slow card, a busy machine), the
                    # change that clears MUTE reads it, without a second tap.
                    slot.present = False
                if settled != "answered":
                    return
            slot.shown = self._tap(ctx, reader, slot)

    def _tap(self, ctx: int, reader: str, slot: _Slot) -> bool:
        """Read the card on `reader`; True if a CardPresented went out."""
        started = time.perf_counter()
        try:
            data = self._read_again_if_transient(ctx, reader, slot)
        except CardReadError as err:
            log.warning("%s: tap on %r gave no card event: %s (%s)", self.name, reader,
                        err.code, err.detail)
            self._card_status(err.code, reader, err.detail)
            return False
        log.info("%s: card %s on %r, token %s (%.1f ms)", self.name, data.uid, reader,
                 f"{len(data.token)} bytes via {data.via}" if data.token else "none",
                 (time.perf_counter() - started) * 1000)
        self._emit(CardPresented(reader, data.uid, data.token))
        return True

    def _read_again_if_transient(self, ctx: int, reader: str, slot: _Slot) -> apdu.CardData:
        """`_read`, tried up to READ_ATTEMPTS times while the card stays but the exchange
        fails: one bad exchange should not cost the customer a second tap."""
        for attempt in range(1, READ_ATTEMPTS):
            try:
                return self._read(ctx, reader, slot)
            except _TransientReadError as err:
                if self._stop.is_set():
                    raise
                log.info("%s: read on %r failed (%s), reading again", self.name, reader,
                         err.detail)
                time.sleep(0.05 * attempt)
        return self._read(ctx, reader, slot)

    def _read(self, ctx: int, reader: str, slot: _Slot) -> apdu.CardData:
        hresult, hcard, protocol = scard.SCardConnect(
            ctx, reader, scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if hresult in _CARD_GONE or hresult in _READER_GONE:
            raise CardRemovedMidRead(f"card left before it could be read ({reader})")
        if hresult == scard.SCARD_E_SHARING_VIOLATION:
            raise ReaderBusy(f"another program holds the card exclusively ({reader})")
        if hresult in _SERVICE_GONE:
            raise ServiceLost("SCardConnect", hresult)
        if hresult != scard.SCARD_S_SUCCESS:  # unresponsive, unpowered, protocol mismatch...
            raise _TransientReadError(
                f"cannot connect to the card: {PcscError('SCardConnect', hresult)}")

        def transmit(command: bytes) -> bytes:
            hresult, response = scard.SCardTransmit(hcard, protocol, list(command))
            what = f"{command[:2].hex().upper()} command"
            if hresult in _CARD_GONE:
                raise CardRemovedMidRead(f"card left during the {what}")
            if hresult in _SERVICE_GONE:
                raise ServiceLost("SCardTransmit", hresult)
            if hresult != scard.SCARD_S_SUCCESS:
                raise _LinkBroken(f"{what}: {PcscError('SCardTransmit', hresult)}")
            if not response:
                raise _LinkBroken(f"{what}: empty answer")
            return bytes(response)

        try:
            return apdu.read_card(transmit)
        except _LinkBroken as exc:
            link_error = exc
        finally:
            hresult = scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
            if hresult not in (scard.SCARD_S_SUCCESS, *_CARD_GONE):
                log.debug("SCardDisconnect: %s", scard.SCardGetErrorMessage(hresult))
        # The exchange broke without saying why: the usual cause is a card pulled away, which
        # pcscd reports a moment later (vpcd: at its next 0.4 s presence poll).
        if self._card_left(ctx, reader, slot):
            raise CardRemovedMidRead(f"card left during the read ({link_error})")
        raise _TransientReadError(f"exchange failed, card still there: {link_error}")

    def _wait_for_answer(self, ctx: int, reader: str, slot: _Slot) -> str:
        """A card just put down can be mute for a moment while the reader powers it and waits
        for its ATR (vpcd's card answers between its presence polls). Wait up to
        `removal_grace_s` for it: "answered", "gone" (taken away meanwhile) or "mute"."""
        deadline = time.monotonic() + self.removal_grace_s
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            hresult, states = scard.SCardGetStatusChange(ctx, int(left * 1000) + 1,
                                                         [(reader, slot.state)])
            if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                break
            if hresult in _READER_GONE:
                return "gone"
            _check("SCardGetStatusChange", hresult)
            event = states[0][1]
            slot.state, slot.events = event & ~_CHANGED, event >> 16
            if not event & scard.SCARD_STATE_PRESENT:
                slot.present = False
                return "gone"
            if not event & scard.SCARD_STATE_MUTE:
                return "answered"
        return "mute"

    def _card_left(self, ctx: int, reader: str, slot: _Slot) -> bool:
        """Whether the card on `reader` goes away within `removal_grace_s`."""
        deadline = time.monotonic() + self.removal_grace_s
        current = slot.state
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            hresult, states = scard.SCardGetStatusChange(ctx, int(left * 1000) + 1,
                                                         [(reader, current)])
            if hresult != scard.SCARD_S_SUCCESS:
                if hresult in _READER_GONE:
                    return True
                if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                    return False
                _check("SCardGetStatusChange", hresult)
            event = states[0][1]
            if not event & scard.SCARD_STATE_PRESENT or (event >> 16) != slot.events:
                return True
            current = event & ~_CHANGED
        return False

    # -- events ------------------------------------------------------------------------------

    def _set_status(self, state: DeviceState, code: str, detail: str) -> None:
        """Report the device's state when it changes (not on every loop)."""
        if self._status == (state, code):
            return
        self._status = (state, code)
        log.info("%s: %s (%s) %s", self.name, state.value, code, detail)
        self._emit(DeviceStatus(DEVICE, self.name, state, code, detail))

    def _card_status(self, code: str, reader: str, detail: str) -> None:
        self._emit(DeviceStatus(DEVICE, self.name, DeviceState.READY, code,
                                f"{reader}: {detail}"))

    def _emit(self, event: DeviceEvent) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            sink(event)
        except Exception:  # a failing consumer must not kill the reader thread
            log.exception("%s: event sink failed on %r", self.name, event)


def open_pcsc(arg: str | None) -> PcscReader:
    """The adapter for spec "pcsc" (arg None: any reader) or "pcsc:NAME" (name prefix)."""
    return PcscReader(arg.strip() if arg else None)

"""Ports: what the core expects of devices. Adapters in drivers/ implement them.

Every device runs its blocking loop on its own worker thread, started by `start(sink)` and
stopped (joined, in bounded time) by `stop()`. It reports what happens as plain event objects
passed to `sink` — called on the device's own thread, so a UI hands them to its GUI thread (a
Qt signal) and never waits for a device. A device never dies silently: a failure is reported as
a `DeviceStatus` event, and the adapter keeps trying to recover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from terminal.receipt import Receipt, Slip


@dataclass(frozen=True)
class CardPresented:
    """A card was tapped or inserted: its UID (upper-case hex) and, if it carries one, the
    signed token read from it (raw bytes, docs/token-format.md)."""

    reader: str
    uid: str
    token: bytes | None = None


@dataclass(frozen=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True)
class CodeScanned:
    """A QR or bar code was read (camera or keyboard-wedge scanner)."""

    source: str
    text: str


class DeviceState(StrEnum):
    READY = "ready"
    MISSING = "missing"  # not plugged in / not found: a hint for the person at the counter
    FAILED = "failed"    # present but not working (service down, out of paper, ...)


@dataclass(frozen=True)
class DeviceStatus:
    """A device's state changed. `code` names a translated hint (terminal.messages)."""

    device: str  # "reader" | "camera" | "printer" | "scanner" | "voice"
    name: str
    state: DeviceState
    code: str
    detail: str = ""


DeviceEvent = CardPresented | CardRemoved | CodeScanned | DeviceStatus
EventSink = Callable[[DeviceEvent], None]


class Device(Protocol):
    """A card reader or code scanner with its own worker thread."""

    name: str

    def start(self, sink: EventSink) -> None:
        """Start the worker thread; events go to `sink` on that thread."""

    def stop(self) -> None:
        """Stop the worker thread and wait for it (bounded time)."""


class ReceiptPrinter(Protocol):
    name: str

    def print_receipt(self, receipt: Receipt | Slip) -> None:
        """Print, or raise `terminal.errors.DeviceError` (offline, out of paper, ...). Called
        with receipts of committed entries, or slips such as the Z report, from a worker
        thread."""


class Speaker(Protocol):
    def say(self, text: str, lang: str) -> None:
        """Queue `text` to be spoken in `lang`; returns at once (speech has its own thread)."""

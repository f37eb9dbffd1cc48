"""Device specs → adapters: the one place configuration strings are turned into devices.

A spec is `KIND` or `KIND:ARG`, e.g. `pcsc`, `pcsc:Virtual PCD 00 00`, `nfcpy:usb`,
`nfcpy:udp:127.0.0.1:54321`, `camera:0`, `camera:/path/clip.avi`, `escpos:tcp:127.0.0.1:9100`,
`sim`. Adapter modules are imported only when their kind is asked for, so a counter without a
camera never loads OpenCV, and a missing library is a clear `BadInput`, not an ImportError.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from terminal.errors import BadInput
from terminal.ports import Device, ReceiptPrinter

# kind -> (module, factory function); the factory takes the text after "KIND:" (or None).
READERS = {"pcsc": ("drivers.pcsc", "open_pcsc"), "nfcpy": ("drivers.nfcpy_reader", "open_nfcpy"),
           "sim": ("drivers.sim", "open_sim_reader")}
CAMERAS = {"camera": ("drivers.camera", "open_camera"), "sim": ("drivers.sim", "open_sim_camera")}
PRINTERS = {"escpos": ("drivers.printer", "open_printer"),
            "sim": ("drivers.sim", "open_sim_printer")}


def split_spec(spec: str) -> tuple[str, str | None]:
    kind, sep, arg = spec.strip().partition(":")
    return kind.lower(), (arg if sep else None)


def _factory(table: dict[str, tuple[str, str]], what: str, spec: str
             ) -> tuple[Callable[[str | None], Any], str | None]:
    kind, arg = split_spec(spec)
    if kind not in table:
        raise BadInput("bad_device_spec", what=what, spec=spec, allowed=", ".join(sorted(table)))
    module_name, function = table[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput("adapter_unavailable", spec=spec, detail=str(exc)) from exc
    factory: Callable[[str | None], Any] = getattr(module, function)
    return factory, arg


def open_reader(spec: str) -> Device:
    factory, arg = _factory(READERS, "reader", spec)
    device: Device = factory(arg)
    return device


def open_camera(spec: str) -> Device:
    factory, arg = _factory(CAMERAS, "camera", spec)
    device: Device = factory(arg)
    return device


def open_printer(spec: str) -> ReceiptPrinter:
    factory, arg = _factory(PRINTERS, "printer", spec)
    printer: ReceiptPrinter = factory(arg)
    return printer

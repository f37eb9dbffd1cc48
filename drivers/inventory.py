"""What this machine offers: which adapters can load, and which devices are seen now.

For `cardpos devices list` — the first thing support staff run at a counter. Every probe is
guarded: a missing library or a stopped pcscd is reported as such, never raised.
"""

from __future__ import annotations

import ctypes.util
import glob
import importlib.util
import shutil
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    """An adapter or a device, and whether it is usable here (with the reason if not)."""

    kind: str
    name: str
    ok: bool
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "ok": self.ok, "detail": self.detail}


def _module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def adapters() -> list[Found]:
    """Each adapter kind and whether its library is installed (nothing is imported)."""
    zbar = ctypes.util.find_library("zbar") is not None
    checks = [
        ("reader", "pcsc (pyscard)", _module("smartcard"), "pip install pyscard; needs pcscd"),
        ("reader", "nfcpy", _module("nfc"), "pip install nfcpy"),
        ("camera", "camera (opencv-python-headless)", _module("cv2"),
         "pip install opencv-python-headless"),
        ("decoder", "zxing-cpp", _module("zxingcpp"), "pip install zxing-cpp"),
        ("decoder", "pyzbar", _module("pyzbar") and zbar,
         "pip install pyzbar; apt install libzbar0"),
        ("printer", "escpos (python-escpos)", _module("escpos"), "pip install python-escpos"),
        ("voice", "espeak-ng", shutil.which("espeak-ng") is not None, "apt install espeak-ng"),
    ]
    return [Found(kind, name, ok, "" if ok else hint) for kind, name, ok, hint in checks]


def pcsc_readers() -> list[Found]:
    """Readers pcscd knows now, or one entry saying why none can be listed."""
    if not _module("smartcard"):
        return [Found("reader", "pcsc", False, "pyscard is not installed")]
    from smartcard.Exceptions import SmartcardException  # type: ignore[import-untyped]
    from smartcard.pcsc.PCSCExceptions import BaseSCardException  # type: ignore[import-untyped]
    from smartcard.System import readers  # type: ignore[import-untyped]

    try:
        names = [str(r) for r in readers()]
    except (BaseSCardException, SmartcardException) as exc:
        return [Found("reader", "pcsc", False, f"pcscd is not reachable: {exc}")]
    return [Found("reader", f"pcsc:{n}", True) for n in names]


def device_files() -> list[Found]:
    """Cameras, USB printers and serial ports by their device files."""
    found = [Found("camera", f"camera:{path.removeprefix('/dev/video')}", True, path)
             for path in sorted(glob.glob("/dev/video*"))]
    found += [Found("printer", f"escpos:file:{path}", True, path)
              for path in sorted(glob.glob("/dev/usb/lp*"))]
    found += [Found("serial", path, True, "a serial printer or scanner may be here")
              for path in sorted(glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*"))]
    return found


def everything() -> list[Found]:
    return [*adapters(), *pcsc_readers(), *device_files()]

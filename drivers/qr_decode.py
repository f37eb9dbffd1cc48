"""QR decoding for the camera and for `cardpos scan-image`: zxing-cpp first, pyzbar second.

One decoder serves both, so a code that `cardpos scan-image photo.png` reads on site is a code the
camera reads at the counter. Measured on the real photographs in shared/data/qr-photos
(docs/qr.md), zxing-cpp reads more codes and is several times faster than zbar, so it goes first;
pyzbar (zbar) is asked only when zxing-cpp finds nothing. The passes, cheapest first, stop at
the first that finds a code:

1. zxing-cpp with its default local-average binarizer (it also tries rotated, downscaled and
   inverted variants by itself);
2. zxing-cpp with the global-histogram binarizer, on the image and on a half-size copy (cheap,
   and it reads some blurred or unevenly lit photos that pass 1 misses);
3. pyzbar, the second opinion (skippable: the camera asks for it on every few frames only,
   because zbar costs 15–50 ms on a 1280×720 frame).

Only the QR family is read (QR Model 1 and 2, Micro QR, rMQR): cardpos codes are QR codes, and a
camera pointed at a counter sees product barcodes that must not turn into scans. Linear barcodes
come from the keyboard-wedge scanner.

Text: zxing-cpp's `text` already applies the code's ECI / character set (Shift_JIS, GB2312,
UTF-8, ...) and is used as it is (TextMode.Plain: the exact content, GS1 separators included, no
human-readable rewriting); its `bytes` are kept as `Code.raw`. pyzbar gives bytes that zbar has
already transcoded to UTF-8; they are decoded as UTF-8 and, should that fail, as ISO 8859-1 (the
QR standard's default byte-mode character set), which never fails.

pyzbar 0.1.9 raises on some images (`ValueError: 4294967295 is not a valid ZBarOrientation`
when zbar cannot tell a symbol's orientation); any exception from it is logged with its
traceback and counts as "pyzbar found nothing" for that image, so one bad frame or file never
stops the camera or a batch of files. A missing libzbar only switches the second opinion off.

Thread: every function here is pure and may run on any thread (the camera's worker, the CLI's
main thread); nothing is shared between calls.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

from terminal.messages import default_language, text

log = logging.getLogger(__name__)

# pyzbar needs Debian's libzbar0; without it the second opinion is off, not the decoder.
pyzbar: Any
try:
    pyzbar = importlib.import_module("pyzbar.pyzbar")
except (ImportError, OSError) as exc:  # pyzbar missing, or installed without libzbar
    pyzbar = None
    log.warning("pyzbar is not usable (%s): decoding with zxing-cpp only", exc)

ZXING = "zxing-cpp"
PYZBAR = "pyzbar"

#: Images smaller than this (shortest side, pixels) are not halved for the extra pass.
_MIN_HALVED_SIDE = 64

#: A numpy image as OpenCV makes them: gray (h, w), BGR (h, w, 3) or BGRA (h, w, 4).
Image = NDArray[Any]
#: An 8-bit single-channel image (what `to_gray` returns and the decoders read).
Gray = NDArray[Any]


@dataclass(frozen=True)
class Code:
    """One decoded code: its text, its format (e.g. "QRCode", "MicroQRCode"), which decoder read
    it, and the bytes that decoder gave (zxing-cpp: the raw payload; pyzbar: zbar's UTF-8)."""

    text: str
    format: str
    decoder: str
    raw: bytes = field(default=b"", repr=False)

    def as_json(self) -> dict[str, str]:
        return {"text": self.text, "format": self.format, "decoder": self.decoder}


def pyzbar_available() -> bool:
    """Whether the pyzbar second opinion can run here (pyzbar and libzbar installed)."""
    return pyzbar is not None


def to_gray(image: Image) -> Gray:
    """An 8-bit single-channel copy (or view) of a gray, BGR or BGRA image of any depth.

    Transparent pixels become white, so a code drawn on a transparent background still reads.
    Raises ValueError for an array that is not an image (wrong number of dimensions/channels).
    """
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"not an image: array of shape {image.shape}")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF, float or bool arrays: stretch to 0..255
        values = image.astype(np.float32)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = ((values - low) * scale).astype(np.uint8)
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return np.ascontiguousarray(image[:, :, 0])
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if channels == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        white = np.full_like(image[:, :, :3], 255)
        flat: Image = (image[:, :, :3] * alpha + white * (1.0 - alpha)).astype(np.uint8)
        return cv2.cvtColor(flat, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"not an image: {channels} channels")


def read_zxing(gray: Gray, *, global_histogram: bool = False) -> list[Code]:
    """zxing-cpp alone, one pass: the QR-family codes it reads in `gray`, with its default local
    average binarizer or, if asked, the global histogram one."""
    binarizer = (zxingcpp.Binarizer.GlobalHistogram if global_histogram
                 else zxingcpp.Binarizer.LocalAverage)
    # The QR group: Model 1 and 2, Micro QR, rMQR. Made per call (~1 µs), not kept in a module
    # global: nanobind reports zxing-cpp objects still alive at interpreter exit as leaks.
    formats = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    found = zxingcpp.read_barcodes(gray, formats=formats, binarizer=binarizer,
                                   text_mode=zxingcpp.TextMode.Plain)
    codes = []
    for barcode in found:
        raw = bytes(barcode.bytes)
        # An empty text with bytes would be a payload zxing-cpp could not transcode: keep it.
        code_text = barcode.text or _bytes_to_text(raw)
        codes.append(Code(code_text, barcode.format.name, ZXING, raw))
    return codes


def read_pyzbar(gray: Gray) -> list[Code]:
    """pyzbar alone: the QR codes zbar reads in `gray`. Never raises for any image: pyzbar's
    own failures (see the module docstring) are logged and give an empty list."""
    if pyzbar is None:
        return []
    try:
        found = pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])
    except Exception:  # pyzbar 0.1.9 raises ValueError/PyZbarError on some images; survive all
        log.warning("pyzbar failed on a %dx%d image; treating it as no code", gray.shape[1],
                    gray.shape[0], exc_info=True)
        return []
    return [Code(_bytes_to_text(d.data), "QRCode", PYZBAR, bytes(d.data)) for d in found]


def decode(image: Image, *, second_opinion: bool = True) -> list[Code]:
    """The distinct QR codes in `image` (gray, BGR or BGRA), in the order the decoder found them;
    an empty list when there is none. Passes as in the module docstring; `second_opinion=False`
    skips pyzbar (the camera's choice on most frames, for speed)."""
    gray = to_gray(image)
    codes = read_zxing(gray)
    if not codes:
        codes = read_zxing(gray, global_histogram=True)
    if not codes and min(gray.shape) >= _MIN_HALVED_SIDE:
        half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        codes = read_zxing(half, global_histogram=True)
    if not codes and second_opinion:
        codes = read_pyzbar(gray)
    return _distinct(codes)


def decode_texts(image: Image, *, second_opinion: bool = True) -> list[str]:
    """Just the texts of `decode(image)`."""
    return [c.text for c in decode(image, second_opinion=second_opinion)]


# --- files (`cardpos scan-image`) -----------------------------------------------------------

@dataclass(frozen=True)
class FileResult:
    """What one image file gave: its codes, or a typed error. `error` is a message code of
    terminal.messages: "image_missing" (cannot be read: no such file, a directory, no
    permission), "image_unreadable" (not an image, or a corrupt one), "no_code_found"; `detail`
    says more, in English, for the log. `ms` is the time spent on the file."""

    path: str
    codes: tuple[Code, ...] = ()
    error: str | None = None
    detail: str = ""
    ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.codes]

    def message(self, lang: str) -> str | None:
        """The translated error message, or None when the file was decoded."""
        if self.error is None:
            return None
        return text(self.error, lang, path=self.path, detail=self.detail)

    def as_json(self, lang: str | None = None) -> dict[str, Any]:
        """The `--json` form: file, ok, codes (text, format, decoder), error code and message."""
        return {"file": self.path, "ok": self.ok, "codes": [c.as_json() for c in self.codes],
                "error": self.error, "message": self.message(lang or default_language()),
                "ms": round(self.ms, 2)}

    def line(self, lang: str) -> str:
        """One line for a person: `FILE: TEXT` (texts of several codes joined by " | ", control
        characters such as a vCard's line breaks escaped), or `FILE: error: MESSAGE`."""
        if self.error is not None:
            return f"{self.path}: error: {self.message(lang)}"
        return f"{self.path}: " + " | ".join(_one_line(t) for t in self.texts)

    def __str__(self) -> str:
        return self.line(default_language())


def load_image(path: Path) -> Image:
    """The image in `path`, as OpenCV decodes it (any depth, alpha kept).

    Raises OSError when the file cannot be read and ValueError when it is not an image OpenCV can
    decode (a corrupt or truncated file, a text file, an unsupported format). The bytes are read
    by Python, so a path in any script works and a missing file is an OSError, not a None.
    """
    data = path.read_bytes()
    if not data:
        raise ValueError("the file is empty")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ValueError(f"OpenCV cannot decode it: {exc}") from exc
    if image is None or image.size == 0:
        raise ValueError("not an image format OpenCV can decode, or a corrupt image")
    return image


def decode_file(path: str | Path) -> FileResult:
    """Decode the QR codes in one image file; never raises for a bad file (the error is in the
    result and logged)."""
    start = time.perf_counter()
    name = str(path)

    def elapsed_ms() -> float:
        return (time.perf_counter() - start) * 1000

    def failed(code: str, detail: str) -> FileResult:
        # INFO, not WARNING: the result carries the error to the person; this is the log's copy.
        log.info("%s: %s (%s)", name, code, detail)
        return FileResult(name, error=code, detail=detail, ms=elapsed_ms())

    try:
        image = load_image(Path(path))
    except OSError as exc:
        return failed(code="image_missing", detail=exc.strerror or str(exc))
    except ValueError as exc:
        return failed(code="image_unreadable", detail=str(exc))
    try:
        codes = decode(image)
    except ValueError as exc:  # an image OpenCV loads but that has no usable pixels
        return failed(code="image_unreadable", detail=str(exc))
    if not codes:
        return failed(code="no_code_found", detail=f"{image.shape[1]}x{image.shape[0]} image")
    return FileResult(name, codes=tuple(codes), ms=elapsed_ms())


def scan_files(paths: Iterable[str | Path]) -> list[FileResult]:
    """`decode_file` for each path, in order: one result per file, never raising for a bad one."""
    return [decode_file(p) for p in paths]


# --- helpers ----------------------------------------------------------------------------------


def _bytes_to_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        log.debug("code payload is not UTF-8; read as ISO 8859-1")
        return data.decode("latin-1")


def _distinct(codes: list[Code]) -> list[Code]:
    seen: set[str] = set()
    out = []
    for code in codes:
        if code.text not in seen:
            seen.add(code.text)
            out.append(code)
    return out


def _one_line(value: str) -> str:
    """`value` with control characters escaped (\\n, \\r, \\t, \\x1d ...), for one-line output."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode()
                   for ch in value)

"""Benchmark of QR decoding on real photographs: zxing-cpp alone, pyzbar alone and ours.

Run:  .venv/bin/python bench/qr_photos.py [--photos DIR] [--repeat 5] [--misses]

The photographs are ../shared/data/qr-photos (zxing-cpp's test samples, see its NOTICE.md): each
image `NAME.png|.jpg|.webp` has its expected text in `NAME.txt` (`NAME.result.txt` files are
zxing-cpp's own metadata and are ignored). An image counts as decoded when one of the texts
read equals the expected text, line ends normalised (the samples mix CRLF and LF).

Rows, each given the same 8-bit gray image (loading and conversion are not timed):
- zxing-cpp, library defaults: `zxingcpp.read_barcodes(image)` — every format, HRI text;
- zxing-cpp alone: one pass as our decoder's first pass (QR family, plain text);
- pyzbar alone: `pyzbar.decode(image, [QRCODE])` as our second opinion calls it;
- ours: `drivers.qr_decode.decode` (the camera's and `cardpos scan-image`'s decoder).
ms per image is the mean over images of the median of `--repeat` runs.

Prints figures; asserts nothing about speed. Exits 1 if any decoder raised on any image (a
crash: the product must survive every image) or if ours read fewer images than the best single
decoder (the goal of issue 3); docs/qr.md records a run.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zxingcpp
from benchlib import machine_lines

from drivers import qr_decode

log = logging.getLogger("bench.qr_photos")
DEFAULT_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "qr-photos"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Sample:
    image: Path
    expected: str


def samples(root: Path) -> list[Sample]:
    """Every image with a same-named .txt of its expected text."""
    found = []
    for image in sorted(root.rglob("*")):
        text = image.with_suffix(".txt")
        if image.suffix.lower() in IMAGE_SUFFIXES and text.is_file():
            found.append(Sample(image, text.read_text(encoding="utf-8")))
    return found


def _library_defaults(gray: Any) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(gray)]


def _zxing(gray: Any) -> list[str]:
    return [c.text for c in qr_decode.read_zxing(gray)]


def _pyzbar(gray: Any) -> list[str]:
    return [c.text for c in qr_decode.read_pyzbar(gray)]


def _ours(gray: Any) -> list[str]:
    return qr_decode.decode_texts(gray)


DECODERS: dict[str, Callable[[Any], list[str]]] = {
    "zxing-cpp, library defaults": _library_defaults,
    "zxing-cpp alone": _zxing,
    "pyzbar alone": _pyzbar,
    "ours (zxing-cpp, then pyzbar)": _ours,
}
OURS = "ours (zxing-cpp, then pyzbar)"


@dataclass
class Tally:
    decoded: int = 0
    crashes: int = 0
    ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def normalised(text: str) -> str:
    return text.replace("\r\n", "\n")


def run(items: list[Sample], root: Path, repeat: int) -> dict[str, Tally]:
    tallies = {name: Tally() for name in DECODERS}
    for sample in items:
        gray = qr_decode.to_gray(qr_decode.load_image(sample.image))
        name_of_image = str(sample.image.relative_to(root))
        for name, read in DECODERS.items():
            tally = tallies[name]
            times = []
            texts: list[str] = []
            try:
                for _ in range(repeat):
                    start = time.perf_counter()
                    texts = read(gray)
                    times.append((time.perf_counter() - start) * 1000)
            except Exception:  # a crash is a finding of the benchmark: count it, show it, go on
                tally.crashes += 1
                tally.misses.append(f"{name_of_image} (CRASH)")
                log.exception("CRASH: %s on %s", name, name_of_image)
                continue
            tally.ms.append(statistics.median(times))
            if normalised(sample.expected) in [normalised(t) for t in texts]:
                tally.decoded += 1
            else:
                tally.misses.append(name_of_image)
    return tallies


def versions() -> list[str]:
    return machine_lines("zxing-cpp", "pyzbar", "opencv-python-headless", "numpy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per image and decoder")
    parser.add_argument("--misses", action="store_true", help="list the images each one missed")
    args = parser.parse_args(argv)
    if not args.photos.is_dir():
        print(f"no photographs in {args.photos}", file=sys.stderr)
        return 2
    items = samples(args.photos)
    if not items:
        print(f"no image with an expected text in {args.photos}", file=sys.stderr)
        return 2
    if not qr_decode.pyzbar_available():
        print("pyzbar is not usable here (pip install pyzbar; apt install libzbar0)",
              file=sys.stderr)
        return 2
    tallies = run(items, args.photos, max(1, args.repeat))

    n = len(items)
    print(f"== QR decoding on {n} real photographs in {args.photos}")
    print(f"{'decoder':<32} {'decoded':>12} {'ms/image':>9} {'p90 ms':>7} {'crashes':>8}")
    for name, tally in tallies.items():
        mean = statistics.fmean(tally.ms) if tally.ms else float("nan")
        p90 = statistics.quantiles(tally.ms, n=10)[-1] if len(tally.ms) >= 2 else mean
        rate = f"{tally.decoded}/{n} {100 * tally.decoded / n:3.0f}%"
        print(f"{name:<32} {rate:>12} {mean:>9.2f} {p90:>7.2f} {tally.crashes:>8}")
    if args.misses:
        for name, tally in tallies.items():
            print(f"-- missed by {name}: {', '.join(tally.misses) or 'none'}")
    singles = {k: v.decoded for k, v in tallies.items() if k != OURS}
    best = max(singles, key=lambda k: singles[k])
    ours = tallies[OURS].decoded
    crashes = sum(t.crashes for t in tallies.values())
    print(f"goal: ours >= best single decoder ({best}: {singles[best]}): "
          f"{'met' if ours >= singles[best] else 'MISSED'} ({ours}); crashes: {crashes}")
    for line in versions():
        print(line)
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    return 0 if ours >= singles[best] and crashes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

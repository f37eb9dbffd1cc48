"""Benchmark of the camera loop: frames per second at 1280×720, with and without a code in view.

Run:  .venv/bin/python bench/camera_fps.py [--frames 300] [--size 1280x720] [--dir DIR] [--keep]

Writes 1280×720 MJPG videos (30 fps) and plays each through `drivers.camera.Camera` as fast as
it goes (the worker thread does everything a live camera's does: read and decode the frame, the
same-frame check, QR decoding, events). Scenes:
- "no code, moving": a counter with a hand-sized shape moving across and sensor noise, so every
  frame differs and every frame is decoded (zxing-cpp; pyzbar every 4th frame) — the worst case;
- "code in view, moving": the same with a signed cardpos token's QR code held up and drifting;
- "still scene": identical frames (the same-frame check skips them) — a parked camera;
- "no code, pyzbar always": the first scene with the second opinion on every frame
  (`second_opinion_every=1`), to show why the camera asks pyzbar only every 4th frame.
fps = frames / wall time of the capture loop; the breakdown is per frame: reading the video
(MJPG decoding), QR decoding, and the rest (gray conversion, same-frame check, events).

Prints figures; asserts nothing about speed (the goal of issue 3 is >= 30 fps). Exits 1 only if
the loop misbehaves: the code in view is not reported exactly once, or a scene without a code
reports one. docs/qr.md records a run.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno
from benchlib import machine_lines
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.camera import SECOND_OPINION_EVERY, Camera, CaptureStats
from terminal.ports import CodeScanned, DeviceEvent, DeviceStatus
from terminal.tokens import TokenPayload, sign_token, to_qr_text

FPS = 30


def token_text() -> str:
    payload = TokenPayload(key_id="bench-1", card_number="6006491234567891",
                           purses=("fuel", "phone"), issued_at=1767225600,
                           expires_at=1924992000)
    return to_qr_text(sign_token(payload, Ed25519PrivateKey.generate()))


def qr_gray(text: str, scale: int) -> Any:
    matrix = np.array(list(segno.make(text, error="m", micro=False).matrix_iter(
        scale=scale, border=4)), dtype=np.uint8)
    return (255 - matrix * 255).astype(np.uint8)


def background(w: int, h: int) -> Any:
    """A counter: a colour gradient, a few objects and a printed label."""
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, :, 0] = np.linspace(90, 170, w, dtype=np.uint8)[None, :]
    frame[:, :, 1] = np.linspace(120, 180, h, dtype=np.uint8)[:, None]
    frame[:, :, 2] = 150
    rng = np.random.default_rng(5)
    for _ in range(25):
        x, y = int(rng.integers(0, w - 120)), int(rng.integers(0, h - 90))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(frame, (x, y), (x + int(rng.integers(20, 120)),
                                      y + int(rng.integers(15, 90))), colour, -1)
    cv2.putText(frame, "CARDPOS  1234 5678", (60, h - 60), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (30, 30, 30), 4)
    return frame


def write_video(path: Path, frames: int, size: tuple[int, int],
                draw: Callable[[Any, int], None]) -> None:
    w, h = size
    base = background(w, h)
    rng = np.random.default_rng(11)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, size)
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write MJPG video to {path}")
    noise_frames = [rng.integers(0, 6, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    for i in range(frames):
        frame = base.copy()
        draw(frame, i)
        writer.write(cv2.add(frame, noise_frames[i % len(noise_frames)]))
    writer.release()


def moving_hand(frame: Any, i: int) -> None:
    """A hand-sized dark shape sweeping across the counter (every frame differs)."""
    h, w = frame.shape[:2]
    x = (i * 9) % (w - 260)
    cv2.ellipse(frame, (x + 130, h // 2), (120, 170), 0, 0, 360, (70, 90, 120), -1)


def still(frame: Any, i: int) -> None:
    pass


def code_drawer(text: str) -> Callable[[Any, int], None]:
    qr = qr_gray(text, scale=6)

    def draw(frame: Any, i: int) -> None:
        moving_hand(frame, i)
        h, w = frame.shape[:2]
        x = w // 2 - qr.shape[1] // 2 + (i % 40) - 20  # drifting, as a held card does
        y = h // 2 - qr.shape[0] // 2 + (i // 3) % 9
        frame[y:y + qr.shape[0], x:x + qr.shape[1]] = qr[:, :, None]

    return draw


@dataclass
class Run:
    scene: str
    stats: CaptureStats
    codes: list[str]
    statuses: list[str]


def play(path: Path, scene: str, second_opinion_every: int) -> Run:
    codes: list[str] = []
    statuses: list[str] = []
    ended = threading.Event()

    def sink(event: DeviceEvent) -> None:
        if isinstance(event, CodeScanned):
            codes.append(event.text)
        elif isinstance(event, DeviceStatus):
            statuses.append(event.code)
            if event.code == "camera_video_ended":
                ended.set()

    camera = Camera(str(path), second_opinion_every=second_opinion_every)
    camera.start(sink)
    try:
        if not ended.wait(600):
            raise SystemExit(f"{scene}: the camera did not finish the video in 600 s")
    finally:
        camera.stop()
    return Run(scene, camera.stats, codes, statuses)


def versions() -> list[str]:
    return [*machine_lines("opencv-python-headless", "zxing-cpp", "pyzbar", "numpy"),
            f"OpenCV threads {cv2.getNumThreads()}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=300, help="frames per video (30 fps)")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    parser.add_argument("--dir", type=Path, help="where to write the videos (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the videos")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="cardpos-camera-", dir=args.dir))
    token = token_text()
    default_every = SECOND_OPINION_EVERY
    scenes: list[tuple[str, Callable[[Any, int], None], list[str], int]] = [
        ("no code, moving", moving_hand, [], default_every),
        ("code in view, moving", code_drawer(token), [token], default_every),
        ("still scene", still, [], default_every),
        ("no code, pyzbar always", moving_hand, [], 1),
    ]
    runs = []
    ok = True
    try:
        videos: dict[Callable[[Any, int], None], Path] = {}
        for name, draw, expected, every in scenes:
            path = videos.get(draw, work / (name.replace(" ", "-").replace(",", "") + ".avi"))
            if draw not in videos:
                start = time.perf_counter()
                write_video(path, args.frames, (w, h), draw)
                videos[draw] = path
                print(f"[{name}] wrote {args.frames} frames of {w}x{h} MJPG in "
                      f"{time.perf_counter() - start:.1f} s "
                      f"({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
            run = play(path, name, every)
            runs.append(run)
            if run.codes != expected:
                print(f"[{name}] MISBEHAVED: reported {run.codes!r}, expected {expected!r}",
                      file=sys.stderr)
                ok = False
    finally:
        if args.keep:
            print(f"videos kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"== camera loop at {w}x{h}, {args.frames} frames per scene, as fast as it goes")
    print("(ms per frame: read = video decoding, decode = QR decoding; 2nd op. = decodes that "
          "could ask pyzbar, which runs only when zxing-cpp finds nothing)")
    print(f"{'scene':<24} {'fps':>7} {'ms/frame':>9} {'read':>6} {'decode':>7} {'rest':>6} "
          f"{'decoded':>8} {'skipped':>8} {'2nd op.':>8} {'codes':>6}")
    for run in runs:
        s = run.stats
        per = 1000 / s.frames if s.frames else float("nan")
        read, dec = s.read_s * per, s.decode_s * per
        total = s.loop_s * per
        print(f"{run.scene:<24} {s.fps:>7.1f} {total:>9.2f} {read:>6.2f} {dec:>7.2f} "
              f"{total - read - dec:>6.2f} {s.decoded:>8} {s.skipped:>8} "
              f"{s.second_opinions:>8} {len(run.codes):>6}")
    worst = min((r.stats.fps for r in runs if "always" not in r.scene), default=0.0)
    print(f"goal: >= 30 fps in every scene as configured: {'met' if worst >= 30 else 'MISSED'} "
          f"(lowest {worst:.1f} fps)")
    for line in versions():
        print(line)
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

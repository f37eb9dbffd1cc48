"""The camera QR adapter: OpenCV capture and QR decoding on the camera's own worker thread.

Sources (the text after `camera:` in a device spec, see `open_camera`):
- a device index, `camera:0` — a live camera (V4L2 on Linux);
- a URL, `camera:rtsp://...`, `camera:http://.../stream.mjpg` — a live network stream;
- a file path, `camera:/path/clip.avi` — a recorded video, played as fast as it decodes (or at
  its own frame rate with `realtime=True`), once or in a loop (`loop=True`, for the demo).

Per frame the worker converts to gray, skips the frame when it looks the same as the last one it
decoded (a 64×36 thumbnail differs by at most `same_level` grey levels anywhere: a still scene,
a paused stream, sensor noise), and otherwise decodes with `drivers.qr_decode.decode` — zxing-cpp
on every frame, pyzbar as second opinion on every `second_opinion_every`-th decoded frame (zbar
costs 15–50 ms on a 1280×720 frame; it also runs once on a still scene that zxing-cpp could not
read, so nothing is left unread for lack of a retry).

One event per code per presentation: a code's text is reported (`CodeScanned`) the first time it
is seen, and again only after it has been out of view — not decoded in any frame — for more than
`rearm_s` seconds (default 1.0 s) of capture time. Holding a card in front of the camera for a
minute is one scan; taking it away and showing it again a second later is a second scan.
Capture time is the wall clock for live sources and the video's own timeline (frame number /
frame rate) for files, so a file gives the same events however fast the machine decodes it.

Failures never end the worker: a source that cannot be opened is reported as
`DeviceStatus(MISSING, "camera_missing")`, a live source that stops giving frames as
`"camera_lost"`, an unexpected error as `FAILED "camera_failed"`, and the worker retries with a
doubling backoff (0.5 s up to 10 s by default). A status is sent when it changes, not on every
retry; `"camera_ready"` when frames flow again. The end of a video file (without `loop`) is
reported as `MISSING "camera_video_ended"` and ends the worker cleanly.

Threads: `start(sink)` starts the worker and returns at once; every event is passed to `sink` on
the worker thread (a UI forwards it to its GUI thread). `stop()` sets a flag the worker checks
between frames and during every wait, and joins it (bounded: a network stream blocked inside
OpenCV has read/open timeouts of `stream_timeout_s`; a worker still stuck after `stop`'s timeout
is left behind as a daemon thread, with a log line). No Qt here.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
from numpy.typing import NDArray

from drivers.qr_decode import decode, pyzbar_available, to_gray
from terminal.ports import CodeScanned, DeviceEvent, DeviceState, DeviceStatus, EventSink

log = logging.getLogger(__name__)

#: A code out of view for longer than this (seconds of capture time) is reported again.
REARM_S = 1.0
#: pyzbar (slow) may run on every n-th decoded frame; zxing-cpp runs on every one.
SECOND_OPINION_EVERY = 4
#: Thumbnail size for the "same frame as last time" check.
_THUMB = (64, 36)
#: Frame rate assumed for a video file that does not say (or says something absurd).
_DEFAULT_FPS = 30.0


class _Outcome(Enum):
    """How one capture session (open → frames → release) ended."""

    STOPPED = "stopped"  # stop() was called
    ENDED = "ended"      # end of a video file, no loop
    LOST = "lost"        # a live source gave no frame
    FAILED = "failed"    # an unexpected exception


@dataclass
class CaptureStats:
    """Counters of the worker, for benchmarks, tests and support (written by the worker thread
    only; reading them from another thread gives a slightly stale but consistent-enough view)."""

    open_attempts: int = 0
    frames: int = 0           # frames read and processed
    decoded: int = 0          # frames given to the decoder
    skipped: int = 0          # frames skipped as the same as the last decoded one
    second_opinions: int = 0  # decodes that were allowed to ask pyzbar
    codes: int = 0            # CodeScanned events sent
    read_s: float = 0.0       # time inside VideoCapture.read
    decode_s: float = 0.0     # time inside the decoder
    loop_s: float = 0.0       # wall time of capture sessions (first read to last frame)

    @property
    def fps(self) -> float:
        return self.frames / self.loop_s if self.loop_s > 0 else 0.0


class Presentations:
    """Turns "codes seen in this frame" into "codes newly presented" (see the module docstring).

    Pure logic, no clock of its own: the caller passes each frame's capture time.
    """

    def __init__(self, rearm_s: float = REARM_S) -> None:
        self.rearm_s = rearm_s
        self._last_seen: dict[str, float] = {}

    def update(self, texts: Iterable[str], t: float) -> list[str]:
        """Record the texts seen at time `t`; return those that start a new presentation."""
        new = []
        for text in texts:
            last = self._last_seen.get(text)
            if last is None or t - last > self.rearm_s:
                new.append(text)
            self._last_seen[text] = t
        # Forget codes gone for longer than rearm_s: they count as new anyway, and memory stays
        # bounded on a camera that runs for months.
        for text in [k for k, last in self._last_seen.items() if t - last > self.rearm_s]:
            del self._last_seen[text]
        return new


class SameFrame:
    """Whether a frame looks like the last one decoded: a cheap check (a 64×36 area-averaged
    thumbnail, ~0.3 ms at 1280×720) so a still scene is not decoded again and again."""

    def __init__(self, same_level: int = 8) -> None:
        self.same_level = same_level
        self._reference: NDArray[Any] | None = None

    def thumbnail(self, gray: NDArray[Any]) -> NDArray[Any]:
        return cv2.resize(gray, _THUMB, interpolation=cv2.INTER_AREA)

    def is_same(self, thumb: NDArray[Any]) -> bool:
        if self._reference is None:
            return False
        return int(cv2.absdiff(thumb, self._reference).max()) <= self.same_level

    def remember(self, thumb: NDArray[Any]) -> None:
        self._reference = thumb

    def forget(self) -> None:
        self._reference = None


def parse_source(arg: str | None) -> int | str:
    """A camera spec's argument as an OpenCV source: "0" → device 0, a URL or a path as given.

    A leading "camera:" is accepted too, so both `open_camera("camera:0")` and the registry's
    `open_camera("0")` work; None or "" means the first camera.
    """
    value = (arg or "").strip()
    value = value.removeprefix("camera:") if value.lower().startswith("camera:") else value
    if value == "":
        return 0
    if value.isdigit():
        return int(value)
    return value


class Camera:
    """A camera, video stream or video file that reports the QR codes shown to it.

    Implements `terminal.ports.Device`. Options: `loop` (play a file again from the start when it
    ends), `realtime` (play a file at its own frame rate instead of as fast as possible),
    `rearm_s`, `second_opinion_every`, `same_level` (see the module docstring), `retry_s`
    (first and longest wait between attempts to open the source), `size` (ask a device for a
    frame size, e.g. (1280, 720)), `stream_timeout_s` (OpenCV's open/read timeout for URLs).
    """

    def __init__(self, source: int | str, *, name: str | None = None, loop: bool = False,
                 realtime: bool = False, rearm_s: float = REARM_S,
                 second_opinion_every: int = SECOND_OPINION_EVERY, same_level: int = 8,
                 retry_s: tuple[float, float] = (0.5, 10.0),
                 size: tuple[int, int] | None = None, stream_timeout_s: float = 5.0) -> None:
        if second_opinion_every < 1:
            raise ValueError("second_opinion_every must be at least 1")
        self.source = source
        self.name = name or f"camera:{source}"
        self.loop = loop
        self.realtime = realtime
        self.second_opinion_every = second_opinion_every
        self.retry_s = retry_s
        self.size = size
        self.stream_timeout_s = stream_timeout_s
        self.stats = CaptureStats()
        self._rearm_s = rearm_s
        self._same_level = same_level
        self._is_file = isinstance(source, str) and "://" not in source
        self._sink: EventSink | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._status_now: tuple[DeviceState, str] | None = None
        # Per-run state, reset by start(); used by the worker thread only.
        self._presentations = Presentations(rearm_s)
        self._same = SameFrame(same_level)
        self._scene_texts: list[str] = []
        self._scene_done = False
        self._media_t = 0.0

    # --- the Device port ---------------------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Start the worker thread; it opens the source and sends events to `sink`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self.name} is already started")
        self._sink = sink
        self._stopping = threading.Event()
        self._status_now = None
        self.stats = CaptureStats()
        self._presentations = Presentations(self._rearm_s)
        self._same = SameFrame(self._same_level)
        self._scene_texts, self._scene_done, self._media_t = [], False, 0.0
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the worker and wait for it, at most `timeout` seconds."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s: the worker is still inside OpenCV after %.1f s; leaving it behind "
                        "(daemon thread, it ends at its next frame or timeout)", self.name,
                        timeout)
        else:
            self._thread = None

    def join(self, timeout: float) -> bool:
        """Wait until the worker ends by itself (end of a video file); True if it has ended."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # --- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.retry_s[0]
        while not self._stopping.is_set():
            self.stats.open_attempts += 1
            capture, why = self._open()
            if capture is None:
                log.info("%s: cannot open (%s); next try in %.1f s", self.name, why, delay)
                self._status(DeviceState.MISSING, code="camera_missing", detail=why)
                self._stopping.wait(delay)
                delay = min(delay * 2, self.retry_s[1])
                continue
            size = (f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x"
                    f"{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}")
            log.info("%s: open, %s frames", self.name, size)
            self._status(DeviceState.READY, code="camera_ready", detail=size)
            opened_at = time.monotonic()
            try:
                outcome = self._capture(capture)
            except Exception as exc:  # OpenCV or decoder trouble: report it, reopen, go on
                log.exception("%s: capture failed", self.name)
                self._status(DeviceState.FAILED, code="camera_failed",
                             detail=f"{type(exc).__name__}: {exc}")
                outcome = _Outcome.FAILED
            finally:
                capture.release()
            if outcome is _Outcome.STOPPED:
                return
            if outcome is _Outcome.ENDED:
                log.info("%s: end of the video", self.name)
                self._status(DeviceState.MISSING, code="camera_video_ended")
                return
            if outcome is _Outcome.LOST:
                log.warning("%s: no frame from the source; reopening", self.name)
                self._status(DeviceState.MISSING, code="camera_lost")
            if time.monotonic() - opened_at >= self.retry_s[1]:
                delay = self.retry_s[0]  # it ran well for a while: start the backoff afresh
            self._stopping.wait(delay)
            delay = min(delay * 2, self.retry_s[1])

    def _open(self) -> tuple[cv2.VideoCapture | None, str]:
        """An opened capture, or None and why not."""
        source = self.source
        try:
            if isinstance(source, int):
                if sys.platform.startswith("linux") and not Path(f"/dev/video{source}").exists():
                    return None, f"no /dev/video{source}"
                capture = cv2.VideoCapture(source)
                if capture.isOpened():
                    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
                    if self.size is not None:
                        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            elif self._is_file:
                if not Path(source).is_file():
                    return None, f"no file {source}"
                capture = cv2.VideoCapture(source)
            else:
                ms = int(self.stream_timeout_s * 1000)
                capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        except cv2.error as exc:
            return None, f"OpenCV: {exc}"
        if not capture.isOpened():
            capture.release()
            return None, "OpenCV cannot open it"
        return capture, ""

    def _capture(self, capture: cv2.VideoCapture) -> _Outcome:
        """Read and process frames until stop(), the end of a file, or a lost source."""
        fps = capture.get(cv2.CAP_PROP_FPS) if self._is_file else 0.0
        frame_s = 1.0 / fps if 1.0 <= fps <= 1000.0 else 1.0 / _DEFAULT_FPS
        pace_origin = time.monotonic() - self._media_t
        frames_this_pass = 0
        session_start = time.perf_counter()
        try:
            while not self._stopping.is_set():
                t0 = time.perf_counter()
                ok, frame = capture.read()
                self.stats.read_s += time.perf_counter() - t0
                if not ok or frame is None:
                    if not self._is_file:
                        return _Outcome.LOST
                    if self.loop and frames_this_pass > 0:
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        frames_this_pass = 0
                        continue
                    return _Outcome.ENDED
                frames_this_pass += 1
                if self._is_file:
                    t = self._media_t
                    self._media_t += frame_s
                    if self.realtime:
                        wait = pace_origin + t - time.monotonic()
                        if wait > 0 and self._stopping.wait(wait):
                            return _Outcome.STOPPED
                else:
                    t = time.monotonic()
                self._process(frame, t)
            return _Outcome.STOPPED
        finally:
            self.stats.loop_s += time.perf_counter() - session_start

    def _process(self, frame: NDArray[Any], t: float) -> None:
        """Decode one frame (unless it repeats the last) and report newly presented codes."""
        self.stats.frames += 1
        gray = to_gray(frame)
        thumb = self._same.thumbnail(gray)
        same = self._same.is_same(thumb)
        if same and self._scene_done:
            self.stats.skipped += 1
        else:
            # pyzbar is slow: ask it on every n-th decode, and once more on a still scene.
            second = same or self.stats.decoded % self.second_opinion_every == 0
            t0 = time.perf_counter()
            codes = decode(gray, second_opinion=second)
            self.stats.decode_s += time.perf_counter() - t0
            self.stats.decoded += 1
            self.stats.second_opinions += second
            self._same.remember(thumb)
            self._scene_texts = [c.text for c in codes]
            self._scene_done = bool(codes) or second or not pyzbar_available()
        for text in self._presentations.update(self._scene_texts, t):
            self.stats.codes += 1
            log.info("%s: code %r", self.name, text[:80])
            self._emit(CodeScanned(self.name, text))

    def _status(self, state: DeviceState, *, code: str, detail: str = "") -> None:
        """Send a DeviceStatus when the state or code changes (not on every retry)."""
        if self._status_now == (state, code):
            return
        self._status_now = (state, code)
        self._emit(DeviceStatus("camera", self.name, state, code, detail))

    def _emit(self, event: DeviceEvent) -> None:
        sink = self._sink
        if sink is None or self._stopping.is_set():  # after stop(), the consumer hears nothing
            log.debug("%s: not sent (stopping): %r", self.name, event)
            return
        try:
            sink(event)
        except Exception:  # the consumer's bug must not kill the camera
            log.exception("%s: the event sink failed on %r", self.name, event)


def open_camera(arg: str | None, **options: Any) -> Camera:
    """The camera for a device spec's argument: `"0"`, `"/path/clip.avi"`, `"rtsp://..."` (or the
    same with a leading `camera:`); `options` are `Camera`'s keyword arguments."""
    return Camera(parse_source(arg), **options)


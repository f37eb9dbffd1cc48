"""The camera adapter (drivers/camera.py) on real OpenCV capture: video files written here with
cv2.VideoWriter (MJPG in .avi) in which codes appear, stay, go and come back, a network stream
from an HTTP server on 127.0.0.1, and sources that are missing. The decoder is the real one."""

from __future__ import annotations

import functools
import http.server
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno

from drivers.camera import Camera, Presentations, SameFrame, open_camera, parse_source
from terminal.ports import CodeScanned, DeviceEvent, DeviceState, DeviceStatus
from tests.test_qr_decode import TOKEN, token_text

FPS = 30
SIZE = (640, 480)
OTHER = token_text("6006490000123421")


@dataclass(frozen=True)
class Shot:
    """`frames` frames showing `code` (None: no code); `moving`: the code shifts by a pixel
    every 5th frame, as a held card does, so those frames are not identical."""

    frames: int
    code: str | None = None
    moving: bool = False


@functools.cache
def qr_modules(code: str) -> Any:
    matrix = np.array(list(segno.make(code, error="m", micro=False).matrix_iter(
        scale=4, border=4)), dtype=np.uint8)
    return (255 - matrix * 255).astype(np.uint8)


def scene(code: str | None, shift: int = 0, size: tuple[int, int] = SIZE) -> Any:
    """A BGR frame: a grey counter with a dark stripe and, if given, a QR code held up."""
    w, h = size
    frame = np.full((h, w, 3), (150, 160, 170), np.uint8)
    cv2.rectangle(frame, (0, h - 60), (w, h), (60, 60, 70), -1)
    cv2.putText(frame, "cardpos", (20, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (40, 40, 40), 2)
    if code is not None:
        qr = qr_modules(code)
        y, x = (h - qr.shape[0]) // 2, (w - qr.shape[1]) // 2 + shift
        frame[y:y + qr.shape[0], x:x + qr.shape[1]] = qr[:, :, None]
    return frame


def write_clip(path: Path, shots: list[Shot], size: tuple[int, int] = SIZE) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, size)
    assert writer.isOpened()
    for shot in shots:
        for i in range(shot.frames):
            writer.write(scene(shot.code, (i // 5) % 2 if shot.moving else 0, size))
    writer.release()
    return path


#: 6 s at 30 fps. A stays 1 s, leaves for 0.5 s and comes back (the same presentation: it was
#: away for less than rearm_s = 1 s), leaves for 1.5 s and comes back (a new presentation), and
#: B replaces it directly. Expected: A, A, B.
SCRIPT = [Shot(15), Shot(30, TOKEN, moving=True), Shot(15), Shot(15, TOKEN), Shot(45),
          Shot(30, TOKEN, moving=True), Shot(30, OTHER)]
EXPECTED = [TOKEN, TOKEN, OTHER]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "counter.avi", SCRIPT)


class Events:
    """A sink that records events, with bounded waits for the test thread."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[DeviceEvent] = queue.SimpleQueue()
        self.seen: list[DeviceEvent] = []
        self.threads: set[str] = set()

    def __call__(self, event: DeviceEvent) -> None:
        self.threads.add(threading.current_thread().name)
        self.queue.put(event)

    def wait_for(self, match: Callable[[DeviceEvent], bool], timeout: float = 10.0
                 ) -> DeviceEvent:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event in {timeout} s; saw {self.seen}")
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if match(event):
                return event

    def drain(self) -> list[DeviceEvent]:
        while True:
            try:
                self.seen.append(self.queue.get_nowait())
            except queue.Empty:
                return self.seen

    def codes(self) -> list[str]:
        return [e.text for e in self.drain() if isinstance(e, CodeScanned)]

    def statuses(self) -> list[tuple[DeviceState, str]]:
        return [(e.state, e.code) for e in self.drain() if isinstance(e, DeviceStatus)]


def status(code: str) -> Callable[[DeviceEvent], bool]:
    return lambda e: isinstance(e, DeviceStatus) and e.code == code


@pytest.fixture
def cameras() -> Iterator[list[Camera]]:
    """Cameras made by a test; each is stopped afterwards, whatever happened."""
    made: list[Camera] = []
    yield made
    for camera in made:
        camera.stop(timeout=5)


# --- pure parts -------------------------------------------------------------------------------


def test_presentations_report_once_until_out_of_view_longer_than_rearm() -> None:
    p = Presentations(rearm_s=1.0)
    assert p.update(["A"], 0.0) == ["A"]
    assert p.update(["A"], 0.5) == []
    assert p.update([], 1.0) == []
    assert p.update(["A", "B"], 1.4) == ["B"]  # A away 0.9 s: the same presentation
    assert p.update(["B"], 2.0) == []
    assert p.update(["A"], 2.5) == ["A"]  # away 1.1 s: shown again
    assert p.update([], 60.0) == []
    assert p._last_seen == {}  # forgotten codes do not pile up


def test_same_frame_ignores_noise_but_not_a_code() -> None:
    same = SameFrame()
    base = scene(None)
    gray = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY)
    same.remember(same.thumbnail(gray))
    rng = np.random.default_rng(3)
    noise = np.clip(gray + rng.normal(0, 4, gray.shape), 0, 255).astype(np.uint8)
    assert same.is_same(same.thumbnail(noise))
    with_code = cv2.cvtColor(scene(TOKEN), cv2.COLOR_BGR2GRAY)
    assert not same.is_same(same.thumbnail(with_code))
    moved = cv2.cvtColor(scene(TOKEN, shift=1), cv2.COLOR_BGR2GRAY)
    same.remember(same.thumbnail(with_code))
    assert not same.is_same(same.thumbnail(moved))


def test_specs() -> None:
    assert parse_source("0") == 0
    assert parse_source("camera:2") == 2
    assert parse_source(None) == 0
    assert parse_source("camera:/tmp/clip.avi") == "/tmp/clip.avi"
    assert parse_source("rtsp://10.0.0.5/stream") == "rtsp://10.0.0.5/stream"
    assert open_camera("camera:3").name == "camera:3"
    assert open_camera("/tmp/x.avi", loop=True).loop


# --- on video files ---------------------------------------------------------------------------


def test_video_gives_exactly_the_expected_scans_in_order(clip: Path, cameras: list[Camera]
                                                         ) -> None:
    events = Events()
    camera = Camera(str(clip))
    cameras.append(camera)
    camera.start(events)
    events.wait_for(status("camera_video_ended"), timeout=30)
    assert camera.join(timeout=5)
    assert events.codes() == EXPECTED
    assert events.statuses() == [(DeviceState.READY, "camera_ready"),
                                 (DeviceState.MISSING, "camera_video_ended")]
    assert events.threads == {camera.name}  # delivered on the camera's own thread
    stats = camera.stats
    assert stats.frames == sum(s.frames for s in SCRIPT)
    assert stats.skipped > 0.5 * stats.frames  # still frames are not decoded again
    assert stats.decoded + stats.skipped == stats.frames
    assert stats.codes == len(EXPECTED)


def test_video_in_a_loop_reports_again_each_time_round(clip: Path, cameras: list[Camera]
                                                       ) -> None:
    events = Events()
    camera = open_camera(f"camera:{clip}", loop=True)
    cameras.append(camera)
    camera.start(events)
    for _ in range(5):
        events.wait_for(lambda e: isinstance(e, CodeScanned), timeout=30)
    start = time.monotonic()
    camera.stop()
    assert time.monotonic() - start < 1.0
    assert events.codes()[:5] == EXPECTED + EXPECTED[:2]
    assert (DeviceState.MISSING, "camera_video_ended") not in events.statuses()


def test_realtime_playback_follows_the_clock_and_stops_promptly(clip: Path,
                                                                cameras: list[Camera]) -> None:
    events = Events()
    camera = Camera(str(clip), realtime=True)
    cameras.append(camera)
    start = time.monotonic()
    camera.start(events)
    events.wait_for(lambda e: isinstance(e, CodeScanned), timeout=10)
    first_code = time.monotonic() - start
    assert 0.4 <= first_code < 2.0  # A appears at 0.5 s of the clip's time
    t0 = time.monotonic()
    camera.stop()
    assert time.monotonic() - t0 < 1.0
    assert camera.join(0)
    time.sleep(0.3)
    assert events.codes() == [TOKEN]  # nothing after stop()


def test_a_failing_sink_does_not_stop_the_camera(clip: Path, cameras: list[Camera],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    calls = []

    def sink(event: DeviceEvent) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("a bug in the consumer")
        events(event)

    camera = Camera(str(clip))
    cameras.append(camera)
    camera.start(sink)
    events.wait_for(status("camera_video_ended"), timeout=30)
    assert events.codes() == EXPECTED  # the first event (camera_ready) was the one that failed
    assert any("sink failed" in r.message and r.exc_info for r in caplog.records)


# --- missing and lost sources -----------------------------------------------------------------


def test_missing_device_index_is_reported_and_retried(cameras: list[Camera]) -> None:
    events = Events()
    camera = open_camera("camera:97", retry_s=(0.05, 0.2))
    cameras.append(camera)
    camera.start(events)
    event = events.wait_for(status("camera_missing"), timeout=5)
    assert isinstance(event, DeviceStatus) and event.state is DeviceState.MISSING
    assert event.device == "camera" and event.name == "camera:97"
    deadline = time.monotonic() + 5
    while camera.stats.open_attempts < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert camera.stats.open_attempts >= 4  # it keeps trying, with a bounded backoff
    start = time.monotonic()
    camera.stop()
    assert time.monotonic() - start < 1.0
    assert events.statuses() == [(DeviceState.MISSING, "camera_missing")]  # sent once


def test_missing_or_broken_video_file_is_missing_not_a_crash(tmp_path: Path,
                                                             cameras: list[Camera]) -> None:
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00AVI this is no video" * 50)
    for source in (str(tmp_path / "nothing.avi"), str(broken)):
        events = Events()
        camera = Camera(source, retry_s=(0.05, 0.1))
        cameras.append(camera)
        camera.start(events)
        event = events.wait_for(status("camera_missing"), timeout=5)
        assert isinstance(event, DeviceStatus) and event.detail
        camera.stop()


def test_file_that_appears_later_is_picked_up(tmp_path: Path, clip: Path,
                                              cameras: list[Camera]) -> None:
    target = tmp_path / "later.avi"
    events = Events()
    camera = Camera(str(target), retry_s=(0.05, 0.1))
    cameras.append(camera)
    camera.start(events)
    events.wait_for(status("camera_missing"), timeout=5)
    target.write_bytes(clip.read_bytes())
    events.wait_for(status("camera_video_ended"), timeout=30)
    assert events.codes() == EXPECTED
    assert events.statuses() == [(DeviceState.MISSING, "camera_missing"),
                                 (DeviceState.READY, "camera_ready"),
                                 (DeviceState.MISSING, "camera_video_ended")]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_network_stream_is_read_and_reconnected_when_it_ends(clip: Path,
                                                             cameras: list[Camera]) -> None:
    """An HTTP stream from a server on 127.0.0.1: codes are read, and when the stream ends the
    camera reports it lost and reconnects (a live source has no "end")."""
    handler = functools.partial(_Quiet, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        events = Events()
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
        camera = Camera(url, retry_s=(0.05, 0.2), stream_timeout_s=3)
        cameras.append(camera)
        camera.start(events)
        events.wait_for(lambda e: isinstance(e, CodeScanned), timeout=20)
        events.wait_for(status("camera_lost"), timeout=20)
        events.wait_for(status("camera_ready"), timeout=20)
        camera.stop()
        assert events.codes()[0] == TOKEN
        assert camera.stats.open_attempts >= 2
    finally:
        server.shutdown()
        server.server_close()


def test_fps_benchmark_runs(tmp_path: Path) -> None:
    """bench/camera_fps.py end to end on short, small videos (speed is not checked here)."""
    bench = Path(__file__).resolve().parent.parent / "bench" / "camera_fps.py"
    proc = subprocess.run([sys.executable, str(bench), "--frames", "30", "--size", "640x360",
                           "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for row in ("no code, moving", "code in view, moving", "still scene", "goal: ", "command: "):
        assert row in proc.stdout, row
    assert list(tmp_path.iterdir()) == []  # the videos are removed

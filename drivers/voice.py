"""Spoken results for kiosk customers, with the espeak-ng speech engine.

`Voice` implements `terminal.ports.Speaker`: `say()` puts the text on a short queue and returns at
once; one worker thread runs `espeak-ng` for each utterance, one after the other. When no engine
is installed the voice is silent and says so in ONE log line (and one `DeviceStatus`
"voice_missing" to the sink, if there is one), so a kiosk without audio still works.

Languages: the terminal's language codes map to espeak-ng voices — "en" -> "en", "zh_CN" ->
"cmn" (espeak-ng 1.51 calls Mandarin "cmn", with "zh" and "zh-cmn" as aliases). Text goes to the
engine on standard input, never on its command line, so a text that starts with "-" is spoken,
not taken as an option. `to_wav=` writes each utterance to a numbered WAV file instead of the
sound card (espeak-ng -w): how tests check that real audio was produced, and handy on a machine
without a sound card.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from terminal.ports import DeviceState, DeviceStatus, EventSink

log = logging.getLogger(__name__)

#: The terminal's languages and the espeak-ng voice for each.
VOICES = {"en": "en", "zh_CN": "cmn"}
DEFAULT_RATE = 150  # words per minute; espeak-ng's own default (175) is quick for older people


def espeak_voice(lang: str) -> str:
    """The espeak-ng voice for a terminal language code ("zh_CN" -> "cmn", "de_AT" -> "de-at")."""
    if lang in VOICES:
        return VOICES[lang]
    if lang.lower().startswith("zh"):
        return "cmn"
    return lang.replace("_", "-").lower()


@dataclass(frozen=True)
class _Utterance:
    text: str
    lang: str


_STOP = object()


class Voice:
    """Speaks queued texts with espeak-ng on its own worker thread.

    `start(sink)` starts the thread (and finds the engine); `say()` never blocks — when the queue
    is full the oldest waiting text is dropped, since a stale result is worth less than the new
    one; `stop()` stops the utterance being spoken and joins the thread promptly.
    """

    name = "espeak-ng"

    def __init__(self, *, rate: int = DEFAULT_RATE, engine: str = "espeak-ng",
                 to_wav: str | Path | None = None, max_queue: int = 4,
                 timeout: float = 30.0) -> None:
        self.rate = rate
        self.engine = engine
        self.to_wav = Path(to_wav) if to_wav is not None else None
        self.timeout = timeout  # longest one utterance may take before it is cut off
        self._queue: queue.Queue[_Utterance | object] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._sink: EventSink | None = None
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0  # utterances queued or being spoken
        self._count = 0  # utterances spoken, numbers the WAV files
        self._path: str | None = None  # the engine, once found; None: silent
        self._warned_errors: set[str] = set()
        self.wav_files: list[Path] = []

    def start(self, sink: EventSink | None = None) -> None:
        """Find the engine and start the worker thread (status events go to `sink`)."""
        if self._thread is not None:
            raise RuntimeError("voice already started")
        self._sink = sink
        self._path = shutil.which(self.engine)
        if self.to_wav is not None:
            self.to_wav.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
        self._thread.start()

    @property
    def available(self) -> bool:
        """True when an engine was found at start()."""
        return self._path is not None

    def say(self, text: str, lang: str) -> None:
        """Queue `text` in `lang`; returns at once. Silent (no log) without an engine."""
        if self._stopping.is_set() or self._thread is None or self._path is None or not text:
            return
        item = _Utterance(text, lang)
        with self._idle:
            self._busy += 1
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(dropped, _Utterance):
                    log.info("voice: queue full, dropped %r", dropped.text)
                    self._finished()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything said so far has been spoken (True) or `timeout` passes."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self, timeout: float = 3.0) -> None:
        """Cut off the current utterance, drop the rest, and join the thread."""
        self._stopping.set()
        with self._lock:
            if self._process is not None:
                _kill(self._process)
        while True:  # make room for the stop marker; what is dropped is never spoken
            try:
                self._queue.put_nowait(_STOP)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    continue
                self._finished()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("voice: worker did not stop within %.1f s", timeout)

    def _run(self) -> None:
        if self._path is None:
            log.warning("voice: no speech engine (%s not found on PATH): spoken results are "
                        "off", self.engine)
            self._emit(DeviceStatus("voice", self.name, DeviceState.MISSING, "voice_missing"))
        else:
            self._emit(DeviceStatus("voice", self.name, DeviceState.READY, "voice_ready"))
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, _Utterance)
            try:
                if not self._stopping.is_set():
                    self._speak(item)
            except Exception:  # an engine problem must not end spoken results for good
                log.exception("voice: speaking %r failed", item.text)
            finally:
                self._finished()

    def _speak(self, item: _Utterance) -> None:
        assert self._path is not None
        args = [self._path, "-v", espeak_voice(item.lang), "-s", str(self.rate)]
        wav: Path | None = None
        if self.to_wav is not None:
            self._count += 1
            wav = self.to_wav / f"{self._count:04d}-{item.lang}.wav"
            args += ["-w", str(wav)]
        with self._lock:
            if self._stopping.is_set():
                return
            # its own process group, so stop() can end a wrapper script and its children
            self._process = subprocess.Popen(args, stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = self._process.communicate(item.text.encode("utf-8"), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(self._process)
            _, err = self._process.communicate()
            log.warning("voice: %r took longer than %.0f s and was cut off", item.text,
                        self.timeout)
        finally:
            with self._lock:
                process, self._process = self._process, None
        if self._stopping.is_set():
            return
        self._check(process.returncode, err.decode("utf-8", "replace"))
        if wav is not None and process.returncode == 0:
            self.wav_files.append(wav)

    def _check(self, returncode: int, stderr: str) -> None:
        """espeak-ng exits 0 even when the sound card is missing: read stderr too. Each
        distinct problem is logged once as a warning, then at debug level."""
        problem = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        if returncode == 0 and "error" not in stderr.lower():
            return
        key = f"{returncode}:{problem}"
        level = logging.DEBUG if key in self._warned_errors else logging.WARNING
        self._warned_errors.add(key)
        log.log(level, "voice: %s exited %d: %s", self.engine, returncode,
                problem or "(no message)")

    def _finished(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def _emit(self, event: DeviceStatus) -> None:
        if self._sink is None:
            return
        try:
            self._sink(event)
        except Exception:
            log.exception("voice: the event sink failed on %s", event)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the engine's process group (the engine may be a wrapper script)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        log.debug("voice: engine process %d already gone", process.pid)


def open_voice(arg: str | None = None, *, rate: int = DEFAULT_RATE) -> Voice:
    """The voice for a config value: "espeak-ng" (default), or a path to an espeak-ng binary."""
    return Voice(rate=rate, engine=arg or "espeak-ng")

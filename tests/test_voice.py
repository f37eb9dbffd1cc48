"""The voice speaks through the real espeak-ng (into WAV files, checked with `wave`), is silent
with one log line when there is no engine, never blocks the caller, and stops promptly."""

from __future__ import annotations

import array
import logging
import os
import shutil
import stat
import threading
import time
import wave
from pathlib import Path

import pytest

from drivers.voice import Voice, espeak_voice
from terminal.ports import DeviceEvent, DeviceState, DeviceStatus
from tests.needs import require


def need_espeak() -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng (Debian package espeak-ng)")


def audio(path: Path) -> tuple[float, int]:
    """Duration in seconds and peak amplitude of a 16-bit mono WAV (raises if it is not one)."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        frames = w.readframes(w.getnframes())
        samples = array.array("h", frames)
        return w.getnframes() / w.getframerate(), max(abs(s) for s in samples)


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[DeviceEvent, str]] = []

    def __call__(self, event: DeviceEvent) -> None:
        self.items.append((event, threading.current_thread().name))


@pytest.mark.parametrize(("lang", "text"), [("en", "Approved"), ("zh_CN", "已批准")])
def test_speaks_real_audio(tmp_path: Path, lang: str, text: str) -> None:
    need_espeak()
    events = Events()
    voice = Voice(to_wav=tmp_path)
    voice.start(events)
    try:
        voice.say(text, lang)
        assert voice.wait_idle(10)
    finally:
        voice.stop()
    (wav,) = voice.wav_files
    assert wav.name == f"0001-{lang}.wav"
    seconds, peak = audio(wav)
    assert 0.3 < seconds < 5 and peak > 3000  # speech, not silence
    assert events.items == [(DeviceStatus("voice", "espeak-ng", DeviceState.READY,
                                          "voice_ready"), "voice")]


def test_mandarin_is_not_english_reading_hanzi(tmp_path: Path) -> None:
    """The cmn voice speaks the characters; the en voice would spell them out at length."""
    need_espeak()
    voice = Voice(to_wav=tmp_path)
    voice.start()
    try:
        voice.say("余额不足", "zh_CN")
        voice.say("余额不足", "en")
        assert voice.wait_idle(10)
    finally:
        voice.stop()
    mandarin, english = (audio(w)[0] for w in voice.wav_files)
    assert mandarin < english


def test_rate_is_configurable(tmp_path: Path) -> None:
    need_espeak()
    durations = []
    for rate in (100, 250):
        voice = Voice(rate=rate, to_wav=tmp_path / str(rate))
        voice.start()
        voice.say("Your balance is twelve euros and fifty cents.", "en")
        assert voice.wait_idle(10)
        voice.stop()
        durations.append(audio(voice.wav_files[0])[0])
    assert durations[0] > 1.8 * durations[1]


def test_text_is_never_an_option(tmp_path: Path) -> None:
    need_espeak()
    voice = Voice(to_wav=tmp_path)
    voice.start()
    voice.say("--help", "en")
    assert voice.wait_idle(10)
    voice.stop()
    assert audio(voice.wav_files[0])[1] > 3000  # it was spoken, not taken as an option


def test_no_engine_is_silent_with_one_log_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without espeak-ng
    caplog.set_level(logging.DEBUG, logger="drivers.voice")
    events = Events()
    voice = Voice(to_wav=tmp_path / "wav")
    voice.start(events)
    for _ in range(10):
        voice.say("Approved", "en")
    assert voice.wait_idle(2)
    voice.stop()
    assert not voice.available and voice.wav_files == []
    assert list((tmp_path / "wav").iterdir()) == []
    records = [r for r in caplog.records if r.name == "drivers.voice"]
    assert len(records) == 1 and "espeak-ng not found" in records[0].getMessage()
    assert events.items == [(DeviceStatus("voice", "espeak-ng", DeviceState.MISSING,
                                          "voice_missing"), "voice")]


def slow_engine(directory: Path) -> Path:
    """An engine that takes 30 s per utterance, for the never-block and prompt-stop checks."""
    path = directory / "espeak-ng"
    path.write_text("#!/bin/sh\nsleep 30\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_say_never_blocks_and_stop_is_prompt(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    require(os.path.exists("/bin/sh") and shutil.which("sleep") is not None, "a POSIX shell")
    caplog.set_level(logging.INFO, logger="drivers.voice")
    voice = Voice(engine=str(slow_engine(tmp_path)), max_queue=2)
    voice.start()
    started = time.monotonic()
    for n in range(50):
        voice.say(f"result {n}", "en")
    assert time.monotonic() - started < 0.5  # while the first utterance "speaks" for 30 s
    assert not voice.wait_idle(0.2)
    started = time.monotonic()
    voice.stop()
    assert time.monotonic() - started < 2
    assert voice.wait_idle(1)
    assert any("queue full, dropped" in r.getMessage() for r in caplog.records)


def test_language_codes_map_to_espeak_voices() -> None:
    assert espeak_voice("en") == "en"
    assert espeak_voice("zh_CN") == "cmn"
    assert espeak_voice("zh_TW") == "cmn"
    assert espeak_voice("de_AT") == "de-at"

"""`cardpos cashier|kiosk|demo --screenshot`: the windows start from the command line, render
their start screen after startup settles, save a PNG of the asked size and exit."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from cardpos.demo import Seeded

CARDPOS = str(Path(sys.executable).with_name("cardpos"))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def cardpos(*args: str, display: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if not display:
        for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
            env.pop(name, None)
    return subprocess.run([CARDPOS, *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False)


def test_cashier_screenshot(ui_seeded: Seeded, tmp_path: Path) -> None:
    out = tmp_path / "cashier.png"
    run = cardpos("cashier", "--data", str(ui_seeded.data), "--reader", "sim", "--printer",
                  "sim", "--screenshot", str(out), "--size", "1280x720")
    assert run.returncode == 0, run.stderr[-2000:]
    assert png_size(out) == (1280, 720)


def test_demo_screenshot_in_chinese_then_the_demo_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("cardpos-demo-*"))
    run = cardpos("demo", "--lang", "zh_CN", "--screenshot", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    assert png_size(out) == (1920, 1080)
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("cardpos-demo-*")) == before


def test_kiosk_screenshot_is_portrait(ui_seeded: Seeded, tmp_path: Path) -> None:
    out = tmp_path / "kiosk.png"
    run = cardpos("kiosk", "--data", str(ui_seeded.data), "--reader", "sim", "--no-voice",
                  "--screenshot", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    assert png_size(out) == (1080, 1920)


def test_a_bad_size_is_refused_with_a_message(ui_seeded: Seeded, tmp_path: Path) -> None:
    run = cardpos("cashier", "--data", str(ui_seeded.data), "--reader", "sim",
                  "--screenshot", str(tmp_path / "x.png"), "--size", "big")
    assert run.returncode == 2
    assert "WIDTHxHEIGHT" in run.stderr
    assert not (tmp_path / "x.png").exists()


def test_cashier_on_a_missing_store_says_so(tmp_path: Path) -> None:
    run = cardpos("cashier", "--data", str(tmp_path / "none"), "--reader", "sim",
                  "--screenshot", str(tmp_path / "x.png"))
    assert run.returncode != 0
    assert run.stderr.strip() and "Traceback" not in run.stderr
    assert shutil.which(CARDPOS)


def test_a_window_without_a_display_is_refused(ui_seeded: Seeded) -> None:
    """Without a display the window would run unseen forever: a message instead."""
    run = cardpos("cashier", "--data", str(ui_seeded.data), "--reader", "sim", display=False)
    assert run.returncode == 2
    assert "no display" in run.stderr and "--screenshot" in run.stderr

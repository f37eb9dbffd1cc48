"""Smoke test of the core benchmark (bench/core.py): it runs end to end at tiny sizes and prints
its summary. Timing values are not checked — the benchmark asserts nothing about speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "core.py"


def test_core_benchmark_runs_and_prints_its_summary(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--cards", "3000", "--ops", "300", "--redeems", "100",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    summary = out[out.index("== summary"):]
    for expected in ("raw SELECT by uid", "decision: Terminal.inquire", "rules only",
                     "bare BEGIN IMMEDIATE; INSERT", "redeem: Terminal.redeem",
                     "import: 3,000 cards", "store size:", "decision / raw SELECT: p50",
                     "redeem / bare INSERT+COMMIT: p50",
                     "python ", "sqlite ", "platform ", "command: "):
        assert expected in summary, expected
    approved = re.search(r"redemptions approved: ([\d,]+) of ([\d,]+); journal chain verified: ok",
                         summary)
    assert approved is not None and approved.group(1) == approved.group(2), summary
    for section in ("== import", "== decision", "== durable redeem commit",
                    "== where the commit time goes"):
        assert section in out, section
    # The work directory lives under --dir and is removed at the end (no --keep).
    assert list(tmp_path.iterdir()) == []


def test_window_benchmark_runs_and_prints_its_figures() -> None:
    """bench/ui_start.py at one run and three taps: cold starts of the cashier, the kiosk and
    Qt alone, and taps through the cashier window, all printed (no speed is checked)."""
    bench = BENCH.with_name("ui_start.py")
    proc = subprocess.run([sys.executable, str(bench), "--runs", "1", "--taps", "3"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for expected in ("qt-only  min", "cashier  min", "kiosk    min", "of Qt alone",
                     "tap -> card shown: p50", "tap, 1, Enter -> approved + receipt: p50",
                     "(3 taps)"):
        assert expected in proc.stdout, expected

"""The sync benchmarks (bench/sync_ingest.py, sync_snapshot.py, online_auth.py) run end to
end at tiny sizes against the real PostgreSQL: exit 0 and their summary lines. Figures are not
checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import postgres
from tests.needs import require

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_sync_ingest_runs_and_is_exactly_once() -> None:
    require(postgres.reachable(), postgres.WHAT)
    out = _run("bench/sync_ingest.py", "--terminals", "2", "--entries", "20",
               "--naive-entries", "5", "--batch", "10", "--cards", "50",
               "--cards-per-terminal", "disjoint")
    assert "SUMMARY ingest batched=" in out and "exactly_once=ok" in out
    assert "ratio batched/naive:" in out


def test_sync_snapshot_runs_and_the_terminal_gets_every_card() -> None:
    require(postgres.reachable(), postgres.WHAT)
    out = _run("bench/sync_snapshot.py", "--cards", "300", "--changes", "30", "--limit", "100")
    assert "SUMMARY snapshot cards=300" in out and "delta_changes=30" in out
    assert "ok=yes" in out


def test_online_auth_runs_and_every_approval_is_a_hold() -> None:
    require(postgres.reachable(), postgres.WHAT)
    out = _run("bench/online_auth.py", "--terminals", "3", "--cards", "20", "--rate", "5",
               "--seconds", "1", "--closed-seconds", "1")
    assert "authorize, open loop" in out and "authorize, closed loop" in out
    assert "consistent" in out and "server p50" in out

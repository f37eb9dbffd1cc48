"""Tests that need a real part (a service, root, a device stack) call `require` first.

Outside CI a missing part skips the test with the reason; in CI (`.ci/run` sets
CARDPOS_REQUIRE_ALL=1) it fails instead, so nothing is silently left out.
"""

from __future__ import annotations

import os

import pytest


def require(ok: bool, why: str) -> None:
    """Skip when a test's real dependency is missing — or fail, in CI."""
    if ok:
        return
    if os.environ.get("CARDPOS_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI: {why}")
    pytest.skip(why)

"""Real file-system faults for store tests: a read-only mount and a file system that fills up.

Both use a small tmpfs, which needs root (CI runs as root); see tests/needs.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.needs import require


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextmanager
def tmpfs(size_kib: int) -> Iterator[Path]:
    """A fresh tmpfs of `size_kib` KiB, unmounted afterwards."""
    require(_can_mount(), "mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="cardpos-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


def remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)

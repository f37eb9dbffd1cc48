"""What every benchmark prints about the machine it ran on (scripts in bench/ import this as a
sibling: `python bench/X.py` puts bench/ on the import path)."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def dist_version(dist: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_lines(*dists: str) -> list[str]:
    """Python and library versions, platform, CPUs and the load average now."""
    libs = ", ".join(f"{d} {dist_version(d)}" for d in dists)
    return [f"python {platform.python_version()} ({platform.python_implementation()}); {libs}",
            f"platform {platform.platform()}; {os.cpu_count()} CPUs; machine {platform.machine()}",
            "load average (1/5/15 min) now: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())]

"""The folder a `spotify-sync worker` run's processes write their Prometheus values to
(multiprocess mode), and the clean-up of folders left behind.

A run removes its folder when it stops; a SIGKILLed run cannot. So each folder names its owner
(`owner.json`: the main process's PID, command line and start time), and every run first removes
the folders whose owner is gone (or, for a folder of an older version without an owner file,
that nobody has written to for a day).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from shared.services import is_ours, process_identity

PREFIX = "spotify-sync-metrics-"
OWNER_FILE = "owner.json"
UNOWNED_MAX_AGE_S = 86_400


def make_metrics_dir() -> str:
    """A fresh folder for this run, its owner recorded; stale ones removed first."""
    remove_stale_metrics_dirs()
    folder = tempfile.mkdtemp(prefix=PREFIX)
    (Path(folder) / OWNER_FILE).write_text(json.dumps(process_identity(os.getpid())))
    return folder


def remove_stale_metrics_dirs(parent: str | None = None) -> list[str]:
    """Remove the folders of runs that are gone; returns what was removed."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        if folder.is_dir() and _stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def _stale(folder: Path) -> bool:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
    except FileNotFoundError:
        return time.time() - folder.stat().st_mtime > UNOWNED_MAX_AGE_S
    except (OSError, ValueError):
        return False  # unreadable: not ours to judge
    return not is_ours(owner)

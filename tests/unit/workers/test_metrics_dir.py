"""A SIGKILLed worker run leaves its metrics folder behind; the next run removes it, and never the
folder of a run that still lives."""

import json
import os
import subprocess
import sys
import time

from shared.services import process_identity
from workers.metrics_dir import OWNER_FILE, PREFIX, remove_stale_metrics_dirs


def folder(parent, name, owner=None, age_s=0.0):
    path = parent / (PREFIX + name)
    path.mkdir()
    if owner is not None:
        (path / OWNER_FILE).write_text(json.dumps(owner))
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def test_folders_of_runs_that_are_gone_are_removed_and_live_ones_kept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed_run = process_identity(child.pid)
        live = folder(tmp_path, "live", process_identity(os.getpid()))
        reused_pid = folder(tmp_path, "reused", {**process_identity(os.getpid()), "start_ticks": 1})
        old_unowned = folder(tmp_path, "old", age_s=2 * 86_400)
        new_unowned = folder(tmp_path, "new")
        child.kill()
        child.wait()
        gone = folder(tmp_path, "gone", killed_run)
        removed = remove_stale_metrics_dirs(str(tmp_path))
        assert sorted(removed) == sorted(str(p) for p in (gone, reused_pid, old_unowned))
        assert live.exists() and new_unowned.exists()
    finally:
        child.kill()
        child.wait()

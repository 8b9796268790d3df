"""The emulator's own speed (issue 3's benchmark, bench/emulator_bench.py, run as it is): the
pipeline's figures mean something only while the emulator is not the bottleneck."""

from __future__ import annotations

import re
import subprocess
import sys

from bench.harness import ROOT, BenchError
from bench.report import Figure

TARGET_RPS = 1000
_THROUGHPUT = re.compile(r"throughput: ([\d,]+) requests/s")


def run(quick: bool) -> list[Figure]:
    # Its exit code says whether its target was met; the figure says that too, so only a
    # missing figure is an error here.
    result = subprocess.run([sys.executable, "-m", "bench.emulator_bench", *(["--quick"] if quick else [])],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    found = _THROUGHPUT.search(result.stdout)
    if not found:
        raise BenchError(f"bench.emulator_bench printed no figure: {(result.stdout + result.stderr)[-800:]}")
    rps = float(found.group(1).replace(",", ""))
    tool = "wrk" if "load from wrk" in result.stdout else "httpx (the load generator may be the limit)"
    return [Figure("emulator GET /tracks?ids= (50 ids)", round(rps), "req/s", against=f"one process; load: {tool}",
                   target=f">= {TARGET_RPS:,} req/s", met=rps >= TARGET_RPS)]

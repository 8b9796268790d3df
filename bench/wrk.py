"""wrk (`apt-get install wrk`) as a load generator: a list of request paths cycled through by N
keep-alive connections, each a closed loop (the next request when the last answer is in).

Why not Python clients for latency: on a 2-core machine the load generator shares the cores with
the server, and 8 client threads in one CPython process queue for its one GIL (a thread that was
ready waits up to a switch interval, 5 ms, for each other ready thread). Measured here against a
route that does nothing (`/health`, serve --workers 2, 8 clients): p99 32.5 ms from 8 httpx
threads in one process, 27.8 ms from 8 httpx processes, 11.8 ms from wrk; that was the harness,
not the server. wrk spends a few microseconds of CPU a request in C, so what it measures is the
service's latency under that concurrency. The Python clients stay where a figure needs the
answers' content (recall).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Each wrk thread has a Lua state of its own: setup() numbers them so that their connections start
# at different places in the list, and done() prints one JSON line the caller parses (latencies
# in microseconds, as wrk keeps them).
SCRIPT = """
local paths, counter, threads = {}, 0, 0
local headers = {}
setup = function(thread) thread:set("number", threads); threads = threads + 1 end
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  headers["Authorization"] = args[2] ~= "" and ("Bearer " .. args[2]) or nil
  counter = (number or 0) * 7919
end
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


class WrkError(RuntimeError):
    """wrk is missing, failed, or some of its requests did not get a 2xx answer."""


@dataclass(frozen=True)
class Load:
    """What one wrk run measured: requests answered, their rate, and latency percentiles (ms)."""

    requests: int
    per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def available() -> bool:
    return shutil.which("wrk") is not None


def run(base_url: str, paths: list[str], *, duration_s: float, connections: int = 8, threads: int = 2,
        token: str = "") -> Load:
    """Cycle through `paths` (each starting with /) for `duration_s` over `connections` connections.
    Raises WrkError when wrk is missing or any answer was not a 2xx (a figure over errors would
    measure the errors)."""
    if not available():
        raise WrkError("wrk is not installed (apt-get install wrk)")
    if not paths:
        raise WrkError("no paths to request")
    with tempfile.TemporaryDirectory() as tmp:
        script, path_file = Path(tmp, "load.lua"), Path(tmp, "paths.txt")
        script.write_text(SCRIPT)
        path_file.write_text("\n".join(paths) + "\n")
        result = subprocess.run(
            ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
             "--timeout", "30s", "-s", str(script), base_url, "--", str(path_file), token],
            capture_output=True, text=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise WrkError(f"wrk failed (exit {result.returncode}): {(result.stderr or result.stdout)[-400:]}")
    figures = json.loads(line.removeprefix("WRK_RESULT "))
    if figures["non_2xx"] or figures["socket_errors"]:
        raise WrkError(f"wrk against {base_url}: {figures['non_2xx']} answers were not 2xx and "
                       f"{figures['socket_errors']} requests met a socket error, of {figures['requests']}")
    return Load(figures["requests"], figures["requests"] / (figures["duration_us"] / 1e6),
                figures["p50_us"] / 1000, figures["p95_us"] / 1000, figures["p99_us"] / 1000, figures["max_us"] / 1000)

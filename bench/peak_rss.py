"""Run a command and report its own peak resident memory: `python -m bench.peak_rss -- CMD ...`
prints one JSON line {"returncode", "seconds", "max_rss_kib"} on stderr after the command's output
(the wall time from the command's start to its exit, the wrapper's own start-up left out).

Why a wrapper, not wait4 from the benchmark process itself: on exec, Linux carries the parent's
memory high-water mark into the child's ru_maxrss (the mm it replaces; with vfork that is the
parent's own), so a child of a large benchmark process would report the benchmark's peak. This
small, freshly started interpreter stands in between; what it adds is its own ~10 MB.
"""

import json
import os
import subprocess
import sys
import time


def main() -> int:
    command = sys.argv[sys.argv.index("--") + 1:]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    print(json.dumps({"returncode": process.returncode, "seconds": seconds, "max_rss_kib": usage.ru_maxrss}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

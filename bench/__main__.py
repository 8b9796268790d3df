"""`python -m bench [--quick] [--only NAME,...] [--results PATH]` (what `make bench` runs).

Runs each benchmark in turn (each in its own fresh database, Redis namespace and emulator),
prints one table of every figure against its limit or its same-run baseline, and writes the
figures, the machine, the date and the commit to bench/results.json. A benchmark that cannot run
(a process died, a wait ran out) is reported under the table, and the exit code is then 1; a
figure that misses its target is SHORT in the table but is not an error.

--quick runs a small version of each (seconds, not minutes) so CI keeps the harness working.
Its figures are not comparable with a full run's; do not commit its results.json.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from bench.report import Figure, print_table, write_results

# (name, module): in the order of issue 7's list. Each module has run(quick) -> list[Figure].
BENCHMARKS = [
    ("quota", "bench.quota"),
    ("saturation", "bench.saturation"),
    ("throughput", "bench.throughput"),
    ("db-stage", "bench.db_stage"),
    ("scale", "bench.scale"),
    ("recovery", "bench.recovery"),
    ("emulator", "bench.emulator_speed"),
    ("search", "bench.search"),
    ("finish", "bench.finish"),
    ("pace", "bench.pace"),
    ("enrichment", "bench.enrichment"),
]
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small version of each benchmark, for CI")
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(n for n, _ in BENCHMARKS))
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only.split(",")]
    if not chosen:
        parser.error(f"--only names none of: {', '.join(n for n, _ in BENCHMARKS)}")

    figures: list[Figure] = []
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    for name, module in chosen:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            figures += importlib.import_module(module).run(args.quick)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"[bench] {name} done in {seconds[name]:.1f} s", file=sys.stderr, flush=True)
    total_s = time.perf_counter() - started

    print(f"\nspotify-sync benchmarks ({'quick' if args.quick else 'full'} run, {total_s:.0f} s)\n")
    print_table(figures)
    for name, message in errors.items():
        print(f"ERROR {name}: {message}")
    write_results(figures, args.results, args.quick, errors=errors, seconds=seconds)
    print(f"\nresults: {args.results}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""What a benchmark reports: figures measured against a limit or a baseline of the same run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured figure. `against` is the limit or baseline it is compared with (same run),
    `target` the goal as text, `met` whether it was reached (None: informational)."""

    name: str
    value: float
    unit: str
    against: str = ""
    target: str = ""
    met: bool | None = None


def print_table(figures: list[Figure]) -> None:
    rows = [("figure", "value", "against (same run)", "target", "")]
    for f in figures:
        verdict = "" if f.met is None else ("ok" if f.met else "SHORT")
        rows.append((f.name, f"{_fmt(f.value)} {f.unit}".strip(), f.against, f.target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def write_results(figures: list[Figure], path: Path, quick: bool, *, errors: dict[str, str] | None = None,
                  seconds: dict[str, float] | None = None) -> None:
    """`errors`: benchmark -> why it could not run; `seconds`: benchmark -> how long it took."""
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        # Figures measured on a checkout with uncommitted changes are not the commit's figures.
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "figures": [asdict(f) for f in figures],
        "errors": errors or {},
        "seconds": seconds or {},
    }
    path.write_text(json.dumps(results, indent=2) + "\n")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

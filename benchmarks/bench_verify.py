"""How long `flowspec verify` takes on every spec in specs/, in float64, default settings.

    python benchmarks/bench_verify.py [--repeats 3]

Per spec: blocks, checks run, and the median wall time of `flowspec.verify(spec)` over
the repeats (compile, perturbation and every check), measured in one process after one
warm-up run (imports, first-call set-up); and the total for the folder, with the
`flowspec verify specs/` command timed as a process once.  Target: ≤ 60 s for the
folder on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import flowspec

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    specs = sorted((ROOT / "specs").glob("*.flow"))
    flowspec.verify(specs[0])  # warm-up: imports and first-call set-up
    rows, total = [], 0.0
    for spec in specs:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = flowspec.verify(spec)
            times.append(time.perf_counter() - start)
        assert report.ok, str(report)
        median = statistics.median(times)
        total += median
        checks = sum(len(r.checks) for r in report.rows)
        rows.append((spec.name, len(report.rows) - 1, checks, median))
    start = time.perf_counter()
    cli = subprocess.run(
        [sys.executable, "-m", "flowspec", "verify", str(ROOT / "specs")],
        capture_output=True,
        text=True,
    )
    process = time.perf_counter() - start
    assert cli.returncode == 0, cli.stdout + cli.stderr
    print("| spec | blocks | checks | verify (median) |")
    print("|---|---:|---:|---:|")
    for name, blocks, checks, median in sorted(rows, key=lambda r: -r[3]):
        print(f"| `{name}` | {blocks} | {checks} | {median:.2f} s |")
    print(f"| **all {len(rows)} specs** (sum of medians) | | | **{total:.1f} s** |")
    print(f"| `flowspec verify specs/` as a process | | | **{process:.1f} s** |")


if __name__ == "__main__":
    main()

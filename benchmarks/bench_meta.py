"""Meta-device dry run of a large Glow vs a CPU build at 1/16 of the width (issue 13).

    python benchmarks/bench_meta.py [--repeats 3]

The Glow of issue 13 (3×256×256, 3 levels × 48 steps, conv hidden 1024; 207,334,656
parameters) compiled with ``device="meta"``, against the same flow compiled on the CPU
with hidden 64 (1/16 of the width).  Each run is a fresh subprocess (so peak RSS, from
``resource.getrusage``, is of the whole process, torch import included); the two are run
in interleaved repeats and the table gives medians.  Also: ``compile(device="meta")``
of every flow in specs/ (what ``flowspec summary --meta`` builds), total time in one
process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLOW = """block step(x, hidden=512) {{
    x = actnorm(x)
    x = invconv(x)
    x = coupling.affine(x, net=conv(hidden=hidden, kernel=3), mask=channel)
    return x
}}
flow big {{
    input x: [3, 256, 256]
    x = squeeze(x)
    repeat 48 {{ x = step(x, hidden={h}) }}
    a, x = split(x)
    x = squeeze(x)
    repeat 48 {{ x = step(x, hidden={h}) }}
    b, x = split(x)
    x = squeeze(x)
    repeat 48 {{ x = step(x, hidden={h}) }}
    output a, b, x
}}
"""
RUN = """import resource, sys, time
t = time.perf_counter()
import flowspec
f = flowspec.compile(sys.argv[1], device=sys.argv[2] or None, max_params=None)
n = sum(p.numel() for p in f.parameters())
print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
ALL = """import glob, time
t = time.perf_counter()
import flowspec
from flowspec.driver import Compilation
for p in sorted(glob.glob("specs/*.flow")):
    for name in Compilation.of(open(p).read()).flow_names():
        flowspec.compile(p, flow=name, device="meta")
print(time.perf_counter() - t)
"""


def run(spec: Path, device: str) -> tuple[int, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(spec), device],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp, "big.flow"), Path(tmp, "small.flow")
        big.write_text(GLOW.format(h=1024))
        small.write_text(GLOW.format(h=64))
        rows: dict[str, list[tuple[int, float, float]]] = {"meta": [], "cpu": []}
        for _ in range(args.repeats):
            rows["meta"].append(run(big, "meta"))
            rows["cpu"].append(run(small, ""))
    print("| build | parameters | time (s) | peak RSS (MB) |")
    print("| --- | --- | --- | --- |")
    for label, key in (("meta, hidden 1024", "meta"), ("CPU, hidden 64 (1/16)", "cpu")):
        n = rows[key][0][0]
        t = statistics.median(r[1] for r in rows[key])
        rss = statistics.median(r[2] for r in rows[key])
        print(f"| {label} | {n:,} | {t:.2f} | {rss:.0f} |")
    total = subprocess.run(
        [sys.executable, "-c", ALL], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    print(f"\nmeta compile of every flow in specs/: {float(total):.2f} s (one process)")


if __name__ == "__main__":
    main()

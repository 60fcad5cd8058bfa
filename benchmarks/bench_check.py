"""How fast `flowspec check` is: parse, lower and all passes, and the CLI as a process.

    python benchmarks/bench_check.py [--repeats 20]

Specs: Real NVP with 40 blocks (20 couplings + 20 permutations), and a multi-scale
Glow on [3, 32, 32] unrolled to 300 blocks.  Times are medians over repeats; the CLI
is timed against `python -c pass` in the same run (the interpreter's own start-up on
this machine), interleaved, as the median of per-repeat ratios; a row for importing
flowspec's check-time dependencies alone (lark, dataclasses, argparse, json) shows how
much of the ratio is theirs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowspec.checks import CHECKS
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.elaborate import elaborate
from flowspec.ir.lower import lower
from flowspec.syntax import dsl


def realnvp_spec(couplings: int = 20) -> str:
    return f"""
flow realnvp40 {{
    input x: [16]
    repeat {couplings} {{
        x = coupling.affine(x, net=mlp(hidden=[128, 128], act=relu))
        x = reverse(x)
    }}
    output x
}}
"""


def glow_spec(levels: int = 3, steps: int = 32) -> str:
    """Multi-scale Glow: per level squeeze, `steps` × (actnorm, invconv, coupling),
    then split off half the channels (except at the last level)."""
    body = ["    input x: [3, 32, 32]"]
    outputs = []
    for level in range(levels):
        body.append("    x = squeeze(x)")
        body.append(f"    repeat {steps} {{ x = glow_step(x) }}")
        if level < levels - 1:
            body.append(f"    z{level}, x = split(x)")
            outputs.append(f"z{level}")
    outputs.append("x")
    body.append(f"    output {', '.join(outputs)}")
    return (
        "block glow_step(x, hidden=64) {\n"
        "    x = actnorm(x)\n    x = invconv(x)\n"
        "    x = coupling.affine(x, mask=channel, net=conv(hidden=hidden))\n"
        "    return x\n}\n\nflow glow {\n" + "\n".join(body) + "\n}\n"
    )


def time_stages(text: str, repeats: int) -> dict[str, float]:
    parse, low, passes, total = [], [], [], []
    for _ in range(repeats):
        src = Source("<bench>", text)
        t0 = time.perf_counter()
        program, diags = dsl.parse(src)
        t1 = time.perf_counter()
        graphs, ldiags = lower(program)
        t2 = time.perf_counter()
        out = []
        for fg in graphs:
            rf, found = elaborate(fg)
            out.extend(found)
            for check in CHECKS:
                out.extend(check(rf))
        t3 = time.perf_counter()
        assert not diags and not ldiags and not [d for d in out if d.is_error], out[:3]
        parse.append(t1 - t0)
        low.append(t2 - t1)
        passes.append(t3 - t2)
        total.append(t3 - t0)
    n_blocks = len(graphs[0].blocks())
    return {
        "blocks": n_blocks,
        "parse": statistics.median(parse),
        "lower": statistics.median(low),
        "passes": statistics.median(passes),
        "total": statistics.median(total),
    }


def time_processes(commands: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each command, run in turn once per repeat (interleaved, so drift on
    a shared machine hits them alike)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, args in commands.items():
            t0 = time.perf_counter()
            subprocess.run(args, check=False, capture_output=True)
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(times: list[float], base: list[float]) -> float:
    """The median over repeats of a command's time over the reference's, same repeat."""
    return statistics.median(t / b for t, b in zip(times, base, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    # warm the parser's table cache as a user's second run would have it
    assert not Compilation(Source("<warm>", realnvp_spec(2))).errors

    print("| spec | blocks | parse | lower | passes | parse + lower + passes | target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, text, target in (
        ("Real NVP, 40 blocks", realnvp_spec(20), 50),
        ("Glow [3, 32, 32], 302 blocks", glow_spec(3, 33), 300),
    ):
        r = time_stages(text, args.repeats)
        print(
            f"| {name} | {r['blocks']} | {1e3 * r['parse']:.1f} ms | {1e3 * r['lower']:.1f} ms"
            f" | {1e3 * r['passes']:.1f} ms | **{1e3 * r['total']:.1f} ms** | ≤ {target} ms |"
        )

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.flow"
        small.write_text(realnvp_spec(4))
        glow = Path(tmp) / "glow.flow"
        glow.write_text(glow_spec(3, 33))
        py = [sys.executable]
        times = time_processes(
            {
                "pass": [*py, "-c", "pass"],
                # what flowspec's dependencies cost before any of its own code runs
                "floor": [*py, "-c", "import argparse, dataclasses, json, lark"],
                "small": [*py, "-m", "flowspec", "check", str(small)],
                "glow": [*py, "-m", "flowspec", "check", str(glow)],
            },
            args.repeats,
        )
        imports = subprocess.run(
            [*py, "-X", "importtime", "-m", "flowspec", "check", str(small)],
            capture_output=True,
            text=True,
            check=False,
        ).stderr
    torch_loaded = any(line.rstrip().endswith(" torch") for line in imports.splitlines())
    print()
    print("| process | median wall time | ÷ `python -c pass` (paired) | target |")
    print("|---|---:|---:|---:|")
    rows = (
        ("pass", "`python -c pass` (reference)", ""),
        ("floor", "`import argparse, dataclasses, json, lark` (the dependencies alone)", ""),
        ("small", "`flowspec check` small spec", "≤ 3×"),
        ("glow", "`flowspec check` Glow, 302 blocks", ""),
    )
    for key, label, target in rows:
        median = statistics.median(times[key])
        ratio = paired_ratio(times[key], times["pass"])
        print(f"| {label} | {1e3 * median:.0f} ms | {ratio:.2f} | {target} |")
    print(f"\ntorch imported by `flowspec check`: {'YES' if torch_loaded else 'no'}")


if __name__ == "__main__":
    main()

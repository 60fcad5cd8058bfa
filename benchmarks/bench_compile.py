"""Compiled module vs a hand-written PyTorch Real NVP of the same architecture.

    python benchmarks/bench_compile.py [--repeats 30] [--jit] [--validate]

Real NVP, d = 16, 8 affine couplings, mlp hidden [128, 128], float32, 2 threads, at
batch 4096 and 256: `log_prob` (no grad), `sample`, and one Adam training step.  The two
modules are timed in interleaved repeats (so drift on this shared machine hits both
alike); the table gives medians and the median of the per-repeat ratios
compiled ÷ hand-written.  Also: spec → module compile time, and with --jit,
torch.compile of the generated forward and inverse against the hand-written eager module;
with --validate, the cost of run-time validation (the default) against the same module with
``validate=False``, in interleaved repeats at batch 4096 and 256.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import flowspec
from benchmarks.handwritten import RealNVP

SPEC = """
flow realnvp16 {
    input x: [16]
    repeat 8 {
        x = coupling.affine(x, net=mlp(hidden=[128, 128], act=relu))
        x = reverse(x)
    }
    output x
}
"""


def timer(fn: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def interleaved(ours: Callable, theirs: Callable, repeats: int, inner: int):
    for _ in range(3):  # warm-up
        ours()
        theirs()
    t_ours, t_theirs, ratios = [], [], []
    for r in range(repeats):
        if r % 2:
            a, b = timer(ours, inner), timer(theirs, inner)
        else:
            b, a = timer(theirs, inner), timer(ours, inner)
        t_ours.append(a)
        t_theirs.append(b)
        ratios.append(a / b)
    return statistics.median(t_ours), statistics.median(t_theirs), statistics.median(ratios)


def tasks(flow, batch: int):
    x = torch.randn(batch, 16)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4)

    def log_prob():
        with torch.no_grad():
            flow.log_prob(x)

    def sample():
        flow.sample(batch)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = -flow.log_prob(x).mean()
        loss.backward()
        opt.step()

    return {"log_prob": log_prob, "sample": sample, "train step": train_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--jit", action="store_true", help="also time jit=True")
    parser.add_argument(
        "--validate", action="store_true", help="only time validation on against off"
    )
    args = parser.parse_args()
    if args.validate:
        validation_cost(args.repeats)
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)

    compile_times = []
    for _ in range(20):
        start = time.perf_counter()
        flow = flowspec.compile(SPEC)
        compile_times.append(time.perf_counter() - start)
    hand = RealNVP()
    assert sum(p.numel() for p in flow.parameters()) == sum(p.numel() for p in hand.parameters())

    print(
        f"spec → module (flowspec.compile): median {1e3 * statistics.median(compile_times):.1f}"
        " ms (target ≤ 50 ms)\n"
    )
    print("| batch | task | compiled | hand-written | compiled ÷ hand-written | target |")
    print("|---:|---|---:|---:|---:|---:|")
    for batch, inner, target in ((4096, 3, 1.02), (256, 20, 1.05)):
        ours, theirs = tasks(flow, batch), tasks(hand, batch)
        for name in ours:
            a, b, ratio = interleaved(ours[name], theirs[name], args.repeats, inner)
            print(
                f"| {batch} | {name} | {1e3 * a:.2f} ms | {1e3 * b:.2f} ms | **{ratio:.3f}** |"
                f" ≤ {target} |"
            )

    if args.jit:
        jitted = flowspec.compile(SPEC, jit=True)
        print("\n| batch | task | jit=True | hand-written eager | ratio | target |")
        print("|---:|---|---:|---:|---:|---:|")
        for batch, inner in ((4096, 3), (256, 20)):
            ours, theirs = tasks(jitted, batch), tasks(hand, batch)
            for name in ("log_prob", "sample"):
                a, b, ratio = interleaved(ours[name], theirs[name], args.repeats, inner)
                print(
                    f"| {batch} | {name} | {1e3 * a:.2f} ms | {1e3 * b:.2f} ms | "
                    f"**{ratio:.3f}** | ≤ 0.85 |"
                )


def validation_cost(repeats: int) -> None:
    """Validation on (the default) ÷ off, on two modules with the same parameters."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    on = flowspec.compile(SPEC)
    off = flowspec.compile(SPEC, validate=False)
    off.load_state_dict(on.state_dict())
    assert on.validate and not off.validate
    print("| batch | task | validate=True | validate=False | on ÷ off | target |")
    print("|---:|---|---:|---:|---:|---:|")
    checks = []
    for batch, inner, target in ((4096, 3, "≤ 1.02"), (256, 20, "")):
        ours, theirs = tasks(on, batch), tasks(off, batch)
        for name in ours:
            a, b, ratio = interleaved(ours[name], theirs[name], repeats, inner)
            print(
                f"| {batch} | {name} | {1e3 * a:.2f} ms | {1e3 * b:.2f} ms | **{ratio:.3f}** |"
                f" {target} |"
            )
            if name == "log_prob":
                checks.append((batch, b, check_time(on, batch, repeats)))
    # the checks alone, timed on their own: less noisy than a difference of two timings
    # on a shared machine
    print("\n| batch | the checks of one log_prob | ÷ log_prob without them |")
    print("|---:|---:|---:|")
    for batch, off_time, t in checks:
        print(f"| {batch} | {1e6 * t:.1f} µs | **{t / off_time:.4f}** |")


def check_time(flow, batch: int, repeats: int) -> float:
    """Median time of the validation ``log_prob`` runs before any block: the shape
    check, the dtype check and the fused isfinite reduction with its one sync."""
    from flowspec.runtime import validate

    x = torch.randn(batch, 16)
    check = validate._CHECKS["log_prob"]
    return statistics.median(timer(lambda: check(flow, x), 100) for _ in range(repeats))


if __name__ == "__main__":
    main()

"""How `flowspec check` scales: parse + lower + all passes against statement count and
file size, so a quadratic step shows as a growing time per statement.

    python benchmarks/bench_scale.py [--repeats 5]

Specs: N statements `x = reverse(x)` in one flow (1k, 5k, 20k; the 20k spec holds
20,003 statements with its header, `input` and `output`, so it is checked with the
statement limit off and stops at E203, 10,000 blocks), 20,000 shuffles that all differ
(`seed=i`), `.flow` files of ~100 KB and ~1 MB of couplings and permutations (checked
with the default limits), and the same 1k, 5k and 20k reverses and 20k shuffles in
YAML.  Each repeat runs every case once, in turn (interleaved,
so drift on a shared machine hits all cases alike); times are medians of wall time
and of CPU time (the process's own: on a busy machine wall time also counts waiting).
"""

from __future__ import annotations

import argparse
import statistics
import time

from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.syntax.limits import Limits

NO_STATEMENT_LIMIT = Limits(max_statements=None)


def reverses(n: int) -> str:
    body = "".join("    x = reverse(x)\n" for _ in range(n))
    return f"flow f {{\n    input x: [2]\n{body}    output x\n}}\n"


def couplings(size: int) -> tuple[str, int]:
    """A .flow spec of about ``size`` bytes, and its number of statements."""
    pair = (
        "    x = coupling.affine(x, net=mlp(hidden=[16, 16], act=relu), scale=softclamp, "
        "mask=alternate)\n"
        "    x = reverse(x)\n"
    )
    n = max(size // len(pair), 1)
    return f"flow f {{\n    input x: [4]\n{pair * n}    output x\n}}\n", 2 * n + 3


def shuffles(n: int) -> str:
    """N statements that all differ (each shuffle has its own seed)."""
    body = "".join(f"    x = shuffle(x, seed={i})\n" for i in range(n))
    return f"flow f {{\n    input x: [2]\n{body}    output x\n}}\n"


def yaml_shuffles(n: int) -> str:
    """The YAML of :func:`shuffles`: no statement repeats another, so the schema check
    of each is done (none is known clean from an earlier one)."""
    return yaml_reverses(n, "{op: shuffle, in: x, seed: %d}")


def yaml_reverses(n: int, step: str = "{op: reverse, in: x}") -> str:
    body = "".join(f"      - {step % i if '%' in step else step}\n" for i in range(n))
    return (
        "flowspec: 1\nflows:\n  - name: f\n    input: {name: x, shape: [2]}\n"
        f"    body:\n{body}    output: [x]\n"
    )


def check_once(path: str, text: str, limits: Limits) -> tuple[float, float, str]:
    """Wall and CPU time of one check, and its outcome."""
    start, cpu = time.perf_counter(), time.process_time()
    diags = Compilation(Source(path, text), limits).diagnostics
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    errors = sorted({d.code for d in diags if d.is_error})
    return elapsed, cpu, ", ".join(errors) or "clean"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-yaml", action="store_true", help="skip the YAML cases")
    args = parser.parse_args()

    cases = []  # (label, path, text, statements, limits)
    # (syntax, file, N reverses, N distinct shuffles, statements besides the body)
    syntaxes = [("`.flow`", "s.flow", reverses, shuffles, 3)]
    if not args.no_yaml:
        syntaxes.append(("YAML", "s.yaml", yaml_reverses, yaml_shuffles, 2))
    for syntax, path, same, distinct, extra in syntaxes:
        for n in (1_000, 5_000, 20_000):
            limits = NO_STATEMENT_LIMIT if n >= 20_000 else Limits()
            cases.append((f"{syntax}, {n:,} statements", path, same(n), n + extra, limits))
        label = f"{syntax}, 20,000 distinct shuffles"
        cases.append((label, path, distinct(20_000), 20_000 + extra, NO_STATEMENT_LIMIT))
        if syntax == "`.flow`":
            for size, label in ((100_000, "100 KB"), (1_000_000, "1 MB")):
                text, n = couplings(size)
                cases.append((f"`.flow`, {label} of couplings", "c.flow", text, n, Limits()))

    # warm the parser's table cache and the lazy imports, as a user's second run has them
    check_once("w.flow", reverses(2), Limits())
    check_once("w.yaml", yaml_reverses(2), Limits())

    wall: dict[str, list[float]] = {c[0]: [] for c in cases}
    cpu: dict[str, list[float]] = {c[0]: [] for c in cases}
    outcome: dict[str, str] = {}
    for _ in range(args.repeats):
        for label, path, text, _n, limits in cases:
            elapsed, used, outcome[label] = check_once(path, text, limits)
            wall[label].append(elapsed)
            cpu[label].append(used)

    print(
        "| spec | statements | size | result | parse + lower + check (wall) | CPU time "
        "| CPU per statement |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for label, _path, text, n, _limits in cases:
        median, used = statistics.median(wall[label]), statistics.median(cpu[label])
        size = len(text.encode())
        shown = f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.0f} KB"
        print(
            f"| {label} | {n:,} | {shown} | {outcome[label]} | **{median:.2f} s** "
            f"| {used:.2f} s | {1e6 * used / n:.0f} µs |"
        )


if __name__ == "__main__":
    main()

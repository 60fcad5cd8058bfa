"""Meta-device dry runs (issue 13): built on meta from the start, parameter counts equal
to the static count and to the analytic count, shapes equal to a CPU build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import flowspec
from flowspec.driver import Compilation
from flowspec.summary import parameter_counts

GLOW = """block step(x, hidden=512) {{
    x = actnorm(x)
    x = invconv(x)
    x = coupling.affine(x, net=conv(hidden=hidden, kernel=3), mask=channel)
    return x
}}
flow big {{
    input x: [3, {side}, {side}]
    x = squeeze(x)
    repeat {k} {{ x = step(x, hidden={h}) }}
    a, x = split(x)
    x = squeeze(x)
    repeat {k} {{ x = step(x, hidden={h}) }}
    b, x = split(x)
    x = squeeze(x)
    repeat {k} {{ x = step(x, hidden={h}) }}
    output a, b, x
}}
"""


def analytic(k: int, h: int) -> int:
    """Glow parameters by hand: per step at c channels, actnorm 2c, invconv (LU) 2c²+c
    (L and U stored as full c×c matrices, masked in use, and log s), coupling conv
    c/2→h→h→c (3×3, 1×1, 3×3)."""
    total = 0
    for c in (12, 24, 48):
        a = c // 2
        coupling = (9 * a * h + h) + (h * h + h) + (9 * h * c + c)
        total += k * (2 * c + 2 * c * c + c + coupling)
    return total


def _trainable(flow: flowspec.Flow) -> int:
    return sum(p.numel() for p in flow.parameters() if p.requires_grad)


def test_meta_glow_matches_static_and_analytic_and_cpu_shapes() -> None:
    spec = GLOW.format(side=16, k=2, h=16)
    meta = flowspec.compile(spec, device="meta")
    cpu = flowspec.compile(spec)
    assert all(p.device.type == "meta" for p in meta.parameters())
    static = sum(parameter_counts(Compilation.of(spec).flow_graph()))
    assert _trainable(meta) == static == _trainable(cpu)
    shapes = {k: (v.shape, v.dtype) for k, v in cpu.state_dict().items()}
    assert {k: (v.shape, v.dtype) for k, v in meta.state_dict().items()} == shapes


def test_analytic_formula_is_the_cpu_count() -> None:
    # the hand formula is checked on a real build, so the slow test may trust it
    assert _trainable(flowspec.compile(GLOW.format(side=16, k=1, h=8))) == analytic(1, 8)


def test_meta_regions_need_no_device() -> None:
    spec = 'flow f {\n    input x: [4]\n    on "cuda:3" { x = actnorm(x) }\n    output x\n}\n'
    flow = flowspec.compile(spec, device="meta")
    assert {p.device.type for p in flow.parameters()} == {"meta"}


@pytest.mark.slow
def test_meta_dry_run_of_the_big_glow_is_small(tmp_path: Path) -> None:
    # a generous memory bound (the target is 300 MB; see benchmarks/bench_meta.py), read
    # from VmHWM: getrusage's ru_maxrss survives exec, so a child of a large pytest
    # process would report the parent's peak; no time bound (times are benchmarked)
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the peak RSS from /proc (Linux)")
    path = tmp_path / "big.flow"
    path.write_text(GLOW.format(side=256, k=48, h=1024))
    code = (
        "import sys\n"
        "import flowspec\n"
        "f = flowspec.compile(sys.argv[1], device='meta', max_params=None)\n"
        "n = sum(p.numel() for p in f.parameters() if p.requires_grad)\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print(n, int(status) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    n, rss = out.stdout.split()
    assert int(n) == analytic(48, 1024)
    assert float(rss) < 600

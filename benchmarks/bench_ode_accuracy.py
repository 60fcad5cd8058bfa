"""How exactly an `ode` block inverts itself, per solver: the round trip to expect.

    python benchmarks/bench_ode_accuracy.py [--batch 64] [--scale 0.5] [--seed 0]

The block is `ode(x, net=mlp(hidden=[32], act=tanh), trace=exact, adjoint=false, ...)`
on [2] and [16], compiled from a spec, with every parameter moved by N(0, scale²) away
from its initialisation (zero for the last layer), the same weights for every solver (a
fixed seed; the float32 block is the float64 one cast).  For
each solver it prints the largest |x − inverse(forward(x))| and |ladj_fwd + ladj_inv|
over a batch of N(0, 1) inputs, and the dynamics evaluations per solve (nfe).  Adaptive
solvers run at the default rtol = atol = 1e-5; fixed-step ones at several `steps`, which
alone sets their error (they ignore rtol/atol).  `max |y - x|` says how far the dynamics
move the inputs, so the errors can be read against it.
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch

import flowspec
from flowspec.kinds.words import ADAPTIVE_SOLVERS, FIXED_STEP_SOLVERS
from flowspec.runtime.ode import ODE

STEPS = (10, 20, 100, 1000)


def spec(d: int, solver: str, steps: int | None) -> str:
    extra = f", steps={steps}" if steps is not None else ""
    return f"""flow f {{
    input x: [{d}]
    x = ode(x, net=mlp(hidden=[32], act=tanh), trace=exact, adjoint=false, solver={solver}{extra})
    output x
}}
"""


def perturbed(text: str, scale: float, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # the same initial weights for every solver
    flow = flowspec.compile(text, dtype=torch.float64)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def measure(flow: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    (block,) = (m for m in flow.modules() if isinstance(m, ODE))
    calls = [0]
    hook = block.dynamics.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, ladj = flow(x)
        back, ladj_inv = flow.inverse(y)
    hook.remove()
    return {
        "round trip": (back - x).abs().max().item(),
        "log-det": (ladj + ladj_inv).abs().max().item(),
        "moved": (y - x).abs().max().item(),
        "nfe": calls[0] / 2,
        "warned": bool(caught),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    configs = [(s, None) for s in ADAPTIVE_SOLVERS]
    configs += [(s, n) for s in FIXED_STEP_SOLVERS for n in STEPS]
    dims = (2, 16)
    inputs = {
        d: torch.randn(
            args.batch, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
        )
        for d in dims
    }
    print(f"torch {torch.__version__}; batch {args.batch}; perturbation N(0, {args.scale}²)")
    print(
        "each cell: d=2 / d=16; round trip max |x - inverse(forward(x))|, "
        "log-det max |ladj_fwd + ladj_inv|"
    )
    print(
        "| solver | steps | nfe | float64 round trip | float64 log-det "
        "| float32 round trip | float32 log-det |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    moved: dict[int, float] = {}
    notes = set()
    for solver, steps in configs:
        cells: dict[str, list[str]] = {k: [] for k in ("nfe", "rt64", "ld64", "rt32", "ld32")}
        for d in dims:
            flow64 = perturbed(spec(d, solver, steps), args.scale, args.seed)
            flow32 = copy.deepcopy(flow64).float()
            r64 = measure(flow64, inputs[d])
            r32 = measure(flow32, inputs[d].float())
            moved[d] = r64["moved"] if solver == "dopri5" else moved[d]
            if r64["warned"] or r32["warned"]:
                notes.add(solver)
            cells["nfe"].append(f"{r64['nfe']:.0f}")
            cells["rt64"].append(f"{r64['round trip']:.1e}")
            cells["ld64"].append(f"{r64['log-det']:.1e}")
            cells["rt32"].append(f"{r32['round trip']:.1e}")
            cells["ld32"].append(f"{r32['log-det']:.1e}")
        shown = "(rtol = atol = 1e-5)" if steps is None else str(steps)
        row = " | ".join(" / ".join(v) for v in cells.values())
        print(f"| {solver} | {shown} | {row} |", flush=True)
    print("max |y - x| (dopri5): " + ", ".join(f"d={d}: {m:.2f}" for d, m in moved.items()))
    for solver in sorted(notes):
        print(f"note: torchdiffeq warned while {solver} solved (a corrector did not converge)")


if __name__ == "__main__":
    main()

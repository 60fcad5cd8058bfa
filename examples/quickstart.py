"""Check, compile and fit specs/realnvp.flow on a built-in 2-D data set.

    python examples/quickstart.py [--steps 300] [--dataset moons|8gaussians]

Prints the held-out negative log-likelihood (nats per sample) before and after.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import flowspec
from flowspec.core.diagnostics import render_text
from flowspec.datasets import DATASETS
from flowspec.driver import Compilation

SPEC = Path(__file__).resolve().parent.parent / "specs" / "realnvp.flow"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="moons")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    comp = Compilation.of(args.spec)
    print(f"check {args.spec}: " + ("clean" if not comp.diagnostics else ""))
    if comp.diagnostics:
        print(render_text(comp.diagnostics, comp.sources))

    start = time.perf_counter()
    flow = flowspec.compile(args.spec)
    print(
        f"compiled `{flow.FLOW_NAME}` in {1e3 * (time.perf_counter() - start):.0f} ms: "
        f"{sum(p.numel() for p in flow.parameters()):,} parameters"
    )

    sample = DATASETS[args.dataset]
    g = torch.Generator().manual_seed(args.seed)
    train, test = sample(20_000, generator=g), sample(4_000, generator=g)

    def nll() -> float:
        flow.eval()
        with torch.no_grad():
            value = -flow.log_prob(test).mean().item()
        flow.train()
        return value

    before = nll()
    opt = torch.optim.Adam(flow.parameters(), lr=2e-3)
    start = time.perf_counter()
    for _ in range(args.steps):
        batch = train[torch.randint(0, len(train), (args.batch,))]
        loss = -flow.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = nll()
    print(
        f"held-out NLL on {args.dataset}: {before:.3f} → {after:.3f} nats "
        f"({args.steps} Adam steps in {time.perf_counter() - start:.1f} s)"
    )
    samples = flow.sample(5)
    print("5 samples:\n", samples)


if __name__ == "__main__":
    main()

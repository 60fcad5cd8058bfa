"""MAF held-out NLL over model seeds: flowspec with ``init=zero`` and ``init=random``
against zuko's MAF, on moons (nats) and digits (bits/dim).

    python benchmarks/bench_maf_seeds.py [--seeds 3] [--digits-seeds 2] [--steps 1000]

The training loop, data, batches and budget are ``bench_train.py``'s (Adam, lr 1e-3,
batch 256 / 128, seed-0 batches); only the seed of the initial weights varies.  Prints
each seed's result and the mean ± standard deviation per model (README, Training).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train as B

import flowspec
from flowspec.train.data import digits, load, split

SPECS = Path(__file__).resolve().parent / "specs"


def with_init(text: str, init: str) -> str:
    """The spec with every autoregressive block's ``init=`` set to ``init``."""
    text = re.sub(r",\s*init=\w+", "", text)
    return re.sub(r"(autoregressive\.affine\(x,[^)]*)\)", rf"\1, init={init})", text)


def run(dataset: str, seeds: int, steps: int) -> dict[str, list[float]]:
    import zuko

    if dataset == "moons":
        x, integer, batch, fraction, spec = load("moons").x, False, 256, 0.1, "maf2.flow"
    else:
        x, integer, batch, fraction, spec = digits(), True, 128, 0.2, "maf_digits.flow"
    tr, va = split(x, fraction, 0)
    if integer:
        tr, va = tr.reshape(len(tr), 64), va.reshape(len(va), 64)
    d = tr.shape[1]
    text = (SPECS / spec).read_text(encoding="utf-8")
    hidden = 32 if d == 2 else 256
    results: dict[str, list[float]] = {}
    for seed in range(seeds):
        models = {}
        for init in ("zero", "random"):
            torch.manual_seed(seed)
            f = flowspec.compile(with_init(text, init))
            models[f"flowspec MAF init={init}"] = (f, f.log_prob)
        torch.manual_seed(seed)
        z = zuko.flows.MAF(features=d, transforms=3, hidden_features=[hidden] * 2)
        models["zuko MAF"] = (z, lambda v, m=z: m().log_prob(v))
        for name, (model, log_prob) in models.items():
            _, loss = B.train(name, model, log_prob, tr, steps, batch, integer)
            nll = B.held_out(loss, model, va)
            results.setdefault(name, []).append(nll / (d * math.log(2)) if integer else nll)
        print(f"  {dataset} seed {seed}: "
              + ", ".join(f"{k} {v[-1]:.4f}" for k, v in results.items()), flush=True)  # fmt: skip
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--digits-seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for dataset, seeds in (("moons", args.seeds), ("digits", args.digits_seeds)):
        if seeds < 1:
            continue
        for name, values in run(dataset, seeds, args.steps).items():
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            print(f"{dataset} {name}: {statistics.mean(values):.3f} ± {sd:.3f} "
                  f"over {len(values)} seeds")  # fmt: skip


if __name__ == "__main__":
    main()

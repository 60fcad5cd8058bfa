"""Training quality and speed: flowspec's reference specs against zuko and nflows.

    python benchmarks/bench_train.py [--steps 1000] [--digits-steps 1000] [--ode-steps 100]
                                     [--repeats 3] [--no-ddp]

Every model is trained by the same loop: Adam (lr 1e-3), batch 256 (moons) / 128
(digits), step t's batch from ``flowspec.train.loop.batch_indices(seed, t)``, seed 0,
float32, 2 threads.  Reported: held-out NLL (nats) on moons (2,000 held-out of 20,000)
and bits/dim on digits (20 % held out, 16 grey levels, uniform dequantisation) after the
budget, and the wall time per 1,000 steps, measured after training in ``--repeats``
interleaved rounds of 20 steps per model (medians; the ratio column divides by zuko's
Real NVP in the same round).  FFJORD trains for ``--ode-steps`` only (its adaptive
solver is ~100× slower per step); its NLL is at that smaller budget.

zuko and nflows are an optional extra (``pip install -e ".[bench]"``); rows are skipped
when they are missing.  With DDP on (the default), also the throughput of
``flowspec train`` on 1 process vs ``torchrun --nproc_per_node 2`` at the same global
batch.
"""

from __future__ import annotations

import argparse
import math
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import flowspec
from flowspec.train.data import digits, load, split
from flowspec.train.loop import batch_indices

ROOT = Path(__file__).resolve().parent.parent
LN2 = math.log(2.0)


def flowspec_models(dataset: str) -> dict:
    if dataset == "moons":
        files = {
            "Real NVP": "specs/realnvp.flow",
            "NSF": "benchmarks/specs/nsf2.flow",
            "MAF": "benchmarks/specs/maf2.flow",
            "Residual Flow": "benchmarks/specs/residual2.flow",
            "FFJORD": "specs/ffjord.flow",
        }
    else:
        files = {
            "Real NVP": "benchmarks/specs/realnvp_digits.flow",
            "MAF": "benchmarks/specs/maf_digits.flow",
            "Glow-like": "benchmarks/specs/glow_digits.flow",
        }
    out = {}
    for name, path in files.items():
        torch.manual_seed(0)
        flow = flowspec.compile(ROOT / path)
        out[f"flowspec {name}"] = (flow, flow.log_prob)
    return out


def reference_models(d: int) -> dict:
    """zuko / nflows Real NVP and MAF with the flowspec specs' sizes (moons) or the
    digits specs' sizes (d = 64)."""
    out: dict = {}
    hidden_rnvp, layers_rnvp = (64, 8) if d == 2 else (128, 6)
    hidden_maf = 32 if d == 2 else 256
    try:
        import zuko

        torch.manual_seed(0)
        hidden = [hidden_rnvp] * 2
        z = zuko.flows.RealNVP(features=d, transforms=layers_rnvp, hidden_features=hidden)
        out["zuko Real NVP"] = (z, lambda x, f=z: f().log_prob(x))
        torch.manual_seed(0)
        m = zuko.flows.MAF(features=d, transforms=3, hidden_features=[hidden_maf] * 2)
        out["zuko MAF"] = (m, lambda x, f=m: f().log_prob(x))
    except ImportError:
        print("(zuko not installed: its rows are skipped)")
    try:
        from nflows.flows import MaskedAutoregressiveFlow, SimpleRealNVP

        torch.manual_seed(0)
        r = SimpleRealNVP(features=d, hidden_features=hidden_rnvp, num_layers=layers_rnvp,
                          num_blocks_per_layer=1)  # fmt: skip
        out["nflows Real NVP"] = (r, r.log_prob)
        torch.manual_seed(0)
        m = MaskedAutoregressiveFlow(features=d, hidden_features=hidden_maf, num_layers=3,
                                     num_blocks_per_layer=1)  # fmt: skip
        out["nflows MAF"] = (m, m.log_prob)
    except ImportError:
        print("(nflows not installed: its rows are skipped)")
    return out


def loss_fn(name: str, log_prob, integer: bool):
    """Mean NLL in nats of a batch; for integer data the references see (x + u)/16 and
    pay the −D·4·log 2 of the scaling, as a ``dequantize uniform(bits=4)`` flow does."""
    if not integer or name.startswith("flowspec"):
        return lambda x: -log_prob(x).mean()

    def dequantised(x):
        y = (x.float() + torch.rand(x.shape)) / 16
        return -(log_prob(y) - x.shape[1] * 4 * LN2).mean()

    return dequantised


def train(name, model, log_prob, x, steps, batch, integer):
    f = loss_fn(name, log_prob, integer)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(1, steps + 1):
        torch.manual_seed(step)
        loss = f(x[batch_indices(0, step, len(x), batch)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt, f


def held_out(f, model, x) -> float:
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        values = [f(c).item() * len(c) for c in x.split(1024)]
    model.train()
    return sum(values) / len(x)


def time_steps(f, model, opt, x, batch, n=20) -> float:
    start = time.perf_counter()
    for step in range(n):
        loss = f(x[batch_indices(1, step, len(x), batch)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / n * 1000


def run_set(dataset: str, steps: int, ode_steps: int, repeats: int) -> list[tuple]:
    if dataset == "moons":
        x, integer, batch = load("moons").x, False, 256
    else:
        x, integer, batch = digits(), True, 128
    tr, va = split(x, 0.2 if integer else 0.1, 0)
    if dataset == "digits":
        tr = tr.reshape(len(tr), 64)
        va = va.reshape(len(va), 64)
    d = tr.shape[1]
    models = {**flowspec_models(dataset), **reference_models(d)}
    state = {}
    for name, (model, log_prob) in models.items():
        budget = ode_steps if "FFJORD" in name else steps
        data_tr, data_va = tr, va
        if "Glow" in name:
            data_tr, data_va = tr.reshape(-1, 1, 8, 8), va.reshape(-1, 1, 8, 8)
        t0 = time.perf_counter()
        opt, f = train(name, model, log_prob, data_tr, budget, batch, integer)
        nll = held_out(f, model, data_va)
        score = nll / (d * LN2) if integer else nll
        print(f"  {dataset} {name}: {score:.4f} after {budget} steps "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
        state[name] = (model, opt, f, data_tr, budget, score)
    times: dict[str, list[float]] = {name: [] for name in state}
    for _ in range(repeats):
        for name, (model, opt, f, data_tr, *_rest) in state.items():
            n = 3 if "FFJORD" in name else 20
            times[name].append(time_steps(f, model, opt, data_tr, batch, n))
    base = "zuko Real NVP" if "zuko Real NVP" in times else next(iter(times))
    rows = []
    for name, (*_r, budget, score) in state.items():
        ratios = [a / b for a, b in zip(times[name], times[base])]
        rows.append((dataset, name, budget, score, statistics.median(times[name]),
                     statistics.median(ratios)))  # fmt: skip
    return rows


def ddp_throughput(steps: int = 200) -> tuple[float, float]:
    """samples/s of ``flowspec train`` (Real NVP, moons, global batch 256): 1 vs 2 procs."""
    import tempfile

    args = ["train", "specs/realnvp.flow", "--data", "moons", "--steps", str(steps),
            "--batch", "256", "--eval-every", str(steps), "--log-every", str(steps)]  # fmt: skip
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, 2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            launcher = [sys.executable, "-m", "flowspec"]
            if k == 2:
                launcher[1:1] = [
                    "-m",
                    "torch.distributed.run",
                    "--nproc_per_node",
                    "2",
                    "--master_addr",
                    "127.0.0.1",
                    "--master_port",
                    str(port),
                ]
            r = subprocess.run([*launcher, *args, "--out", f"{tmp}/{k}"], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
            found = re.findall(r"(\d+) samples/s", r.stdout)
            rates.append(float(found[-1]) if found else float("nan"))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--digits-steps", type=int, default=1000)
    parser.add_argument("--ode-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ddp", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = run_set("moons", args.steps, args.ode_steps, args.repeats)
    rows += run_set("digits", args.digits_steps, args.ode_steps, args.repeats)
    print("\n| data | model | steps | held-out NLL (moons, nats) / bits/dim (digits) | "
          "ms per step → s per 1,000 steps | time ÷ zuko Real NVP |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|")
    for dataset, name, budget, score, ms, ratio in rows:
        print(f"| {dataset} | {name} | {budget} | {score:.3f} | {ms:.1f} | {ratio:.2f} |")
    if not args.no_ddp:
        one, two = ddp_throughput()
        print(f"\nflowspec train, Real NVP on moons, global batch 256: 1 process {one:.0f} "
              f"samples/s, 2 processes (torchrun, gloo) {two:.0f} samples/s "
              f"({two / one:.2f}×)")  # fmt: skip


if __name__ == "__main__":
    main()

"""The training loop of ``flowspec train``: maximum likelihood by minibatch gradient steps.

Each step minimises the mean negative log-likelihood of a batch,
L(θ) = −(1/B) Σ_b log p_θ(x_b) (+ the flow's ``regularization()`` when it has one),
with Adam (Kingma, Ba 2015, arXiv:1412.6980) or AdamW (Loshchilov, Hutter 2019,
arXiv:1711.05101), optionally clipping the gradient norm.

Determinism: step t's batch indices come from a generator seeded with (seed, t), and the
global RNG (dequantisation noise, stochastic log-dets) is reseeded from (seed, t, rank)
before the step; so a resumed run — which restores the weights, the optimiser state and
t — draws exactly what the uninterrupted run draws, and K processes taking contiguous
slices of the same global batch compute the gradient of the same loss (DDP averages the
K equal-sized slice means).
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowspec.train.data import DataError

if TYPE_CHECKING:
    import torch

    from flowspec.runtime.flow import Flow

METRICS = (
    "step",
    "loss",
    "val_nll",
    "val_bpd",
    "seconds",
    "samples_per_s",
    "nfe_forward",
    "nfe_backward",
    "regularization",
)


@dataclass
class Options:
    data: str
    key: str | None = None
    steps: int = 1000
    epochs: float | None = None
    batch: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    clip: float | None = None
    val_fraction: float = 0.1
    out: str = "runs/flowspec"
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    resume: bool = False
    eval_every: int = 200
    log_every: int = 50


class Diverged(RuntimeError):
    """A non-finite loss: the message names the step (exit 1)."""


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix-style), so nearby (seed, step) differ."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = ((h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def batch_indices(seed: int, step: int, n: int, batch: int) -> torch.Tensor:
    """The global batch of step ``step``: ``batch`` indices in [0, n), from (seed, step)."""
    import torch

    g = torch.Generator().manual_seed(_mix(seed, step))
    return torch.randint(0, n, (batch,), generator=g)


def evaluate(flow: Flow, x: torch.Tensor, seed: int = 0, chunk: int = 2048) -> dict[str, float]:
    """Mean NLL (nats per sample), its standard error, and bits/dim, on ``x`` (no grad,
    eval mode, a fixed seed for any noise)."""
    import torch

    was = flow.training
    flow.eval()
    values = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for start in range(0, x.shape[0], chunk):
            values.append(-flow.log_prob(x[start : start + chunk]).double())
    flow.train(was)
    nll = torch.cat(values)
    mean = nll.mean().item()
    se = (nll.std().item() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan")
    d = flow.num_features * math.log(2.0)
    return {"nll": mean, "se": se, "bpd": mean / d, "bpd_se": se / d, "n": len(nll)}


class _Objective:
    """The batch loss as a module (DDP needs its forward to see the parameters used)."""

    @staticmethod
    def build(flow: Flow) -> torch.nn.Module:
        import torch

        class Objective(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.flow = flow

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return -self.flow.log_prob(x).mean() + self.flow.regularization()

        return Objective()


def fit(flow: Flow, opts: Options, say=print) -> int:
    """Train ``flow`` (already compiled and placed) per ``opts``; the exit code."""
    import torch

    from flowspec.checkpoint import save
    from flowspec.train import distributed
    from flowspec.train.data import load, split, validate

    rank, world = distributed.rank_and_world()
    main = rank == 0
    data = load(opts.data, opts.key, opts.seed)
    x = validate(data, flow)
    dtype = next(iter(flow.parameters())).dtype if any(True for _ in flow.parameters()) else None
    if x.is_floating_point() and dtype is not None:
        x = x.to(dtype)
    train_x, val_x = split(x, opts.val_fraction, opts.seed)
    n = train_x.shape[0]
    if opts.batch % world:
        raise DataError(f"--batch {opts.batch} must be a multiple of the {world} processes")
    steps = opts.steps
    if opts.epochs is not None:
        steps = max(1, math.ceil(opts.epochs * n / opts.batch))
    out = Path(opts.out)
    last, best = out / "last.pt", out / "best.pt"
    params = list(flow.parameters())
    cls = torch.optim.AdamW if opts.optimizer == "adamw" else torch.optim.Adam
    opt = cls(params, lr=opts.lr)
    start, best_val = 0, math.inf
    if opts.resume:
        start, best_val = _resume(flow, opt, last)
        say(f"resumed from {last} at step {start}")
    if main:
        out.mkdir(parents=True, exist_ok=True)
    flow.train()
    if start == 0:
        _initialise(flow, train_x[batch_indices(opts.seed, 1, n, opts.batch)], opts)
    model: torch.nn.Module = _Objective.build(flow)
    if world > 1:
        model = distributed.wrap(model)
    dequant = flow.DEQUANTIZE is not None
    # blocks that count their function evaluations (ODE blocks): logged per step
    # the ode blocks: modules whose class has an `nfe` property
    counted: list[Any] = [
        m for m in flow.modules() if isinstance(getattr(type(m), "nfe", None), property)
    ]
    # blocks with an extra loss term (ode regularize=finlay): its value is logged per step
    regularized = flow.regularizes()
    d_log2 = flow.num_features * math.log(2.0)
    metrics = _Metrics(out / "metrics.csv", append=opts.resume and start > 0) if main else None
    state = {"stop": 0}

    def on_signal(signum: int, frame: Any) -> None:
        # a second Ctrl-C stops at once in one process; under torchrun the agent forwards
        # the terminal's SIGINT to workers that had it already, so it is the same request
        if state["stop"] and world == 1:
            raise KeyboardInterrupt
        state["stop"] = state["stop"] or signum

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def train_state(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "optimizer": opt.state_dict(),
            "rng": torch.get_rng_state(),
            "best_val": best_val,
            "options": {k: v for k, v in asdict(opts).items() if k != "resume"},
            "world": world,
        }

    bar = _progress(start, steps) if main else None
    local = opts.batch // world
    t0, done = time.perf_counter(), 0
    step = start
    try:
        for step in range(start + 1, steps + 1):
            idx = batch_indices(opts.seed, step, n, opts.batch)[rank * local : (rank + 1) * local]
            torch.manual_seed(_mix(opts.seed, step, rank, 1))
            loss = model(train_x[idx].to(opts.device))
            seen, stopping = distributed.step_consensus(loss, bool(state["stop"]))
            reg = distributed.mean(flow.regularization().detach()) if regularized else None
            if not math.isfinite(seen):
                raise Diverged(
                    f"the loss is not finite at step {step} ({seen}): training stopped; "
                    + (f"the last good checkpoint is {last}" if last.exists() else "no checkpoint")
                    + " (try a smaller --lr or --clip)"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nfe = [sum(m.nfe[i] for m in counted) for i in (0, 1)] if counted else None
            if opts.clip is not None:
                torch.nn.utils.clip_grad_norm_(params, opts.clip)
            opt.step()
            done += opts.batch
            shown = seen / d_log2 if dequant else seen
            evaluate_now = step % opts.eval_every == 0 or step == steps
            row: dict[str, float] | None = None
            if step % opts.log_every == 0 or evaluate_now or stopping:
                elapsed = time.perf_counter() - t0
                row = {"step": step, "loss": seen, "seconds": round(elapsed, 4)}
                row["samples_per_s"] = round(done / max(elapsed, 1e-9), 1)
                if nfe is not None:
                    row["nfe_forward"], row["nfe_backward"] = nfe
                if reg is not None:
                    row["regularization"] = reg
            if evaluate_now and main and val_x.shape[0]:
                assert row is not None  # an evaluation step always logs
                result = evaluate(flow, val_x.to(opts.device), seed=opts.seed)
                row["val_nll"], row["val_bpd"] = result["nll"], result["bpd"]
                if result["nll"] < best_val:
                    best_val = result["nll"]
                    save(flow, best, train=train_state(step))
            if main:
                if row is not None:
                    assert metrics is not None  # the main rank writes them
                    metrics.write(row)
                    text = f"step {step}/{steps} loss {shown:.4f}" + (
                        " bits/dim" if dequant else ""
                    )
                    if "val_nll" in row:
                        text += f" val_nll {row['val_nll']:.4f}"
                        text += f" val_bpd {row['val_bpd']:.4f}" if dequant else ""
                    text += f" {row['samples_per_s']:.0f} samples/s"
                    if reg is not None:
                        text += f" reg {reg:.4g}"
                    if nfe is not None:
                        text += f" nfe {nfe[0]}+{nfe[1]}"
                    if bar is None:
                        say(text)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"loss {shown:.3f}")
                if evaluate_now or stopping or step % opts.eval_every == 0:
                    save(flow, last, train=train_state(step))
            if stopping:
                if main:
                    save(flow, last, train=train_state(step))
                    sys.stderr.write(f"interrupted: step {step} saved in {last}\n")
                return 128 + int(state["stop"] or signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
        if metrics is not None:
            metrics.close()
    if main:
        save(flow, last, train=train_state(step))
        say(f"trained {steps} steps: {last}" + (f", best {best}" if best.exists() else ""))
    return 0


def _initialise(flow: Flow, batch: torch.Tensor, opts: Options) -> None:
    """Run data-dependent initialisation (actnorm's ``initialized`` buffers) on step 1's
    whole global batch, on every rank alike, before DDP copies the parameters: otherwise
    each rank would initialise from its own slice and the K-process run would differ
    from the 1-process one."""
    import torch

    pending = [b for name, b in flow.named_buffers() if name.endswith("initialized")]
    if not pending or all(bool(b) for b in pending):
        return
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(_mix(opts.seed, 1, 0, 1))
        flow.log_prob(batch.to(opts.device))


def _resume(flow: Flow, opt: torch.optim.Optimizer, last: Path) -> tuple[int, float]:
    from flowspec.checkpoint import CheckpointError, CheckpointMismatch, read

    data = read(last)
    if data["spec_hash"] != flow.SPEC_HASH or data["flow_name"] != flow.FLOW_NAME:
        raise CheckpointMismatch(
            f"cannot resume from {last}: it was saved from flow `{data['flow_name']}` with "
            f"spec hash {data['spec_hash']}, but this spec's flow `{flow.FLOW_NAME}` has "
            f"spec hash {flow.SPEC_HASH}",
            checkpoint=str(last),
            spec_file=str(type(flow).SPEC_FILE),
            saved_hash=data["spec_hash"],
            spec_hash=flow.SPEC_HASH,
        )
    train = data.get("train")
    if not isinstance(train, dict) or "optimizer" not in train:
        raise CheckpointError(f"cannot resume from {last}: it holds no training state")
    flow.load_state_dict(data["state_dict"])
    opt.load_state_dict(train["optimizer"])
    return int(train["step"]), float(train.get("best_val", math.inf))


class _Metrics:
    """metrics.csv: one row per log interval (and evaluation)."""

    def __init__(self, path: Path, append: bool) -> None:
        fresh = not (append and path.exists())
        self.file = path.open("w" if fresh else "a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, fieldnames=METRICS)
        if fresh:
            self.writer.writeheader()
        self.file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _progress(start: int, steps: int):
    """A tqdm bar on a terminal; ``None`` (plain log lines) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=steps, initial=start, unit="step", dynamic_ncols=True)


__all__ = ["Diverged", "Options", "batch_indices", "evaluate", "fit"]

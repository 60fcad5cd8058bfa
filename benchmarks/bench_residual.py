"""Residual blocks against normflows' `Residual` and FrEIA's `IResNetLayer`.

    python benchmarks/bench_residual.py [--rounds 7] [--threads 2] [--quick] [--json]

Settings, equal for the three where the libraries allow it: d = 16, 8 blocks, each
g = 16 → 128 → 128 → 16 (flowspec `mlp(hidden=[128, 128], act=lipswish)`; normflows
`LipschitzMLP([16, 128, 128, 16])`, whose LipSwish also runs on g's input; FrEIA
`internal_size=128, n_internal_layers=1` with ELU, the only activation it has), every
linear map normalised to c = 0.9 (flowspec `lipschitz=0.9`, normflows
`lipschitz_const=0.9`, FrEIA `spectral_norm_max=0.9`), batch 1024, float32, standard
normal latent.  Every model is fitted for 40 Adam steps (lr 3e-3, the same batches) first,
so the weights are not at their initialisation; normflows' `update_lipschitz(model, 5)`
and FrEIA's `lipschitz_correction()` run after each of its optimiser steps (their
documented use; flowspec's normalisation is in the forward pass, certified by an SVD).

(a) eval log_prob at equal exact terms: flowspec `eval_logdet=series(terms=20)` (and,
    the same estimator as normflows, `roulette(p=0.25, exact_terms=20)`) against
    normflows' eval mode (20 exact terms + a Geometric(0.25) roulette tail) and FrEIA
    with `jacobian_iterations=20`; one Rademacher (flowspec, FrEIA) or Gaussian
    (normflows) probe, `no_grad` where the library allows it (FrEIA needs autograd).
(b) training step at equal expected terms: flowspec `roulette(p=0.25, exact_terms=2)`,
    `grad=neumann`, `trace=hutchinson(samples=1)` against normflows `geom_p=0.25,
    n_exact_terms=2, reduce_memory=True` (both 2 + 1/0.25 = 6 terms on average) and FrEIA
    `jacobian_iterations=6`; one step = zero_grad, −log_prob(x).mean(), backward, Adam
    step and the library's Lipschitz update.  FrEIA's log-det carries no gradient (its
    vector-Jacobian products are taken without `create_graph`), so its step is cheaper
    than a correct one.
(c) inverse at equal precision: every library's error is measured against a float64
    preimage of its own model (the float64 copy iterated 400 times per block): the
    largest ℓ2 error over the batch of the 8-block chain.  normflows runs its default
    stopping rule (a step-size test, atol = rtol = 1e-5); FrEIA gets the fewest
    `fixed_point_iterations` and flowspec the largest `tol` of a grid whose error is at
    most normflows' error, and the three are timed there (`no_grad`, no log-det).
(d) peak training memory of one step (b): the largest running sum of the CPU allocations
    and frees the PyTorch profiler records (`profile_memory=True`) from the step's start,
    with the step's outputs freed; flowspec with `grad=neumann` and `grad=backprop`.
(e) σ_max (float64 SVD) of every weight as the forward pass uses it, against c.

Times are medians over interleaved rounds (the libraries' order rotates per round) and
ratios are medians of the per-round ratios, so drifting load on a shared machine cancels.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import flowspec
from flowspec.runtime.lipschitz_layers import sigma_max

C = 0.9
#: the tolerances tried for flowspec's inverse, the largest first (10 per decade)
TOLERANCES = tuple(10.0 ** (-k / 10) for k in range(61))


def spec(d: int, blocks: int, hidden: int, grad: str = "neumann", tol: float = 1e-5) -> str:
    return f"""flow residual_bench {{
    input x: [{d}]
    repeat {blocks} {{
        x = residual(x, net=mlp(hidden=[{hidden}, {hidden}], act=lipswish), lipschitz={C},
                     logdet=roulette(p=0.25, exact_terms=2), trace=hutchinson(samples=1),
                     grad={grad}, eval_logdet=series(terms=20),
                     inverse=fixedpoint(tol={tol:g}, max_iter=1000))
    }}
    output x
}}
"""


# ---------------------------------------------------------------------- the three models


class Library:
    """One library's model behind the operations the benchmark times."""

    name = ""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def lipschitz_update(self) -> None:
        """What the library needs after an optimiser step to keep its constraint."""

    def step(self, x: Tensor) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = -self.log_prob(x).mean()
        loss.backward()
        self.opt.step()
        self.lipschitz_update()
        return float(loss.detach())

    def inverse(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse_reference(self, z: Tensor) -> Tensor:
        """A float64 preimage: a float64 copy of the model, 400 iterations per block."""
        raise NotImplementedError

    def weights_used(self) -> list[Tensor]:
        raise NotImplementedError


class Flowspec(Library):
    name = "flowspec"

    def __init__(self, d: int, blocks: int, hidden: int, grad: str = "neumann") -> None:
        super().__init__(flowspec.compile(spec(d, blocks, hidden, grad)))
        self.blocks = [m for m in self.model.modules() if type(m).__name__ == "Residual"]

    def log_prob(self, x: Tensor) -> Tensor:
        return self.model.log_prob(x)

    def set_tol(self, tol: float) -> None:
        for b in self.blocks:
            b.tol = tol

    def set_eval(self, estimator: str) -> None:
        from flowspec.kinds.options import Choice
        from flowspec.runtime.residual import Estimator

        if estimator == "series":
            choice = Choice("series", terms=20)
        else:
            choice = Choice("roulette", p=0.25, exact_terms=20)
        for b in self.blocks:
            b.eval_estimator = Estimator.of(choice)

    def inverse(self, z: Tensor) -> Tensor:
        return self.model.inverse_transform(z)

    def inverse_reference(self, z: Tensor) -> Tensor:
        x = z.double()
        for b in reversed(self.blocks):
            weights = [w.detach().double() for w in b.g.weights()]
            g64 = _double_copy(b.g)
            y = x
            for _ in range(400):
                x = y - g64(x, weights)
        return x

    def weights_used(self) -> list[Tensor]:
        with torch.no_grad():
            return [w for b in self.blocks for w in b.g.weights()]


def _preimage(z: Tensor, nets: list) -> Tensor:
    """The float64 preimage of ``z`` through residual blocks x ↦ x + g(x), with each g
    in ``nets`` in the order the inverse meets them, by 400 fixed-point steps each."""
    x = z.double()
    for g in nets:
        net, y = _double_copy(g), x
        for _ in range(400):
            x = y - net(x)
    return x


def _double_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module).double()


class Normflows(Library):
    name = "normflows"

    def __init__(self, d: int, blocks: int, hidden: int) -> None:
        import normflows as nf

        flows = [
            nf.flows.Residual(
                nf.nets.LipschitzMLP([d, hidden, hidden, d], lipschitz_const=C, init_zeros=True),
                reduce_memory=True,
                geom_p=0.25,
                n_exact_terms=2,
            )
            for _ in range(blocks)
        ]
        q0 = nf.distributions.DiagGaussian(d, trainable=False)
        super().__init__(nf.NormalizingFlow(q0=q0, flows=flows))
        self.nf = nf
        self.blocks = [f.iresblock for f in flows]

    def log_prob(self, x: Tensor) -> Tensor:
        return self.model.log_prob(x)

    def lipschitz_update(self) -> None:
        self.nf.utils.update_lipschitz(self.model, 5)

    def inverse(self, z: Tensor) -> Tensor:
        # NormalizingFlow.forward would add a log-det per block: the inverse alone
        for block in self.blocks:
            z = block.inverse(z)
        return z

    def inverse_reference(self, z: Tensor) -> Tensor:
        return _preimage(z, [block.nnet for block in self.blocks])

    def weights_used(self) -> list[Tensor]:
        layers = [m for m in self.model.modules() if type(m).__name__ == "InducedNormLinear"]
        with torch.no_grad():
            return [m.compute_weight(update=False) for m in layers]


class Freia(Library):
    name = "FrEIA"

    def __init__(self, d: int, blocks: int, hidden: int) -> None:
        import FrEIA.framework as Ff
        import FrEIA.modules as Fm

        inn = Ff.SequenceINN(d)
        for _ in range(blocks):
            inn.append(
                Fm.IResNetLayer,
                internal_size=hidden,
                n_internal_layers=1,
                jacobian_iterations=6,
                hutchinson_samples=1,
                fixed_point_iterations=50,
                spectral_norm_max=C,
            )
        super().__init__(inn)
        self.blocks = list(inn.module_list)
        self.lipschitz_update()

    def set_terms(self, terms: int) -> None:
        for b in self.blocks:
            b.jacobian_iterations = terms

    def set_iterations(self, n: int) -> None:
        for b in self.blocks:
            b.fixed_point_iterations = n

    def log_prob(self, x: Tensor) -> Tensor:
        z, ladj = self.model(x)
        return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + ladj

    def lipschitz_update(self) -> None:
        for b in self.blocks:
            b.lipschitz_correction()

    def inverse(self, z: Tensor) -> Tensor:
        # SequenceINN cannot skip the log-det in reverse (it adds None): the blocks alone
        for b in reversed(self.blocks):
            (z,), _ = b([z], rev=True, jac=False)
        return z

    def inverse_reference(self, z: Tensor) -> Tensor:
        return _preimage(z, [b.residual for b in reversed(self.blocks)])

    def weights_used(self) -> list[Tensor]:
        return [layer.weight.detach() for b in self.blocks for layer in b.layers]


# ---------------------------------------------------------------------- measuring


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, the order rotating per round."""
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            elapsed = time.perf_counter() - start
            if r >= warmup:
                times[name].append(elapsed)
    return times


def summarise(times: dict[str, list[float]], ours: str) -> dict[str, Any]:
    """Medians (ms) and the medians of the per-round ratios of ``ours`` to each peer and to
    the faster peer of each round."""
    peers = [k for k in times if not k.startswith("flowspec")]
    out: dict[str, Any] = {"ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}}
    mine = times[ours]
    ratios = {p: statistics.median(a / b for a, b in zip(mine, times[p])) for p in peers}
    faster = [min(vals) for vals in zip(*(times[p] for p in peers))]
    ratios["faster peer"] = statistics.median(a / b for a, b in zip(mine, faster))
    out["ratio"] = ratios
    return out


def peak_memory(fn: Callable[[], Any]) -> float:
    """MB: the largest running sum of the CPU allocations minus frees that the PyTorch
    profiler records while ``fn`` runs (its result is dropped inside)."""
    from torch.profiler import ProfilerActivity, profile

    def run() -> None:
        fn()

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    total = peak = 0
    for e in events:
        total += e.nbytes()
        peak = max(peak, total)
    return peak / 2**20


def chain_error(lib: Library, z: Tensor, reference: Tensor) -> float:
    with torch.no_grad():
        x = lib.inverse(z)
    return float((x.double() - reference).norm(dim=1).max())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    d, blocks, hidden, batch, fit = 16, 8, 128, 1024, 40
    if args.quick:
        d, blocks, hidden, batch, fit = 4, 2, 16, 64, 3
        args.rounds = min(args.rounds, 2)
    log = (lambda *a: None) if args.json else print

    torch.manual_seed(0)
    mix = torch.randn(d, d) / math.sqrt(d)
    data = torch.randn(fit + 1, batch, d)
    data = torch.tanh(data @ mix) * 2.0 + 0.3 * data  # a non-Gaussian target

    torch.manual_seed(1)
    libs: list[Library] = [
        Flowspec(d, blocks, hidden),
        Normflows(d, blocks, hidden),
        Freia(d, blocks, hidden),
    ]
    import numpy as np

    np.random.seed(0)  # normflows draws its roulette lengths from numpy
    for lib in libs:
        lib.model.train()
        for i in range(fit):
            lib.step(data[i])
    x = data[fit]
    ours, nfl, fre = libs
    assert isinstance(ours, Flowspec) and isinstance(fre, Freia)
    result: dict[str, Any] = {
        "settings": {
            "d": d,
            "blocks": blocks,
            "hidden": [hidden, hidden],
            "lipschitz": C,
            "batch": batch,
            "fit_steps": fit,
            "rounds": args.rounds,
            "threads": args.threads,
            "dtype": "float32",
        }
    }

    # (e) σ_max of every weight as used
    sig: dict[str, Any] = {}
    for lib in libs:
        s = [sigma_max(w) for w in lib.weights_used()]
        sig[lib.name] = {"max": max(s), "over_c": sum(v > C for v in s), "weights": len(s)}
    result["sigma_max"] = sig
    log(f"σ_max of the weights as used (c = {C}):")
    for name, v in sig.items():
        log(f"  {name:<10} max {v['max']:.4f}, {v['over_c']} of {v['weights']} over c")

    # (a) eval log_prob
    for lib in libs:
        lib.model.eval()
    fre.set_terms(20)

    def eval_ours(kind: str) -> Callable[[], Any]:
        def run() -> Any:
            ours.set_eval(kind)
            with torch.no_grad():
                return ours.log_prob(x)

        return run

    def eval_nf() -> Any:
        with torch.no_grad():
            return nfl.log_prob(x)

    t = interleaved(
        {
            "flowspec series(20)": eval_ours("series"),
            "flowspec roulette(0.25, 20)": eval_ours("roulette"),
            "normflows": eval_nf,
            "FrEIA": lambda: fre.log_prob(x).detach(),
        },
        args.rounds,
    )
    result["eval_log_prob"] = summarise(t, "flowspec series(20)")
    result["eval_log_prob_roulette"] = summarise(
        {k: v for k, v in t.items() if k != "flowspec series(20)"}, "flowspec roulette(0.25, 20)"
    )
    ours.set_eval("series")
    _print("(a) eval log_prob, 20 exact terms", result["eval_log_prob"], log)
    log(f"    roulette(0.25, 20): {result['eval_log_prob_roulette']['ratio']}")

    # (c) inverse at equal precision
    with torch.no_grad():
        z = torch.randn(batch, d)  # the sampling use: a standard normal latent
        refs = {lib.name: lib.inverse_reference(z) for lib in libs}
    target = chain_error(nfl, z, refs["normflows"])
    chosen_iters = 1
    for n in range(1, 201):
        fre.set_iterations(n)
        if chain_error(fre, z, refs["FrEIA"]) <= target:
            chosen_iters = n
            break
    chosen_tol = 1e-9
    for tol in TOLERANCES:
        ours.set_tol(tol)
        if chain_error(ours, z, refs["flowspec"]) <= target:
            chosen_tol = tol
            break
    ours.set_tol(chosen_tol)
    errors = {lib.name: chain_error(lib, z, refs[lib.name]) for lib in libs}
    t = interleaved(
        {lib.name: (lambda lib=lib: torch.no_grad()(lib.inverse)(z)) for lib in libs},
        args.rounds,
    )
    inv = summarise(t, "flowspec")
    inv.update(error=errors, flowspec_tol=chosen_tol, freia_iterations=chosen_iters, target=target)
    result["inverse"] = inv
    _print("(c) inverse at equal precision", inv, log)
    log(f"    errors {errors}, flowspec tol={chosen_tol:g}, FrEIA iterations={chosen_iters}")
    ours.set_tol(1e-5)

    # (b) training step
    for lib in libs:
        lib.model.train()
    fre.set_terms(6)
    t = interleaved({lib.name: (lambda lib=lib: lib.step(x)) for lib in libs}, args.rounds)
    result["train_step"] = summarise(t, "flowspec")
    _print("(b) training step, 6 expected terms", result["train_step"], log)

    # (d) peak training memory
    backprop = Flowspec(d, blocks, hidden, grad="backprop")
    backprop.model.load_state_dict(ours.model.state_dict())
    mem = {
        "flowspec neumann": peak_memory(lambda: ours.step(x)),
        "flowspec backprop": peak_memory(lambda: backprop.step(x)),
        "normflows": peak_memory(lambda: nfl.step(x)),
        "FrEIA": peak_memory(lambda: fre.step(x)),
    }
    result["peak_memory_mb"] = mem
    log("(d) peak training memory of one step (profiler, MB): " + str(mem))
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    return result


def _print(title: str, summary: dict[str, Any], log: Callable[..., None]) -> None:
    log(title)
    for name, ms in summary["ms"].items():
        log(f"    {name:<28} {ms:9.2f} ms")
    log("    flowspec ÷ " + ", ".join(f"{k} {v:.2f}×" for k, v in summary["ratio"].items()))


if __name__ == "__main__":
    main()

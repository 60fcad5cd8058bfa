"""The `ode` block against a plain torchdiffeq FFJORD with the same weights and zuko's CNF.

    python benchmarks/bench_ode.py [--d 16] [--batch 1024] [--repeats 5] [--threads 2]

Settings, equal for the three: d = 16, f = mlp [128, 128] with ELU reading x and the
Fourier features cos(kπt), sin(kπt), k = 1 … 3 of t (zuko's default time embedding; the
flowspec block is `time=fourier(features=3)`, the twin calls the same module, zuko's MLP
gets the same weights with its columns permuted to its [e(t), x] input order), dopri5,
rtol = atol = 1e-5, float32, eval mode under `no_grad`, batch 1024, the log-det with the
exact trace and with Hutchinson's estimate (one Rademacher probe for flowspec and the twin;
zuko draws one Gaussian probe).  Every repeat runs the libraries in turn (interleaved),
and the medians are printed: time per call, NFE (function evaluations of the solve,
counted by a wrapper of f) and time per NFE.

The first table compares ways of computing the exact trace of one evaluation
(∂f/∂x for a batch): d copies of the batch with one backward pass (flowspec before),
one f evaluation with d VJPs batched by ``is_grads_batched`` (flowspec now, as zuko), the
same with ``torch.func.vmap`` over ``torch.func.vjp``, forward mode (``vmap`` over
``jvp``, the columns), and a Python loop of d VJPs (FFJORD's ``divergence_bf``).

Log-det error control: flowspec's step-size control takes the max over the state's parts
of their RMS error ratios, so the log-det is integrated to rtol/atol on its own, and so
does the twin (torchdiffeq's default norm for a tuple state is the same max); zuko
integrates 1e-2·tr(∂f/∂x) and scales the result
by 100 (``FreeFormJacobianTransform.trace_scale``), so the log-det's error is controlled
only to 100·atol + rtol·|ladj|, a looser tolerance that lets it take fewer steps.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

import flowspec


def spec(d: int, trace: str) -> str:
    return f"""flow f {{
    input x: [{d}]
    x = ode(x, net=mlp(hidden=[128, 128], act=elu, init=default), time=fourier(features=3),
            trace={trace}, adjoint=false, rtol=1e-5, atol=1e-5)
    output x
}}
"""


class Counted(nn.Module):
    """f(t, x) with a call counter."""

    def __init__(self, f: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.f = f
        self.calls = 0

    def forward(self, t: Tensor, x: Tensor, **kw: object) -> Tensor:
        self.calls += 1
        return self.f(t, x, **kw)


class Twin(nn.Module):
    """A plain torchdiffeq FFJORD: dx/dt = f, da/dt = tr(∂f/∂x) by d VJPs in a loop
    (FFJORD's ``divergence_bf``) or eᵀ(∂f/∂x)e."""

    def __init__(self, velocity: Callable[[Tensor, Tensor], Tensor], exact: bool) -> None:
        super().__init__()
        self.velocity = velocity
        self.exact = exact
        self.calls = 0
        self.e: Tensor | None = None

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        self.calls += 1
        x = state[0]
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            fx = self.velocity(t, x)
            if self.exact:
                trace = torch.zeros_like(fx[:, 0])
                for i in range(fx.shape[1]):
                    (g,) = torch.autograd.grad(fx[:, i].sum(), x, retain_graph=True)
                    trace = trace + g[:, i]
            else:
                assert self.e is not None
                (g,) = torch.autograd.grad(fx, x, self.e)
                trace = (g * self.e).sum(-1)
        return fx.detach(), trace.detach()

    def solve(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.e = torch.empty_like(x).bernoulli_(0.5).mul_(2).sub_(1)
        span = torch.tensor([0.0, 1.0], dtype=x.dtype)
        y, a = odeint(self, (x, x.new_zeros(x.shape[0])), span, rtol=1e-5, atol=1e-5)
        return y[-1], a[-1]


def plain_velocity(dyn: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """f as a plain FFJORD writes it, with the flowspec block's modules: the mlp on the
    concatenation [x, e(t)] (flowspec folds e(t) into the first layer's bias instead)."""

    def f(t: Tensor, x: Tensor) -> Tensor:
        e = dyn.embed(t).to(x.dtype)
        return dyn.net(torch.cat([x, e.expand(x.shape[0], e.shape[0])], dim=1))

    return f


def trace_variants(f: Callable[[Tensor], Tensor], x: Tensor) -> dict[str, Callable[[], Tensor]]:
    """Ways of computing tr(∂f/∂x) per sample of a [B, d] batch, without a graph."""
    b, d = x.shape
    eye = torch.eye(d, dtype=x.dtype)

    def copies() -> Tensor:
        with torch.enable_grad():
            xs = x.unsqueeze(0).expand(d, b, d).reshape(d * b, d).requires_grad_(True)
            fx = f(xs)
            cot = eye.unsqueeze(1).expand(d, b, d).reshape(d * b, d)
            (rows,) = torch.autograd.grad(fx, xs, cot)
        return rows.reshape(d, b, d).diagonal(dim1=0, dim2=2).sum(-1)

    def batched() -> Tensor:
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            fx = f(xi)
            cot = eye.unsqueeze(1).expand(d, b, d)
            (rows,) = torch.autograd.grad(fx, xi, cot, is_grads_batched=True)
        return rows.diagonal(dim1=0, dim2=2).sum(-1)

    def func_vjp() -> Tensor:
        _, vjp = torch.func.vjp(f, x)
        (rows,) = torch.func.vmap(vjp)(eye.unsqueeze(1).expand(d, b, d))
        return rows.diagonal(dim1=0, dim2=2).sum(-1)

    def func_jvp() -> Tensor:
        cols = torch.func.vmap(lambda v: torch.func.jvp(f, (x,), (v,))[1])(
            eye.unsqueeze(1).expand(d, b, d)
        )
        return cols.diagonal(dim1=0, dim2=2).sum(-1)

    def loop() -> Tensor:
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            fx = f(xi)
            trace = torch.zeros(b, dtype=x.dtype)
            for i in range(d):
                (g,) = torch.autograd.grad(fx[:, i].sum(), xi, retain_graph=i < d - 1)
                trace = trace + g[:, i]
        return trace

    return {
        "d copies, one backward": copies,
        "is_grads_batched VJPs": batched,
        "torch.func vmap(vjp)": func_vjp,
        "torch.func vmap(jvp)": func_jvp,
        "loop of d VJPs": loop,
    }


def zuko_cnf(flow: torch.nn.Module, d: int, exact: bool) -> tuple[nn.Module, Counted]:
    """zuko's CNF with the flowspec block's weights (its MLP reads [e(t), x]), its f
    wrapped by a counter."""
    import zuko

    cnf = zuko.flows.CNF(
        d, hidden_features=[128, 128], activation=nn.ELU, atol=1e-5, rtol=1e-5, exact=exact
    )
    transform = cnf.transform
    ours = [m for m in flow.b0.dynamics.net.modules() if isinstance(m, nn.Linear)]
    theirs = [m for m in transform.ode.modules() if type(m).__name__ == "Linear"]
    with torch.no_grad():
        for a, z in zip(ours, theirs, strict=True):
            w = a.weight
            if w.shape[1] == d + 6:  # ours: [x, cos, sin]; zuko's: [cos, sin, x]
                w = torch.cat([w[:, d:], w[:, :d]], dim=1)
            z.weight.copy_(w)
            z.bias.copy_(a.bias)
    counted = Counted(transform.f)
    # f is a method (FFJTransform.f) calling the MLP once per evaluation: count the MLP
    transform.ode.register_forward_pre_hook(
        lambda module, args: setattr(counted, "calls", counted.calls + 1)
    )
    return cnf.eval(), counted


def solver_overhead(x: Tensor, repeats: int) -> None:
    """Per evaluation, what each library's dopri5 costs around f (f: dx/dt = −x)."""
    from zuko.utils import odeint as zuko_odeint

    state = (x, x.new_zeros(x.shape[0]))
    span = torch.tensor([0.0, 1.0])

    def ours() -> int:
        calls = [0]

        def f(t: Tensor, s: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            calls[0] += 1
            return -s[0], s[1]

        odeint(f, state, span, rtol=1e-5, atol=1e-5)
        return calls[0]

    def zukos() -> int:
        calls = [0]

        def f(t: Tensor, x: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
            calls[0] += 1
            return -x, a

        zuko_odeint(f, state, 0.0, 1.0, (), 1e-5, 1e-5)
        return calls[0]

    per: dict[str, list[float]] = {"torchdiffeq odeint": [], "zuko odeint": []}
    for _ in range(repeats):
        for name, fn in (("torchdiffeq odeint", ours), ("zuko odeint", zukos)):
            start = time.perf_counter()
            n = fn()
            per[name].append((time.perf_counter() - start) / n)
    print(f"\nsolver cost per evaluation around a trivial f, batch {x.shape[0]}, d={x.shape[1]}")
    for name, ts in per.items():
        print(f"  {name:<24} {1e3 * median(ts):8.3f} ms")


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    d, batch = args.d, args.batch
    torch.manual_seed(0)
    x = torch.randn(batch, d)

    # one evaluation's exact trace, five ways
    torch.manual_seed(0)
    flow = flowspec.compile(spec(d, "exact")).eval()
    dyn = flow.b0.dynamics
    t = torch.tensor(0.5)
    variants = trace_variants(lambda v: dyn.velocity(t, v), x)
    ref = variants["loop of d VJPs"]()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            with torch.no_grad():
                got = fn()
            times[name].append(time.perf_counter() - start)
            assert torch.allclose(got, ref, rtol=1e-3, atol=1e-3), name
    print(f"exact trace of one evaluation, d={d}, batch {batch}, mlp [128, 128] elu, float32")
    for name, ts in times.items():
        print(f"  {name:<24} {1e3 * median(ts):8.2f} ms")

    solver_overhead(x, args.repeats)

    # whole solves: flowspec, the twin, zuko
    for trace in ("exact", "hutchinson"):
        exact = trace == "exact"
        torch.manual_seed(0)
        flow = flowspec.compile(spec(d, trace)).eval()
        block = flow.b0
        twin = Twin(plain_velocity(block.dynamics), exact)
        cnf, zcount = zuko_cnf(flow, d, exact)
        rows: dict[str, tuple[list[float], list[int]]] = {
            "flowspec": ([], []),
            "torchdiffeq twin": ([], []),
            "zuko CNF": ([], []),
        }
        for _ in range(args.repeats):
            with torch.no_grad():
                start = time.perf_counter()
                block(x)
                rows["flowspec"][0].append(time.perf_counter() - start)
                rows["flowspec"][1].append(block.nfe[0])
                twin.calls = 0
                start = time.perf_counter()
                twin.solve(x)
                rows["torchdiffeq twin"][0].append(time.perf_counter() - start)
                rows["torchdiffeq twin"][1].append(twin.calls)
                zcount.calls = 0
                start = time.perf_counter()
                cnf().transform.call_and_ladj(x)
                rows["zuko CNF"][0].append(time.perf_counter() - start)
                rows["zuko CNF"][1].append(zcount.calls)
        print(f"\n{trace} trace: dopri5, rtol = atol = 1e-5, batch {batch}, eval, no_grad")
        print(f"  {'':<18} {'per call':>10} {'NFE':>6} {'per NFE':>10}")
        per_nfe = {}
        for name, (ts, nfes) in rows.items():
            per = [s / n for s, n in zip(ts, nfes, strict=True)]
            per_nfe[name] = median(per)
            print(
                f"  {name:<18} {1e3 * median(ts):8.1f} ms {median(nfes):6.0f} "
                f"{1e3 * per_nfe[name]:8.3f} ms"
            )
        ours = per_nfe["flowspec"]
        print(
            "  per NFE, flowspec / twin "
            f"{ours / per_nfe['torchdiffeq twin']:.2f}×, / zuko {ours / per_nfe['zuko CNF']:.2f}×"
        )
        if not math.isfinite(ours):
            raise SystemExit("a measurement failed")


if __name__ == "__main__":
    main()

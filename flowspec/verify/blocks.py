"""The checks of one block (or of the whole module) at recorded inputs.

:class:`Subject` is what is checked: four callables with the runtime contract of
:class:`~flowspec.runtime.base.Bijection` (fused ``forward`` and ``inverse``, value-only
``transform`` and ``inverse_transform``), the inputs, and what is known of it (its
tolerance, whether its log-det is stochastic, its proven Lipschitz bounds).  Each check
appends one :class:`~flowspec.verify.report.Check`; an exception inside a check is that
check's failure (its message in the note), never a crash of ``verify``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from flowspec.verify import tolerances as T
from flowspec.verify.numerics import as_tuple, estimate_stats, flat_jacobians, power_sigma
from flowspec.verify.report import BlockReport, Check

#: up to this many features per sample, dense Jacobians of every sample
FULL_MAX = 1024
#: up to this many, a dense Jacobian of the first sample only (and, per block, only for
#: a seeded random subset of the blocks that large); above it, no dense Jacobian
DENSE_MAX = 4096
#: estimates per call of a stochastic log-det: the inputs repeated along the batch
REPLICAS = 8


@dataclass
class Subject:
    forward: Callable[..., Any]
    inverse: Callable[..., Any]
    transform: Callable[..., Any]
    inverse_transform: Callable[..., Any]
    xs: list[Tensor]
    tol: float
    tau: float
    stochastic: bool = False
    #: proven bias of the estimator (a truncated series), added to its interval
    bias: float = 0.0
    lipschitz: float | None = None
    inverse_lipschitz: float | None = None
    #: the float64 map whose Jacobian is the brute-force reference (value only)
    reference: Callable[..., Any] | None = None
    #: a context manager turning exact evaluation on, for stochastic subjects
    exact: Callable[[], Any] | None = None
    exact_tol: float = 0.0
    #: brute-force the log-det (False: sub-sampled away, with ``skip_note``)
    dense: bool = True
    #: how many samples get a dense Jacobian (None: all)
    jac_samples: int | None = None
    skip_note: str = ""
    parameters: list[Tensor] = field(default_factory=list)
    #: the as-written map runs in the inverse direction of this subject (a generative
    #: flow checked as its module): its Lipschitz bounds swap
    swapped: bool = False


def rel_error(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> float:
    """max |a − b| / (1 + max |b|) over the tensors."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return math.inf
        if x.numel() == 0:
            continue
        err = (x.double() - y.double()).abs().max().item()
        worst = max(worst, err / (1.0 + y.double().abs().max().item()))
    return worst


def ladj_error(ladj: Tensor, exact: Tensor) -> float:
    exact = exact.to(torch.float64)
    return ((ladj.double() - exact).abs() / (1.0 + exact.abs())).max().item()


def _nonfinite(ts: tuple[Tensor, ...]) -> int:
    return int(sum((~torch.isfinite(t)).sum().item() for t in ts if t.is_floating_point()))


@contextmanager
def _guard(report: BlockReport, quantity: str, tolerance: float) -> Iterator[None]:
    try:
        yield
    except Exception as e:  # a check that raises fails, with the reason
        lines = str(e).strip().splitlines()
        reason = f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]
        report.add(Check(quantity, math.nan, tolerance, False, reason))


def _check(report: BlockReport, quantity: str, measured: float, tolerance: float, note: str = ""):
    ok = math.isfinite(measured) and measured <= tolerance
    report.add(Check(quantity, measured, tolerance, ok, note))


def _stack(xs: list[Tensor], r: int) -> list[Tensor]:
    return [x.repeat(r, *([1] * (x.dim() - 1))) for x in xs]


def _draws(fn: Callable[..., Any], xs: list[Tensor], draws: int) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, standard error and the standard deviation of one estimate, of the log-det
    estimates of ``fn`` at ``xs``: ``draws`` estimates in calls of :data:`REPLICAS`
    copies; each call's mean is one draw (copies of one call may share randomness, e.g.
    roulette's N), so the error is over calls."""
    b = xs[0].shape[0]
    calls = max(10, math.ceil(draws / REPLICAS))
    stacked = _stack(xs, REPLICAS)

    def one() -> Tensor:
        return fn(*stacked)[1].reshape(REPLICAS, b)

    with torch.no_grad():
        return estimate_stats(one, calls)


def check_subject(s: Subject, report: BlockReport, draws: int) -> None:
    """Round trip, fused vs value-only, inverse ladj = −forward, ladj against the
    brute-force Jacobian (or, stochastic, a confidence interval), measured Lipschitz
    constants against the proven bounds, finite values and gradients."""
    xs = s.xs
    with torch.no_grad():
        ys, ladj = None, None
        with _guard(report, "finite", 0.0):
            ys, ladj = s.forward(*xs)
            ys = as_tuple(ys)
            _check(report, "finite", float(_nonfinite((*ys, ladj))), 0.0)
        if ys is None:
            return
        back, ladj_inv = None, None
        with _guard(report, "round trip", s.tol):
            back, ladj_inv = s.inverse(*ys)
            back = as_tuple(back)
            note = "non-finite values" if _nonfinite((*back, ladj_inv)) else ""
            _check(report, "round trip", rel_error(back, tuple(xs)), s.tol, note)
        with _guard(report, "fused", s.tol):
            fused = rel_error(as_tuple(s.transform(*xs)), ys)
            if back is not None:
                fused = max(fused, rel_error(as_tuple(s.inverse_transform(*ys)), back))
            _check(report, "fused", fused, s.tol)
        if ladj_inv is not None and not s.stochastic:
            with _guard(report, "inverse ladj", s.tol):
                _check(report, "inverse ladj", ladj_error(-ladj_inv, ladj), s.tol)
    jac = None
    if s.dense:
        with _guard(report, "ladj", s.tau):
            ref = s.reference or s.transform
            xs64 = [x[: s.jac_samples].detach().to(torch.float64) for x in xs]
            jac = flat_jacobians(lambda *v: ref(*v), xs64)
            exact = torch.linalg.slogdet(jac)[1]
            if jac.shape[0] < ladj.shape[0]:  # the first sample only (large inputs)
                ladj = ladj[: jac.shape[0]]
            if s.stochastic:
                _stochastic(s, report, exact, draws)
            else:
                _check(report, "ladj", ladj_error(ladj, exact), s.tau)
    else:
        report.add(Check("ladj", math.nan, s.tau, True, s.skip_note, skipped=True))
    _lipschitz(s, report, jac)
    _gradients(s, report)


def _stochastic(s: Subject, report: BlockReport, exact: Tensor, draws: int) -> None:
    xs = [x[: exact.shape[0]] for x in s.xs]
    mean, se, sd = _draws(s.forward, xs, draws)
    gap = (mean - exact).abs()
    allowed = T.SIGMAS * se + s.bias + s.tau * (1.0 + exact.abs())
    worst = int(torch.argmax(gap - allowed))
    note = (
        f"mean of {max(10, math.ceil(draws / REPLICAS)) * REPLICAS} estimates "
        f"{mean[worst].item():.6g}, exact {exact[worst].item():.6g}, "
        f"standard error {se[worst].item():.2g}; one estimate's standard deviation "
        f"{sd[worst].item():.2g} (largest over the inputs {sd.max().item():.2g})"
    )
    if s.bias:
        note += f", proven bias ≤ {s.bias:.2g}"
    _check(report, "stochastic ladj", gap[worst].item(), allowed[worst].item(), note)
    spread = sd.max().item()
    report.add(Check("estimate sd", spread, math.inf, math.isfinite(spread), "no tolerance"))
    with torch.no_grad():
        ys = as_tuple(s.transform(*xs))
        mean_inv, se_inv, _ = _draws(s.inverse, list(ys), draws)
    gap = (-mean_inv - exact).abs()
    allowed = T.SIGMAS * se_inv + s.bias + s.tol * (1.0 + exact.abs())
    worst = int(torch.argmax(gap - allowed))
    _check(
        report,
        "inverse ladj",
        gap[worst].item(),
        allowed[worst].item(),
        "mean of the inverse's estimates against −log|det J|",
    )
    if s.exact is not None:
        with torch.no_grad(), s.exact():
            _, ladj = s.forward(*xs)
        _check(report, "exact ladj", ladj_error(ladj, exact), s.exact_tol)


def _lipschitz(s: Subject, report: BlockReport, jac: Tensor | None) -> None:
    fwd, inv = s.lipschitz, s.inverse_lipschitz
    if s.swapped:
        fwd, inv = inv, fwd
    if fwd is None and inv is None:
        return
    with _guard(report, "lipschitz", fwd or inv or 0.0):
        if jac is not None:
            sv = torch.linalg.svdvals(jac)
            big, small = sv[:, 0].max().item(), sv[:, -1].min().item()
        else:
            first = [x[:1].detach() for x in s.xs]
            with torch.enable_grad():
                big = power_sigma(s.transform, first)
                ys = [y.detach() for y in as_tuple(s.transform(*first))]
                small = 1.0 / power_sigma(s.inverse_transform, ys)
        measured = {"lipschitz": big, "inverse lipschitz": 1.0 / small if small > 0 else math.inf}
        if s.swapped:  # the as-written map is this subject's inverse
            measured = {
                "lipschitz": measured["inverse lipschitz"],
                "inverse lipschitz": measured["lipschitz"],
            }
        for quantity, bound in (
            ("lipschitz", s.lipschitz),
            ("inverse lipschitz", s.inverse_lipschitz),
        ):
            if bound is not None:
                _check(
                    report,
                    quantity,
                    measured[quantity],
                    bound * (1.0 + s.tau),
                    f"proven bound {bound:.6g}",
                )


def _gradients(s: Subject, report: BlockReport) -> None:
    with _guard(report, "gradients", 0.0), torch.enable_grad():
        xs = [x.detach().requires_grad_(True) for x in s.xs]
        ys, ladj = s.forward(*xs)
        gen = torch.Generator().manual_seed(7)

        def weighted(t: Tensor) -> Tensor:
            w = torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype)
            return (t * w).sum()

        loss = sum(weighted(y) for y in as_tuple(ys)) + weighted(ladj)
        wrt = [*xs, *[p for p in s.parameters if p.requires_grad]]
        grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        bad = _nonfinite(tuple(g for g in grads if g is not None))
        _check(report, "gradients", float(bad), 0.0)


__all__ = [
    "DENSE_MAX",
    "FULL_MAX",
    "REPLICAS",
    "Subject",
    "check_subject",
    "ladj_error",
    "rel_error",
]

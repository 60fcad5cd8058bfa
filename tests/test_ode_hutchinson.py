"""How the ``ode`` block evaluates its dynamics (issue 14): the Hutchinson probes stay out
of the solver's state, the time features folded into the first layer leave f as it was,
and the estimate stays unbiased for the exact float64 trace integral."""

from __future__ import annotations

import pytest
import torch
from test_ode import MEDIUM, assert_mean_within, hutchinson, mlp, ode
from torch import Tensor

import flowspec.runtime.ode as ode_module
from flowspec.kinds.options import Choice

F64 = torch.float64


def test_the_solver_integrates_x_and_the_log_det_only(monkeypatch) -> None:
    shapes: list[list[tuple[int, ...]]] = []
    solve = ode_module.odeint

    def recording(func, state, span, **kw):
        shapes.append([tuple(s.shape) for s in state])
        return solve(func, state, span, **kw)

    monkeypatch.setattr(ode_module, "odeint", recording)
    block = ode(trace=hutchinson(4))
    with torch.no_grad():
        block(torch.randn(5, 3, dtype=F64))
    assert shapes == [[(5, 3), (5,)]]


@pytest.mark.parametrize("time", [Choice("concat"), Choice("fourier", features=2)])
def test_folding_the_time_features_leaves_f_unchanged(time: Choice) -> None:
    block = ode(net=mlp([8, 8]), time=time)
    dyn = block.dynamics
    assert dyn.fold
    x, t = torch.randn(6, 3, dtype=F64), torch.tensor(0.3, dtype=F64)
    e = dyn.embed(t).to(F64)
    plain = dyn.net(torch.cat([x, e.expand(6, e.shape[0])], dim=1))
    assert torch.allclose(dyn.velocity(t, x), plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("samples", [1, 3])
def test_hutchinson_mean_is_the_exact_float64_trace_integral(samples: int) -> None:
    """Copies of two inputs draw independent probes in one solve: the mean of 1500
    estimates is within five standard errors of ∫ tr(∂f/∂x) dt by the exact trace."""
    x = torch.randn(2, 3, dtype=F64)
    with torch.no_grad():
        _, exact = ode(trace=Choice("exact"), **MEDIUM)(x)
    block = ode(trace=hutchinson(samples), **MEDIUM)
    torch.manual_seed(11)
    with torch.no_grad():
        _, ladj = block(x.repeat(1500, 1))
    draws = ladj.reshape(1500, 2)
    assert_mean_within(draws, exact)
    assert draws.std(0).min() > 1e-3  # a real estimate, not the exact trace


def _gradient(block, x: Tensor, seed: int, twice: bool) -> Tensor:
    xi = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    y, ladj = block(xi)
    if twice:  # another call (new probes) before the first one's backward
        block(x.flip(0))
    (grad,) = torch.autograd.grad(y.sum() + ladj.sum(), xi)
    return grad


def test_the_adjoint_keeps_each_calls_probes() -> None:
    x = torch.randn(4, 3, dtype=F64)
    direct = _gradient(ode(trace=hutchinson(2), adjoint=False), x, 9, twice=False)
    adjoint = _gradient(ode(trace=hutchinson(2), adjoint=True), x, 9, twice=True)
    assert torch.allclose(direct, adjoint, rtol=1e-6, atol=1e-6)

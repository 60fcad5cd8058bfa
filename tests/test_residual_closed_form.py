"""The residual block's fast paths against brute force, in float64 (issue 14): the
closed-form Jacobian products of the Lipschitz MLP, the fused LipSwish, the Hutchinson
estimate and Neumann gradient computed with them, and the fixed-point inverse that lets
converged samples leave the batch."""

from __future__ import annotations

import pytest
import torch
from test_residual import residual

from flowspec.kinds.options import Choice
from flowspec.runtime.mlp_jacobian import Linearization, folded, linearize, value_and_slope
from flowspec.runtime.nets import LipSwish, make_activation

F64 = torch.float64
ACTS = ["lipswish", "elu", "tanh", "softplus", "leaky_relu", "sigmoid"]


def _jacobian(block, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda t: block.g(t).sum(0), x).permute(1, 0, 2)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("graph", [False, True])
def test_vjp_and_jvp_are_the_jacobian_products(act: str, graph: bool) -> None:
    block = residual(d=5, hidden=(7, 6), act=act)
    x = torch.randn(4, 5, dtype=F64)
    jac = _jacobian(block, x)  # [B, i, j] = ∂g_i/∂x_j
    lin = Linearization(block.g, x, block.g.weights(), graph=graph)
    u, v = torch.randn(4, 5, dtype=F64), torch.randn(4, 5, dtype=F64)
    torch.testing.assert_close(lin.value, block.g(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(lin.vjp(u), torch.einsum("bi,bij->bj", u, jac), rtol=0, atol=1e-13)
    torch.testing.assert_close(lin.jvp(v), torch.einsum("bij,bj->bi", jac, v), rtol=0, atol=1e-13)
    assert lin.value.requires_grad == graph
    assert not lin.vjp(u).requires_grad and not lin.jvp(v).requires_grad


def test_linearize_is_for_dense_nets_only() -> None:
    x = torch.randn(2, 3, dtype=F64)
    assert isinstance(linearize(residual().g, x, residual().g.weights()), Linearization)
    conv = torch.nn.Conv2d(1, 1, 1)
    assert linearize(conv, x, []) is None


@pytest.mark.parametrize("act", ACTS)
def test_slopes_are_the_derivatives(act: str) -> None:
    module = make_activation(Choice(act)).double()
    h = torch.linspace(-6, 6, 101, dtype=F64).requires_grad_()
    value, slope = value_and_slope(module, h.detach())
    (expected,) = torch.autograd.grad(module(h).sum(), h)
    torch.testing.assert_close(value, module(h).detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(slope, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("raw", [0.5413, -3.0, 4.0, -200.0])
def test_fused_lipswish_is_x_sigmoid_beta_x(raw: float) -> None:
    act = LipSwish().double()
    with torch.no_grad():
        act.raw_beta.fill_(raw)
    x = torch.linspace(-30, 30, 241, dtype=F64, requires_grad=True)
    beta = torch.nn.functional.softplus(act.raw_beta)
    torch.testing.assert_close(act(x), x * torch.sigmoid(beta * x) / 1.1, rtol=1e-14, atol=1e-14)
    assert torch.autograd.gradcheck(act, (x[::20].detach().requires_grad_(),))


@pytest.mark.parametrize("samples", [1, 3])
@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_eval_estimate_is_the_series_with_the_same_probes(samples: int, noise: str) -> None:
    """With the probes drawn from the same seed, the closed-form Hutchinson series is
    mean_s Σ_k (−1)^{k+1}/k · v_sᵀ J^k v_s with J from autograd's Jacobian."""
    terms = 7
    block = residual(
        d=4, hidden=(8,), logdet=Choice("series", terms=terms),
        trace=Choice("hutchinson", samples=samples, noise=Choice(noise)),
    )  # fmt: skip
    x = torch.randn(5, 4, dtype=F64)
    jac = _jacobian(block, x)
    torch.manual_seed(3)
    if noise == "gaussian":
        v = torch.randn(samples, 5, 4, dtype=F64)
    else:
        v = torch.randint(0, 2, (samples, 5, 4), dtype=F64) * 2 - 1
    expected = torch.zeros(samples, 5, dtype=F64)
    w = v
    for k in range(1, terms + 1):
        w = torch.einsum("sbi,bij->sbj", w, jac)
        expected = expected + (-1) ** (k + 1) / k * (w * v).sum(-1)
    torch.manual_seed(3)
    with torch.no_grad():
        y, ladj = block(x)
    torch.testing.assert_close(ladj, expected.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(y, block.transform(x), rtol=0, atol=0)


@pytest.mark.parametrize("logdet", [Choice("series", terms=6), Choice("roulette", p=0.4)])
@pytest.mark.parametrize("hidden", [(8,), (7, 6)])
@pytest.mark.parametrize("samples", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_neumann_gradient_equals_the_autograd_products(
    logdet: Choice, hidden: tuple[int, ...], samples: int, weighted: bool
) -> None:
    """The closed-form Neumann path (its surrogate's gradient by
    ``Linearization.surrogate_grads``) and the autograd one (``_ladj_hutchinson``, a
    double backward), fed the same probes and the same number of terms, give the same
    value and gradients: for a mean loss (the gradients taken in forward) and for a
    weighted one (the weights' gradients rebuilt in backward)."""
    block = residual(
        d=4, hidden=hidden, logdet=logdet, grad=Choice("neumann"),
        trace=Choice("hutchinson", samples=samples),
    )  # fmt: skip
    x = torch.randn(6, 4, dtype=F64, requires_grad=True)
    params = [x, *block.g.parameters()]
    loss_weights = torch.arange(6.0, dtype=F64) if weighted else torch.full((6,), 0.5, dtype=F64)

    torch.manual_seed(11)
    n_fast = block.estimator.weights()[0]
    torch.manual_seed(11)
    _, fast = block(x)
    fast_grads = torch.autograd.grad((fast * loss_weights).sum(), params, allow_unused=True)

    torch.manual_seed(11)
    n_slow = block.estimator.weights()[0]
    assert n_fast == n_slow
    torch.manual_seed(11)
    weights = block.g.weights()
    stacked = x.expand(samples, 6, 4).reshape(samples * 6, 4)
    gx = block.g(stacked, weights)
    slow = block._ladj_hutchinson(gx, stacked, 6, 4, True, block.estimator, weights)
    names = [type(f).__name__ for f in (fast.grad_fn, slow.grad_fn)]
    assert names == ["NeumannInForwardBackward"] * 2
    slow_grads = torch.autograd.grad((slow * loss_weights).sum(), params, allow_unused=True)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        assert (a is None) == (b is None)  # the last bias does not reach J_g
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_inverse_lets_converged_samples_leave_and_keeps_their_order() -> None:
    """Samples at very different scales stop at different iterations: each output is
    within the certified bound of its own exact preimage, in its own row."""
    block = residual(d=4, hidden=(16,), c=0.9, inverse=Choice("fixedpoint", tol=1e-9,
                     max_iter=5000)).eval()  # fmt: skip
    scales = torch.logspace(-6, 1, 64, dtype=F64).unsqueeze(1)
    y = scales * torch.randn(64, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    y = y[torch.randperm(64, generator=torch.Generator().manual_seed(5))]
    with torch.no_grad():
        x = block.inverse_transform(y)
        weights = block.g.weights()
        exact = y.clone()
        for _ in range(3000):
            exact = y - block.g(exact, weights)
    errors = (x - exact).norm(dim=1)
    assert float(errors.max()) <= block.last_error_bound <= 1e-9 + block.rounding_floor(y)
    torch.testing.assert_close(x + block.g(x, weights), y, rtol=0, atol=1e-8)
    # row by row, the same answer as solving each sample alone
    with torch.no_grad():
        alone = torch.cat([block.inverse_transform(y[i : i + 1]) for i in range(0, 64, 9)])
    torch.testing.assert_close(x[::9], alone, rtol=0, atol=2e-9)


def test_lipswish_function_is_differentiable_in_every_mode() -> None:
    """The saving-x-only autograd Function: gradients in x and β (first and second order,
    forward mode) and the torch.func transforms the ODE block uses."""
    act = LipSwish().double()
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(act, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(act, (x,))
    raw = act.raw_beta

    def of_raw(r: torch.Tensor) -> torch.Tensor:
        beta = torch.nn.functional.softplus(r)
        return x.detach() * torch.sigmoid(beta * x.detach()) / 1.1

    (g_fn,) = torch.autograd.grad(act(x.detach()).sum(), raw)
    (g_ref,) = torch.autograd.grad(of_raw(raw).sum(), raw)
    torch.testing.assert_close(g_fn, g_ref, rtol=1e-12, atol=0)
    jac_fwd = torch.func.jacfwd(act)(x.detach()[0])
    jac_rev = torch.func.jacrev(act)(x.detach()[0])
    torch.testing.assert_close(jac_fwd.detach(), jac_rev.detach(), rtol=0, atol=1e-15)
    _, vjp = torch.func.vjp(act, x.detach())
    (rows,) = torch.func.vmap(vjp)(torch.eye(3, dtype=F64).unsqueeze(1).expand(3, 4, 3))
    slope = value_and_slope(act, x.detach())[1]
    torch.testing.assert_close(rows.diagonal(dim1=0, dim2=2).detach(), slope, rtol=0, atol=1e-15)


def test_lipswish_curvature_is_the_second_derivatives() -> None:
    act = LipSwish().double()
    x = torch.linspace(-5, 5, 41, dtype=F64, requires_grad=True)
    (slope,) = torch.autograd.grad(act(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(slope.sum(), x, retain_graph=True)
    curv, dphi_dbeta, dslope_dbeta = act.curvature(x.detach())
    torch.testing.assert_close(curv, second, rtol=0, atol=1e-14)
    beta = act.beta().detach()
    xd = x.detach()

    def value(b: torch.Tensor) -> torch.Tensor:
        return xd * torch.sigmoid(b * xd) / 1.1

    def slope_of(b: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(b * xd)
        return (s + b * xd * s * (1 - s)) / 1.1

    torch.testing.assert_close(dphi_dbeta, torch.func.jacrev(value)(beta), rtol=0, atol=1e-14)
    torch.testing.assert_close(dslope_dbeta, torch.func.jacrev(slope_of)(beta), rtol=0, atol=1e-14)


@pytest.mark.parametrize("hidden", [(), (8,), (7, 6, 5)])
def test_folded_step_is_y_minus_g(hidden: tuple[int, ...]) -> None:
    """The inverse's step with LipSwish's scales folded into the layers is y − g(x)."""
    block = residual(d=4, hidden=hidden)
    with torch.no_grad():
        for act in block.g.acts:
            act.raw_beta.normal_()
    x, y = torch.randn(6, 4, dtype=F64), torch.randn(6, 4, dtype=F64)
    weights = block.g.weights()
    fold = folded(block.g, weights)
    assert fold is not None
    with torch.no_grad():
        expected = y - block.g(x, weights)
    torch.testing.assert_close(fold.step(x, fold.shift(y)), expected, rtol=0, atol=1e-14)
    assert folded(residual(d=4, act="tanh").g, weights) is None

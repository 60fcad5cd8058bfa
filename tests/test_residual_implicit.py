"""Gradients through the residual block's fixed-point inverse are those of the implicit
function x*(y, θ), x* = y − g(x*): against torch.autograd.gradcheck, against the float64
gradient of a long unrolled solve, and against the first-order step they replaced
(issue 14)."""

from __future__ import annotations

import pytest
import torch
from test_residual import residual

from flowspec.kinds.options import Choice

F64 = torch.float64
TIGHT = Choice("fixedpoint", tol=1e-13, max_iter=2000)


def _unrolled(block, y: torch.Tensor, steps: int = 400) -> torch.Tensor:
    """x_K of x_{k+1} = y − g(x_k), differentiated through every step (the exact gradient
    of the unrolled map, which tends to the implicit one as K grows: c^K ≈ 1e-36)."""
    weights = block.g.weights()
    x = y
    for _ in range(steps):
        x = y - block.g(x, weights)
    return x


@pytest.mark.parametrize("c", [0.5, 0.9])
def test_gradients_equal_those_of_a_long_unrolled_solve(c):
    block = residual(d=4, hidden=(16,), c=c, inverse=TIGHT).eval()
    y = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    cotangent = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    params = [p for p in block.parameters() if p.requires_grad]

    def grads(solve):
        yy = y.clone().requires_grad_()
        out = solve(yy)
        return torch.autograd.grad((out * cotangent).sum(), [yy, *params])

    implicit = grads(block.inverse_transform)
    unrolled = grads(lambda v: _unrolled(block, v))
    for a, b in zip(implicit, unrolled, strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-8)

    # the first-order step the implicit gradient replaced is measurably wrong here
    def first_order(v):
        weights = block.g.weights()
        with torch.no_grad():
            x = block.inverse_transform(v)
        return v - block.g(x, weights)

    approx = grads(first_order)
    assert (approx[0] - unrolled[0]).abs().max() > 1e-3


def test_gradcheck_through_the_inverse_and_its_ladj():
    block = residual(d=3, hidden=(8,), c=0.7, inverse=TIGHT, logdet=Choice("exact")).eval()
    y = torch.randn(2, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(block.inverse_transform, (y,), atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradcheck(lambda v: block.inverse(v)[1], (y,), atol=1e-7, rtol=1e-6)


def test_reverse_kl_training_gradient_through_sampling_is_exact():
    """The case the issue names: a loss on samples x = F⁻¹(z) (generative direction), its
    gradient w.r.t. the weights against the unrolled solve's."""
    block = residual(d=2, hidden=(16,), c=0.9, inverse=TIGHT).eval()
    z = torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    params = [p for p in block.parameters() if p.requires_grad]
    loss = (block.inverse_transform(z) ** 2).sum()
    implicit = torch.autograd.grad(loss, params)
    reference = torch.autograd.grad((_unrolled(block, z) ** 2).sum(), params)
    for a, b in zip(implicit, reference, strict=True):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-8)


def test_an_adjoint_that_cannot_converge_names_the_block():
    block = residual(d=3, c=0.95, inverse=Choice("fixedpoint", tol=1e-13, max_iter=3))
    block.name = "residual at f.flow:3:9"
    y = torch.randn(4, 3, dtype=F64, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"residual at f\.flow:3:9: the fixed-point"):
        block.inverse_transform(y).sum().backward()


# ------------------------------------------------- the certified stopping rule


@pytest.mark.parametrize("c", [0.5, 0.9, 0.97])
@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_the_true_error_is_within_the_certified_bound(c, tol):
    """Perturbed blocks (weights at 5× their initial scale, so every layer is at its
    bound): the error against a 3,000-iteration float64 solve never exceeds the bound
    the solve reports, the bound is ≤ tol, and one iteration fewer would not have been."""
    block = residual(d=4, hidden=(16,), c=c, seed=7, inverse=Choice("fixedpoint", tol=tol,
                     max_iter=5000)).eval()  # fmt: skip
    y = 3 * torch.randn(32, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        x = block.inverse_transform(y)
        n, bound = block.last_iterations, block.last_error_bound
        exact = y.clone()
        weights = block.g.weights()
        for _ in range(3000):
            exact = y - block.g(exact, weights)
        true = (x - exact).norm(dim=1).max().item()
    assert bound <= tol + block.rounding_floor(y) and true <= bound
    # the stop is where the rule says: the bound after n − 1 steps was still over tol
    c_cert = block.contraction()
    with torch.no_grad():
        prev = y.clone()
        for _ in range(n - 2):
            prev = y - block.g(prev, weights)
        last = y - block.g(prev, weights)
        before = (c_cert / (1 - c_cert) * (last - prev).norm(dim=1)).max().item()
    assert n == 1 or before > tol + block.rounding_floor(y)
    assert n <= block.predicted_iterations(block.g(y, weights).norm(dim=1).max().item())


def test_an_unreachable_tolerance_is_an_error_naming_the_block():
    block = residual(d=3, c=0.97, inverse=Choice("fixedpoint", tol=1e-9, max_iter=5))
    block.name = "residual at f.flow:4:9"
    with pytest.raises(RuntimeError, match=r"residual at f\.flow:4:9: .*certified error bound"):
        block.inverse_transform(torch.randn(4, 3, dtype=F64))

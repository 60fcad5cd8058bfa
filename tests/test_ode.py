"""The FFJORD block against brute force: round trips to solver tolerance, the exact-trace
log-det against the Jacobian of the whole ODE map, Hutchinson by confidence intervals."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from flowspec.kinds.options import Choice
from flowspec.runtime.ode import ODE

F64 = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
#: for the big batches of the estimator tests: solver error ≪ the standard errors
MEDIUM = {"rtol": 1e-7, "atol": 1e-7}


def mlp(hidden: list[int], act: str = "tanh") -> Choice:
    return Choice("mlp", hidden=hidden, act=Choice(act), init=Choice("zero"))


def hutchinson(samples: int = 1, noise: str = "rademacher") -> Choice:
    return Choice("hutchinson", samples=samples, noise=Choice(noise))


def ode(
    shape=(3,), net: Choice | None = None, seed: int = 0, scale: float = 0.5, **options
) -> ODE:
    """A float64 ODE block with its parameters perturbed by N(0, scale²): the
    zero-initialised last layer would otherwise make f ≡ 0 and every check trivial."""
    torch.manual_seed(seed)
    options = {"solver": Choice("dopri5"), "adjoint": False, **TIGHT, **options}
    block = ODE([shape], net=net or mlp([16]), **options).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(scale * torch.randn_like(p))
    return block


def brute_force_logdet(block: ODE, x: Tensor) -> Tensor:
    b = x.shape[0]
    flat = x.reshape(b, -1)

    def fn(v: Tensor) -> Tensor:
        return block.transform(v.reshape(x.shape)).reshape(b, -1).sum(0)

    jac = torch.autograd.functional.jacobian(fn, flat).permute(1, 0, 2)
    return torch.linalg.slogdet(jac)[1]


def assert_mean_within(samples: Tensor, exact: Tensor, sigmas: float = 5.0) -> None:
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    assert bool(((mean - exact).abs() <= sigmas * se + 1e-9).all()), (
        f"mean {mean.tolist()} vs exact {exact.tolist()} (standard errors {se.tolist()})"
    )


def test_starts_at_the_identity() -> None:
    block = ODE([(3,)], net=mlp([8]), trace=Choice("exact")).double()
    x = torch.randn(4, 3, dtype=F64)
    y, ladj = block(x)
    # f ≡ 0 exactly; dopri5's dense output at t₁ may still round
    assert (y - x).abs().max().item() < 1e-14 and ladj.abs().max().item() == 0.0


CONV = Choice("conv", hidden=4, kernel=3, depth=1, act=Choice("tanh"), init=Choice("zero"))


@pytest.mark.parametrize(
    ("shape", "net", "adjoint"),
    [
        ((3,), mlp([16]), False),
        ((3,), mlp([16]), True),
        ((2, 2, 2), mlp([16], "softplus"), False),  # an mlp flattens an image
        ((1, 3, 3), CONV, False),  # a time channel
    ],
    ids=["flat", "flat-adjoint", "mlp-on-image", "conv"],
)
def test_exact_trace_matches_the_jacobian_and_round_trips(shape, net, adjoint: bool) -> None:
    conv = net.kind == "conv"
    # conv: a milder perturbation and tolerance keep the 9-feature dynamics fast to
    # integrate; the log-det then sums the solver's error over 9 features
    tols = {"rtol": 1e-8, "atol": 1e-8} if conv else TIGHT
    block = ode(
        shape, net, trace=Choice("exact"), adjoint=adjoint, scale=0.2 if conv else 0.5, **tols
    )
    tol = 1e-6 if conv else 1e-8
    x = torch.randn(3, *shape, dtype=F64)
    with torch.no_grad():
        y, ladj = block(x)
        back, ladj_inv = block.inverse(y)
    assert (y - x).abs().max().item() > 1e-2  # the perturbed dynamics do move x
    assert (back - x).abs().max().item() < tol
    assert (ladj + ladj_inv).abs().max().item() < tol
    assert (ladj - brute_force_logdet(block, x)).abs().max().item() < 10 * tol
    with torch.no_grad():
        assert (block.transform(x) - y).abs().max().item() < tol
        assert (block.inverse_transform(y) - x).abs().max().item() < tol


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_for_the_exact_trace(noise: str) -> None:
    """Each sample of a batch draws its own probes, so copies of one input give
    independent estimates in a single solve."""
    exact_block = ode(trace=Choice("exact"), **MEDIUM)
    x = torch.randn(2, 3, dtype=F64)
    with torch.no_grad():
        _, exact = exact_block(x)
    block = ode(trace=hutchinson(noise=noise), **MEDIUM)
    draws = 2000
    torch.manual_seed(3)
    with torch.no_grad():
        y, ladj = block(x.repeat(draws, 1))
    samples = ladj.reshape(draws, 2)
    assert_mean_within(samples, exact)
    assert samples.std(0).min() > 1e-3
    assert (y.reshape(draws, 2, 3) - exact_block.transform(x)).abs().max().item() < 1e-5


def test_more_probes_lower_the_variance() -> None:
    x = torch.randn(1, 3, dtype=F64).repeat(1000, 1)
    stds = []
    for samples in (1, 8):
        torch.manual_seed(0)
        with torch.no_grad():
            stds.append(ode(trace=hutchinson(samples), **MEDIUM)(x)[1].std().item())
    assert stds[1] < 0.6 * stds[0]


def test_probes_are_fixed_within_a_call() -> None:
    """Forward and its own adjoint backward must see the same probes: the gradient with
    the adjoint equals the gradient by backprop through the solver (same seed)."""
    x = torch.randn(4, 3, dtype=F64)
    grads = []
    for adjoint in (False, True):
        block = ode(trace=hutchinson(2), adjoint=adjoint)
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(9)
        y, ladj = block(xi)
        (y.sum() + ladj.sum()).backward()
        grads.append(
            torch.cat([xi.grad.flatten(), *(p.grad.flatten() for p in block.parameters())])
        )
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-6)


def test_gradient_of_the_exact_log_det() -> None:
    """d(ladj)/dx by autograd through the solver equals the finite difference of the
    brute-force log-det."""
    block = ode(trace=Choice("exact"))
    x = torch.randn(1, 3, dtype=F64, requires_grad=True)
    _, ladj = block(x)
    (grad,) = torch.autograd.grad(ladj.sum(), x)
    h = 1e-5
    for i in range(3):
        e = torch.zeros_like(x)
        e[0, i] = h
        with torch.no_grad():
            fd = (block(x + e)[1] - block(x - e)[1]) / (2 * h)
        assert abs(fd.item() - grad[0, i].item()) < 1e-5


def test_batch_is_not_mixed_by_shared_steps() -> None:
    """The batch shares adaptive steps, but they are constants to autograd: no gradient
    flows from one sample's output to another's input."""
    block = ode(trace=Choice("exact"))
    x = torch.randn(3, 3, dtype=F64)
    jac = torch.autograd.functional.jacobian(lambda v: block(v)[0], x)  # [B, d, B, d]
    for i in range(3):
        for j in range(3):
            if i != j:
                assert jac[i, :, j, :].abs().max().item() == 0.0


@pytest.mark.parametrize("solver", ["rk4", "euler", "bosh3"])
def test_other_solvers(solver: str) -> None:
    block = ode(trace=Choice("exact"), solver=Choice(solver), t=0.5)
    x = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        y, ladj = block(x)
        back, ladj_inv = block.inverse(y)
    tol = 0.05 if solver == "euler" else 1e-5  # fixed steps: the discretisation error
    assert (back - x).abs().max().item() < tol
    assert (ladj + ladj_inv).abs().max().item() < tol


def test_float32_runs() -> None:
    torch.manual_seed(0)
    block = ODE([(3,)], net=mlp([8]), trace=hutchinson())
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(5, 3)
    y, ladj = block(x)
    assert y.dtype == ladj.dtype == torch.float32
    (y.sum() + ladj.sum()).backward()  # adjoint by default
    assert all(p.grad is not None for p in block.parameters())
    back = block.inverse_transform(y.detach())
    assert (back - x).abs().max().item() < 1e-3

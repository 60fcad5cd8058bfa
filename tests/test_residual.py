"""The residual block and its certified spectral normalisation, against brute force.

The Lipschitz guarantee is tested where power iteration is known to fail (a start
orthogonal to the top singular vector, near-equal top singular values, huge and tiny
scales, float32); the log-det estimators by confidence intervals around exact values.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import Tensor

from flowspec.blocks.lipschitz_layers import LipschitzMLP, SpectralLinear, sigma_max
from flowspec.blocks.residual import Residual
from flowspec.blocks.types import Choice

F64 = torch.float64


def exact_sigma(w: Tensor) -> float:
    return float(torch.linalg.matrix_norm(w.detach().double(), ord=2))


def mlp(hidden: list[int], act: str = "lipswish", init: str = "default") -> Choice:
    return Choice("mlp", hidden=hidden, act=Choice(act), init=Choice(init))


def residual(
    d: int = 3, hidden=(16,), c: float = 0.9, act: str = "lipswish", flat: bool = False, **options
) -> Residual:
    """A float64 residual block whose raw weights are 5× PyTorch's initialisation, so
    every layer is actually rescaled by the normalisation.  ``flat``: every weight has all
    singular values equal (2·UVᵀ), so J_g is as large as the bound allows (ρ ≈ c^L near
    0 with tanh) and the higher terms of the log-det series matter."""
    torch.manual_seed(options.pop("seed", 0))
    block = Residual([(d,)], net=mlp(list(hidden), act), lipschitz=c, **options).double()
    with torch.no_grad():
        for layer in block.g.layers:
            if flat:
                u, _, vh = torch.linalg.svd(torch.randn_like(layer.weight), full_matrices=False)
                layer.weight.copy_(2.0 * u @ vh)
            else:
                layer.weight.mul_(5.0)
            layer.bias.normal_(0, 0.3)
    return block


#: a block whose log-det series has large higher terms: Lip(g) ≤ 0.64, so ρ(J_g)² < 0.5
#: and the roulette estimator with p = 0.5 has a finite variance
STRONG = {"d": 3, "hidden": (3,), "c": 0.8, "act": "tanh", "flat": True}


def jacobian_logdet(block: Residual, x: Tensor) -> Tensor:
    jac = torch.autograd.functional.jacobian(lambda t: block.transform(t).sum(0), x)
    return torch.linalg.slogdet(jac.permute(1, 0, 2))[1]


def series_by_brute_force(block: Residual, x: Tensor, terms: int) -> Tensor:
    """Σ_{k=1}^{N} (−1)^{k+1}/k tr(J_g^k) with J_g from autograd.functional.jacobian."""
    jac = torch.autograd.functional.jacobian(lambda t: block.g(t).sum(0), x).permute(1, 0, 2)
    power, total = torch.eye(x.shape[1], dtype=x.dtype).expand_as(jac), 0.0
    for k in range(1, terms + 1):
        power = power @ jac
        total = total + (-1) ** (k + 1) / k * power.diagonal(dim1=-2, dim2=-1).sum(-1)
    return total


def assert_mean_within(samples: Tensor, exact: Tensor, sigmas: float = 5.0) -> None:
    """The confidence-interval test: |mean − exact| ≤ sigmas · standard error."""
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    gap = (mean - exact).abs()
    assert bool((gap <= sigmas * se + 1e-12).all()), (
        f"mean {mean.tolist()} vs exact {exact.tolist()} (standard errors {se.tolist()})"
    )


# ------------------------------------------------------------ the certified bound


def _adversarial_weights() -> list[tuple[str, Tensor, Tensor | None]]:
    """(name, weight, initial power-iteration vector v or None)."""
    gen = torch.Generator().manual_seed(3)
    out: list[tuple[str, Tensor, Tensor | None]] = []
    for shape in [(5, 5), (7, 3), (3, 7), (64, 64), (1, 9), (9, 1)]:
        out.append((f"gaussian{shape}", torch.randn(shape, generator=gen, dtype=F64), None))
    # power iteration started orthogonal to the top right singular vector stays on the
    # second one: the estimate is 0.999 while σ_max is 1
    q1, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=F64))
    q2, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=F64))
    s = torch.tensor([1.0, 0.999, 0.5, 0.2, 0.1, 0.0], dtype=F64)
    w = q1 @ torch.diag(s) @ q2.T
    out.append(("orthogonal start", w * 3.0, q2[:, 1].clone()))
    # a cluster of equal top singular values, rank one, and extreme scales
    s = torch.tensor([2.0, 2.0, 2.0, 1.999, 0.1, 0.1], dtype=F64)
    out.append(("clustered", q1 @ torch.diag(s) @ q2.T, None))
    u = torch.randn(8, 1, generator=gen, dtype=F64)
    v = torch.randn(1, 5, generator=gen, dtype=F64)
    out.append(("rank one", u @ v, None))
    out.append(("huge", 1e6 * torch.randn(6, 4, generator=gen, dtype=F64), None))
    out.append(("tiny", 1e-8 * torch.randn(6, 4, generator=gen, dtype=F64), None))
    out.append(("all ones", torch.ones(16, 16, dtype=F64), None))
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("c", [0.5, 0.9, 0.97, 0.999])
@pytest.mark.parametrize(
    ("name", "weight", "v0"), _adversarial_weights(), ids=[w[0] for w in _adversarial_weights()]
)
def test_normalized_weight_never_exceeds_c(name, weight, v0, c, dtype) -> None:
    out_f, in_f = weight.shape
    layer = SpectralLinear(in_f, out_f, c, power_iters=1).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(weight.to(dtype))
        if v0 is not None:
            layer.v.copy_(v0.to(dtype))
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            w = layer.normalized_weight()
        # exact σ_max (float64 SVD) of the very numbers used in forward
        assert exact_sigma(w) <= c * (1 + 1e-13), name
        assert layer.sigma_hat() >= exact_sigma(layer.weight)


def test_power_iteration_alone_would_break_the_bound() -> None:
    """The adversarial case above is real: scaling by the power-iteration estimate
    leaves σ_max above c, which is why the bound is certified by an SVD."""
    _, weight, v0 = next(w for w in _adversarial_weights() if w[0] == "orthogonal start")
    layer = SpectralLinear(6, 6, 0.9, power_iters=1).double()
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.v.copy_(v0)
    layer.sigma_hat()  # runs the power iteration
    estimate = float(layer.u @ layer.weight.detach() @ layer.v)
    assert estimate < 0.9995 * exact_sigma(weight)
    assert exact_sigma(weight * (0.9 / estimate)) > 0.9 * 1.0005
    assert exact_sigma(layer.normalized_weight()) <= 0.9 * (1 + 1e-13)


def test_certificate_follows_every_weight_change() -> None:
    layer = SpectralLinear(5, 5, 0.9).double()
    layer.normalized_weight()
    with torch.no_grad():
        layer.weight.data.mul_(50.0)  # through .data: no version bump for autograd
    assert exact_sigma(layer.normalized_weight()) <= 0.9 * (1 + 1e-13)
    layer.load_state_dict({k: v * 3 for k, v in layer.state_dict().items()})
    assert exact_sigma(layer.normalized_weight()) <= 0.9 * (1 + 1e-13)
    layer.float()
    assert exact_sigma(layer.normalized_weight()) <= 0.9 * (1 + 1e-13)


def test_small_weights_are_left_alone() -> None:
    layer = SpectralLinear(4, 4, 0.9).double()
    with torch.no_grad():
        layer.weight.mul_(0.01)
    assert layer.normalized_weight() is layer.weight


def test_gradient_of_the_normalisation_is_that_of_exact_spectral_normalisation() -> None:
    """Value from the SVD certificate, gradient from uᵀWv: once the power iteration has
    converged, the gradient is that of W ↦ c·W/σ_max(W)."""
    torch.manual_seed(0)
    layer = SpectralLinear(6, 5, 0.9, power_iters=200).double()
    with torch.no_grad():
        layer.weight.mul_(4.0)
    probe = torch.randn(5, 6, dtype=F64)
    (layer.normalized_weight() * probe).sum().backward()
    w = layer.weight.detach().clone().requires_grad_(True)
    (0.9 * w / torch.linalg.matrix_norm(w, ord=2) * probe).sum().backward()
    assert torch.allclose(layer.weight.grad, w.grad, atol=1e-9)


@pytest.mark.parametrize("act", ["lipswish", "elu", "tanh", "relu", "softplus", "leaky_relu"])
@pytest.mark.parametrize("c", [0.6, 0.97])
def test_empirical_lipschitz_ratio_never_exceeds_c(act: str, c: float) -> None:
    torch.manual_seed(1)
    g = LipschitzMLP(5, [32, 32], Choice(act), c, zero_last=False).double()
    with torch.no_grad():
        for layer in g.layers:
            layer.weight.mul_(20.0)
    bound = g.lipschitz_bound()
    assert bound <= c
    x = torch.randn(20000, 5, dtype=F64) * 2
    # random pairs, and close pairs (the ratio is largest for small steps)
    pairs = [x.roll(1, 0), x + 1e-4 * torch.randn_like(x)]
    with torch.no_grad():
        gx = g(x)
        for other in pairs:
            ratio = (g(other) - gx).norm(dim=1) / (other - x).norm(dim=1)
            assert ratio.max().item() <= bound * (1 + 1e-9)


def test_lipschitz_bound_of_the_block_is_proven_and_tight_enough() -> None:
    block = residual(d=4, hidden=(8, 8), c=0.9)
    bound = block.lipschitz_bound()
    # each of 3 layers has σ_max ≤ 0.9; lipswish is 1-Lipschitz
    assert bound <= 0.9**3 * (1 + 1e-9)
    assert block.g.layer_bound() <= 0.9**3 * (1 + 1e-9)
    for layer in block.g.layers:
        assert exact_sigma(layer.normalized_weight()) <= 0.9 * (1 + 1e-13)


# ------------------------------------------------------------------ log-det


def test_exact_logdet_matches_brute_force() -> None:
    block = residual(d=4, hidden=(16, 16), c=0.97, logdet=Choice("exact"))
    x = torch.randn(6, 4, dtype=F64)
    y, ladj = block(x)
    assert torch.allclose(y, block.transform(x), atol=0, rtol=0)
    assert (ladj - jacobian_logdet(block, x)).abs().max().item() < 1e-10


@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 3)])
def test_any_input_shape_is_flattened(shape) -> None:
    torch.manual_seed(0)
    block = Residual(
        [shape],
        net=mlp([8]),
        lipschitz=0.9,
        logdet=Choice("exact"),
        inverse=Choice("fixedpoint", tol=1e-12, max_iter=500),
    ).double()
    x = torch.randn(3, *shape, dtype=F64)
    y, ladj = block(x)
    assert y.shape == x.shape
    flat = x.reshape(3, -1)
    jac = torch.autograd.functional.jacobian(
        lambda t: block.transform(t.reshape(3, *shape)).reshape(3, -1).sum(0), flat
    )
    exact = torch.linalg.slogdet(jac.permute(1, 0, 2))[1]
    assert (ladj - exact).abs().max().item() < 1e-10
    back, ladj_inv = block.inverse(y)
    assert (back - x).abs().max().item() < 1e-8
    assert (ladj + ladj_inv).abs().max().item() < 1e-8


@pytest.mark.parametrize("terms", [1, 2, 7])
def test_series_with_exact_trace_is_the_truncated_series(terms: int) -> None:
    block = residual(logdet=Choice("series", terms=terms), trace=Choice("exact"))
    x = torch.randn(5, 3, dtype=F64)
    _, ladj = block(x)
    assert (ladj - series_by_brute_force(block, x, terms)).abs().max().item() < 1e-12


def test_long_series_converges_to_the_log_det() -> None:
    block = residual(c=0.7, logdet=Choice("series", terms=100), trace=Choice("exact"))
    x = torch.randn(5, 3, dtype=F64)
    _, ladj = block(x)
    assert (ladj - jacobian_logdet(block, x)).abs().max().item() < 1e-12


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_series_is_unbiased_for_the_truncated_series(noise: str) -> None:
    block = residual(
        logdet=Choice("series", terms=4),
        trace=Choice("hutchinson", samples=2, noise=Choice(noise)),
    )
    x = torch.randn(3, 3, dtype=F64)
    exact = series_by_brute_force(block, x, 4)
    torch.manual_seed(11)
    with torch.no_grad():
        draws = torch.stack([block(x)[1] for _ in range(600)])
    assert_mean_within(draws, exact)
    assert draws.std(0).min() > 0  # it is an estimator, not the exact value


@pytest.mark.parametrize("p", [0.5, 0.2])
@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_roulette_is_unbiased_for_the_log_det(trace: str, p: float) -> None:
    # with exact traces and p = 0.2 the interval is tight enough to catch a 10% error in
    # the weights of the terms k ≥ 2
    block = residual(logdet=Choice("roulette", p=p), trace=Choice(trace), **STRONG)
    x = torch.randn(3, 3, dtype=F64)
    exact = jacobian_logdet(block, x)
    torch.manual_seed(12)
    with torch.no_grad():
        draws = torch.stack([block(x)[1] for _ in range(1500)])
    assert_mean_within(draws, exact)
    assert draws.std(0).min() > 0


def test_stochastic_forward_is_a_flag_not_a_class() -> None:
    """One class: forward returns the configured estimate, transform the exact value."""
    block = residual(logdet=Choice("roulette", p=0.5))
    x = torch.randn(4, 3, dtype=F64)
    torch.manual_seed(1)
    y1, l1 = block(x)
    y2, l2 = block(x)
    assert torch.equal(y1, y2) and torch.equal(y1, block.transform(x))
    assert not torch.equal(l1, l2)


# ------------------------------------------------------------------ gradients


def _param_grads(block: Residual, x: Tensor, weights: Tensor) -> Tensor:
    block.zero_grad()
    xi = x.clone().requires_grad_(True)
    _, ladj = block(xi)
    (ladj * weights).sum().backward()
    grads = [
        torch.zeros(p.numel(), dtype=F64) if p.grad is None else p.grad.flatten()
        for p in block.parameters()
    ]
    return torch.cat([*grads, xi.grad.flatten()])


def test_neumann_gradient_equals_backprop_for_the_exact_trace_series() -> None:
    """With exact traces the Neumann surrogate's gradient is the gradient of the
    truncated series, exactly."""
    x = torch.randn(4, 3, dtype=F64)
    w = torch.randn(4, dtype=F64)
    grads = []
    for grad in ("backprop", "neumann"):
        block = residual(
            logdet=Choice("series", terms=6), trace=Choice("exact"), grad=Choice(grad)
        )
        grads.append(_param_grads(block, x, w))
    assert torch.allclose(grads[0], grads[1], atol=1e-11)


@pytest.mark.parametrize("grad", ["neumann", "backprop"])
def test_hutchinson_series_gradient_is_unbiased(grad: str) -> None:
    """Hutchinson traces, fixed N: the mean gradient (parameters and input) is the
    gradient of the truncated series, computed with exact traces and backprop."""
    x = torch.randn(3, 3, dtype=F64)
    w = torch.randn(3, dtype=F64)
    series = {**STRONG, "c": 0.95, "logdet": Choice("series", terms=6)}
    exact = _param_grads(residual(trace=Choice("exact"), **series), x, w)
    block = residual(trace=Choice("hutchinson", samples=1), grad=Choice(grad), **series)
    torch.manual_seed(5)
    draws = torch.stack([_param_grads(block, x, w) for _ in range(600)])
    assert_mean_within(draws, exact)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
@pytest.mark.parametrize("grad", ["neumann", "backprop"])
def test_roulette_gradient_is_unbiased_for_the_log_det_gradient(grad: str, trace: str) -> None:
    """Mean of the estimator's gradient (parameters and input) within standard errors of
    the gradient of the exact log-det."""
    x = torch.randn(3, 3, dtype=F64)
    w = torch.randn(3, dtype=F64)
    net = STRONG
    exact = _param_grads(residual(logdet=Choice("exact"), **net), x, w)
    block = residual(
        logdet=Choice("roulette", p=0.5),
        trace=Choice(trace) if trace == "exact" else Choice("hutchinson", samples=2),
        grad=Choice(grad),
        **net,
    )
    torch.manual_seed(5)
    draws = torch.stack([_param_grads(block, x, w) for _ in range(600)])
    assert_mean_within(draws, exact)


def test_neumann_builds_no_graph_through_the_series() -> None:
    """The memory saving: the autograd graph of a Neumann estimate does not grow with
    the number of terms, while backprop's does."""

    def graph_size(grad: str, terms: int) -> int:
        block = residual(logdet=Choice("series", terms=terms), grad=Choice(grad))
        _, ladj = block(torch.randn(2, 3, dtype=F64))
        seen, stack = set(), [ladj.grad_fn]
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            stack.extend(f for f, _ in fn.next_functions)
        return len(seen)

    assert graph_size("neumann", 20) == graph_size("neumann", 2)
    assert graph_size("backprop", 20) > graph_size("backprop", 2)


# ------------------------------------------------------------------ inverse


@pytest.mark.parametrize("c", [0.5, 0.97])
def test_fixed_point_inverse_round_trips(c: float) -> None:
    block = residual(
        d=4,
        hidden=(16, 16),
        c=c,
        logdet=Choice("exact"),
        inverse=Choice("fixedpoint", tol=1e-13, max_iter=2000),
    )
    x = 3 * torch.randn(64, 4, dtype=F64)
    y, ladj = block(x)
    back, ladj_inv = block.inverse(y)
    assert (back - x).abs().max().item() < 1e-8
    assert (ladj + ladj_inv).abs().max().item() < 1e-8
    assert (block.inverse_transform(y) - x).abs().max().item() < 1e-8


def test_non_convergence_raises_and_names_the_block() -> None:
    block = residual(inverse=Choice("fixedpoint", tol=1e-10, max_iter=1))
    y = torch.randn(4, 3, dtype=F64)
    with pytest.raises(RuntimeError, match=r"residual\(x: \[3\]\).*did not converge.*moved"):
        block.inverse(y)
    block.name = "x_7 = residual(...) at specs/f.flow:7"
    with pytest.raises(RuntimeError, match=re.escape("specs/f.flow:7")):
        block.inverse_transform(y)


def test_identity_at_initialisation() -> None:
    block = Residual([(3,)], net=mlp([8], init="zero"), lipschitz=0.9).double()
    x = torch.randn(4, 3, dtype=F64)
    y, ladj = block(x)
    assert torch.equal(y, x) and ladj.abs().max().item() == 0.0
    assert torch.equal(block.inverse(y)[0], x)


def test_float32_block_runs_and_keeps_the_bound() -> None:
    torch.manual_seed(0)
    block = Residual([(3,)], net=mlp([16]), lipschitz=0.97, logdet=Choice("exact"))
    with torch.no_grad():
        for layer in block.g.layers:
            layer.weight.mul_(30.0)
    x = torch.randn(8, 3)
    y, ladj = block(x)
    assert y.dtype == ladj.dtype == torch.float32
    for layer in block.g.layers:
        assert exact_sigma(layer.normalized_weight()) <= 0.97
    back = block.inverse_transform(y)
    assert (back - x).abs().max().item() < 1e-4


def test_training_step_keeps_the_bound() -> None:
    block = residual(c=0.9, logdet=Choice("series", terms=3), grad=Choice("neumann"))
    opt = torch.optim.Adam(block.parameters(), lr=0.5)  # big steps: weights change a lot
    for _ in range(5):
        x = torch.randn(16, 3, dtype=F64)
        y, ladj = block(x)
        loss = (0.5 * y.pow(2).sum(1) - ladj).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert block.lipschitz_bound() <= 0.9**2 * (1 + 1e-9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lipschitz": 1.0}, "lipschitz < 1"),
        ({"net": Choice("mlp", hidden=[4], act=Choice("gelu"), init=Choice("zero"))}, "gelu"),
        ({"net": Choice("conv", hidden=4, kernel=3, depth=1, act=Choice("elu"))}, "net=mlp"),
    ],
)
def test_construction_rejects_what_the_checker_rejects(options, message) -> None:
    kw = {"net": mlp([4]), "lipschitz": 0.9, **options}
    with pytest.raises(ValueError, match=message):
        Residual([(2, 4, 4)], **kw)


def test_sigma_max_of_an_empty_matrix() -> None:
    assert sigma_max(torch.zeros(0, 3)) == 0.0

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

from flowspec.kinds.options import Choice
from flowspec.runtime.lipschitz_layers import (
    LipschitzMLP,
    SpectralConv2d,
    SpectralLinear,
    circular_sigma,
    sigma_max,
)
from flowspec.runtime.residual import Residual

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
    # forward runs g on d stacked copies of the batch (the Jacobian rows), transform on
    # the batch alone: BLAS may sum in another order, so the two agree to rounding only
    assert (y - block.transform(x)).abs().max().item() < 1e-13
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
    assert torch.equal(y1, y2)
    # forward evaluates g on the stacked probe copies, transform on the batch alone:
    # equal to rounding (BLAS may sum in another order for another batch size)
    assert (y1 - block.transform(x)).abs().max().item() < 1e-13
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


@pytest.mark.parametrize("logdet", [Choice("series", terms=4), Choice("roulette", p=0.4)])
def test_neumann_gradient_in_forward_is_linear_in_the_loss_weights(logdet: Choice) -> None:
    """The gradient taken in forward (a loss weighting every sample alike) equals the sum
    of the rebuilt gradients of the losses that weight one sample each: the same draws
    (seeded), so equal to rounding."""
    x = torch.randn(4, 3, dtype=F64)
    block = residual(logdet=logdet, trace=Choice("hutchinson", samples=2), grad=Choice("neumann"))

    def grads(w: Tensor) -> Tensor:
        torch.manual_seed(11)
        return _param_grads(block, x, w)

    together = grads(torch.full((4,), 0.5, dtype=F64))
    apart = sum(grads(0.5 * torch.eye(4, dtype=F64)[i]) for i in range(4))
    assert torch.allclose(together, apart, atol=1e-12)
    assert together.abs().max() > 0


def test_neumann_gradient_in_forward_keeps_no_second_order_graph() -> None:
    """What waits for backward from ladj is one node on top of y's own graph (the
    double-backward graph of the surrogate was used and freed in forward), while
    backprop keeps a graph per term."""

    def nodes(t: Tensor) -> set:
        seen, stack = set(), [t.grad_fn]
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            stack.extend(f for f, _ in fn.next_functions)
        return seen

    extra = {}
    for grad in ("neumann", "backprop"):
        block = residual(logdet=Choice("series", terms=5), grad=Choice(grad))
        y, ladj = block(torch.randn(2, 3, dtype=F64))
        extra[grad] = nodes(ladj) - nodes(y)
    assert [type(f).__name__ for f in extra["neumann"]] == ["NeumannInForwardBackward"]
    assert len(extra["backprop"]) > 20


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
    with pytest.raises(
        RuntimeError, match=r"residual\(x: \[3\]\).*did not converge.*certified error bound"
    ):
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
        ({"net": Choice("resnet", hidden=4, blocks=1, act=Choice("elu"))}, "resnet"),
    ],
)
def test_construction_rejects_what_the_checker_rejects(options, message) -> None:
    kw = {"net": mlp([4]), "lipschitz": 0.9, **options}
    with pytest.raises(ValueError, match=message):
        Residual([(2, 4, 4)], **kw)


def test_sigma_max_of_an_empty_matrix() -> None:
    assert sigma_max(torch.zeros(0, 3)) == 0.0


def test_conv_on_a_flat_input_is_rejected() -> None:
    net = Choice("conv", hidden=4, kernel=3, depth=1, act=Choice("elu"), init=Choice("zero"))
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        Residual([(8,)], net=net, lipschitz=0.9)


# ------------------------------------------------------------------ convolutional nets


def conv_operator(weight: Tensor, spatial: tuple[int, int]) -> Tensor:
    """The dense matrix of the stride-1 zero-padded ("same") convolution with ``weight`` on
    [C_in, H, W] inputs, column j the image of the j-th unit input, float64."""
    _, c_in, kh, kw = weight.shape
    h, w = spatial
    n = c_in * h * w
    units = torch.eye(n, dtype=F64).reshape(n, c_in, h, w)
    padded = torch.nn.functional.pad(units, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
    return torch.nn.functional.conv2d(padded, weight.detach().double()).reshape(n, -1).T


def exact_conv_norm(weight: Tensor, spatial: tuple[int, int]) -> float:
    return exact_sigma(conv_operator(weight, spatial))


def _adversarial_kernels() -> list[tuple[str, Tensor, tuple[int, int]]]:
    """(name, kernel [c_out, c_in, k, k], (H, W))."""
    gen = torch.Generator().manual_seed(5)
    out = []
    for k, shape, (co, ci) in [
        (3, (4, 4), (3, 2)),
        (3, (3, 3), (1, 1)),
        (1, (3, 5), (4, 4)),
        (2, (4, 3), (2, 3)),
        (4, (5, 5), (2, 2)),
        (5, (2, 6), (3, 1)),
        (3, (1, 1), (2, 2)),
        (3, (5, 5), (6, 6)),
    ]:
        kernel = torch.randn(co, ci, k, k, generator=gen, dtype=F64)
        out.append((f"gaussian k={k} {co}x{ci} on {shape}", kernel, shape))
    # a centred delta times a channel matrix: the operator is I ⊗ A, as large as the
    # circular bound, so only the margin keeps it ≤ c
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))
    delta = torch.zeros(4, 4, 3, 3, dtype=F64)
    delta[:, :, 1, 1] = 7.0 * q
    out.append(("delta (tight)", delta, (3, 4)))
    # constant and Nyquist (alternating-sign) kernels: the DC and highest frequencies
    out.append(("all ones", torch.ones(3, 3, 3, 3, dtype=F64), (4, 4)))
    signs = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]], dtype=F64)
    out.append(("nyquist", signs.expand(2, 2, 3, 3).clone(), (4, 4)))
    big = torch.randn(3, 2, 3, 3, generator=gen, dtype=F64)
    out.append(("huge", 1e12 * big, (3, 3)))
    out.append(("tiny", 1e-9 * big, (3, 3)))
    return out


CONV_CASES = _adversarial_kernels()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("c", [0.5, 0.97, 0.999])
@pytest.mark.parametrize(("name", "kernel", "spatial"), CONV_CASES, ids=[k[0] for k in CONV_CASES])
def test_conv_operator_norm_never_exceeds_c(name, kernel, spatial, c, dtype) -> None:
    """The EXACT norm of the zero-padded convolution with the kernel used in forward (its
    dense matrix, float64 SVD) is ≤ c, and ≤ the layer's certified bound."""
    c_out, c_in, k, _ = kernel.shape
    layer = SpectralConv2d(c_in, c_out, k, c, spatial).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(kernel.to(dtype))
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            w = layer.normalized_weight()
        norm = exact_conv_norm(w, spatial)
        assert norm <= c * (1 + 1e-12), name
        assert norm <= layer.certified_bound() * (1 + 1e-12), name
    # and σ̂ bounds the raw kernel's operator too
    assert exact_conv_norm(layer.weight, spatial) <= layer.sigma_hat()


def test_layer_convolution_is_the_zero_padded_one() -> None:
    torch.manual_seed(0)
    for k in (1, 2, 3, 4):
        layer = SpectralConv2d(2, 3, k, 0.9, (4, 5)).double()
        x = torch.randn(3, 2, 4, 5, dtype=F64)
        w = layer.normalized_weight().detach()
        y = layer.conv(x, w) - layer.bias.detach().view(1, -1, 1, 1)
        dense = conv_operator(w, (4, 5))
        assert torch.allclose(y.reshape(3, -1), x.reshape(3, -1) @ dense.T, atol=1e-12)


@pytest.mark.parametrize(("k", "grid"), [(3, (5, 5)), (2, (4, 7)), (4, (6, 5)), (1, (1, 1))])
def test_circular_bound_is_the_norm_of_the_circular_convolution(k, grid) -> None:
    """max_f σ_max(K̂(f)) equals the norm of the dense circular convolution on the grid."""
    gen = torch.Generator().manual_seed(k)
    kernel = torch.randn(4, 3, k, k, generator=gen, dtype=F64)
    n1, n2 = grid
    n = 3 * n1 * n2
    units = torch.eye(n, dtype=F64).reshape(n, 3, n1, n2)
    wrapped = torch.nn.functional.pad(units, (0, k - 1, 0, k - 1), mode="circular")
    dense = torch.nn.functional.conv2d(wrapped, kernel).reshape(n, -1).T
    assert float(circular_sigma(kernel, grid)) == pytest.approx(exact_sigma(dense), rel=1e-13)


def test_power_iteration_on_the_unrolled_conv_would_break_the_bound() -> None:
    """Power iteration on the dense unrolled operator, started orthogonal to its top
    singular vectors, estimates σ₂ < σ₁: scaling by it would exceed c; the certified layer
    does not."""
    gen = torch.Generator().manual_seed(7)
    q1, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=F64))
    q2, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=F64))
    kernel = torch.zeros(3, 3, 3, 3, dtype=F64)
    kernel[:, :, 1, 1] = q1 @ torch.diag(torch.tensor([2.0, 1.99, 0.5], dtype=F64)) @ q2.T
    kernel[:, :, 0, 1] = 0.01 * torch.randn(3, 3, generator=gen, dtype=F64)
    spatial = (4, 4)
    dense = conv_operator(kernel, spatial)
    _, _, vh = torch.linalg.svd(dense)
    top = vh[0]
    v = torch.randn(dense.shape[1], generator=gen, dtype=F64)
    v = v - (v @ top) * top
    for _ in range(5):
        v = dense.T @ (dense @ v)
        v = v - (v @ top) * top  # what exact arithmetic keeps doing from this start
        v = v / v.norm()
    estimate = float((dense @ v).norm())
    sigma = exact_sigma(dense)
    assert estimate < 0.999 * sigma
    assert exact_conv_norm(kernel * (0.9 / estimate), spatial) > 0.9 * 1.0005
    layer = SpectralConv2d(3, 3, 3, 0.9, spatial).double()
    with torch.no_grad():
        layer.weight.copy_(kernel)
    assert exact_conv_norm(layer.normalized_weight(), spatial) <= 0.9 * (1 + 1e-12)


def test_conv_certificate_follows_every_weight_change() -> None:
    layer = SpectralConv2d(2, 2, 3, 0.9, (3, 3)).double()
    with torch.no_grad():
        layer.weight.mul_(10.0)
    layer.normalized_weight()
    with torch.no_grad():
        layer.weight.data[0, 0, 1, 1] += 100.0  # in place, behind the cache's back
    assert exact_conv_norm(layer.normalized_weight(), (3, 3)) <= 0.9 * (1 + 1e-12)
    layer.load_state_dict({k: v * 3 for k, v in layer.state_dict().items()})
    assert exact_conv_norm(layer.normalized_weight(), (3, 3)) <= 0.9 * (1 + 1e-12)


def test_conv_gradient_is_that_of_exact_spectral_normalisation() -> None:
    torch.manual_seed(1)
    layer = SpectralConv2d(2, 3, 3, 0.8, (4, 4)).double()
    with torch.no_grad():
        layer.weight.mul_(10.0)
    probe = torch.randn_like(layer.weight)
    (got,) = torch.autograd.grad((layer.normalized_weight() * probe).sum(), layer.weight)
    w = layer.weight.detach().clone().requires_grad_(True)
    reference = w * 0.8 / circular_sigma(w, layer.grid)
    (want,) = torch.autograd.grad((reference * probe).sum(), w)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def conv_residual(
    shape=(2, 4, 4), hidden: int = 6, kernel: int = 3, depth: int = 2, c: float = 0.9, **options
) -> Residual:
    """A float64 residual block with a conv net whose raw kernels are 5× PyTorch's
    initialisation (every layer is rescaled by the normalisation)."""
    torch.manual_seed(options.pop("seed", 0))
    net = Choice(
        "conv",
        hidden=hidden,
        kernel=kernel,
        depth=depth,
        act=Choice(options.pop("act", "lipswish")),
        init=Choice("default"),
    )
    block = Residual([shape], net=net, lipschitz=c, **options).double()
    with torch.no_grad():
        for layer in block.g.layers:
            layer.weight.mul_(5.0)
            layer.bias.normal_(0, 0.3)
    return block


@pytest.mark.parametrize(("kernel", "depth"), [(3, 1), (3, 2), (2, 1), (5, 3)])
def test_conv_branch_empirical_lipschitz_ratio_never_exceeds_the_bound(kernel, depth) -> None:
    block = conv_residual(kernel=kernel, depth=depth, c=0.9, act="tanh")
    bound = block.lipschitz_bound()
    assert bound <= 0.9 ** (depth + 1) * (1 + 1e-9)
    # the branch is exactly c^(depth+1)-bounded even though the raw kernels are large
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(256, 32, generator=gen, dtype=F64)
    # near pairs probe the Jacobian, far pairs the global constant
    for scale in (1e-4, 1.0, 10.0):
        dx = scale * torch.randn(256, 32, generator=gen, dtype=F64)
        with torch.no_grad():
            ratio = (block.g(x + dx) - block.g(x)).norm(dim=1) / dx.norm(dim=1)
        assert float(ratio.max()) <= bound * (1 + 1e-9)
    # and along the top singular vector of the Jacobian at a point (the worst direction)
    jac = torch.autograd.functional.jacobian(lambda t: block.g(t), x[:1]).reshape(32, 32)
    assert exact_sigma(jac) <= bound * (1 + 1e-9)


def test_conv_residual_exact_logdet_and_round_trip() -> None:
    block = conv_residual(shape=(1, 3, 3), hidden=4, depth=1, logdet=Choice("exact"))
    x = torch.randn(5, 1, 3, 3, dtype=F64)
    y, ladj = block(x)
    flat = x.reshape(5, 9)
    jac = torch.autograd.functional.jacobian(
        lambda t: block.transform(t.reshape(-1, 1, 3, 3)).reshape(-1, 9).sum(0), flat
    )
    assert torch.allclose(ladj, torch.linalg.slogdet(jac.permute(1, 0, 2))[1], atol=1e-10)
    inverse = Residual(
        [(1, 3, 3)],
        net=Choice("conv", hidden=4, kernel=3, depth=1, act=Choice("lipswish")),
        lipschitz=0.9,
        logdet=Choice("exact"),
        inverse=Choice("fixedpoint", tol=1e-12, max_iter=500),
    ).double()
    inverse.load_state_dict(block.state_dict())
    with torch.no_grad():
        x_back, ladj_back = inverse.inverse(y)
    assert float((x_back - x).abs().max()) < 1e-8
    assert torch.allclose(ladj_back, -ladj, atol=1e-8)


def test_conv_residual_starts_at_the_identity_and_trains_within_the_bound() -> None:
    net = Choice("conv", hidden=4, kernel=3, depth=1, act=Choice("lipswish"), init=Choice("zero"))
    torch.manual_seed(0)
    block = Residual([(2, 4, 4)], net=net, lipschitz=0.9).double()
    x = torch.randn(8, 2, 4, 4, dtype=F64)
    y, ladj = block(x)
    assert torch.equal(y, x) and torch.equal(ladj, torch.zeros(8, dtype=F64))
    opt = torch.optim.SGD(block.parameters(), lr=1.0)
    for _ in range(3):
        y, ladj = block(x)
        loss = (0.5 * y.pow(2).flatten(1).sum(1) - ladj).mean() + y.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert block.lipschitz_bound() <= 0.9**2 * (1 + 1e-9)
    assert float(block.g.layers[-1].weight.detach().abs().max()) > 0  # it did train


def test_float32_conv_block_keeps_the_bound() -> None:
    block = conv_residual(depth=1).float()
    x = torch.randn(4, 2, 4, 4)
    block(x)
    for layer, w in zip(block.g.layers, block.g.weights(), strict=True):
        assert exact_conv_norm(w, (4, 4)) <= 0.9 * (1 + 1e-12)
        assert layer.weight.dtype == torch.float32

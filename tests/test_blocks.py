"""Every block kind of the registry against brute force, in float64 (see harness.py),
plus the coupling- and spline-specific properties."""

from __future__ import annotations

import math

import pytest
import torch
from harness import (
    EXACT,
    as_tuple,
    build_block,
    cases,
    check_stochastic_ladj,
    flat_jacobian_logdets,
    is_stochastic,
    max_error,
    random_inputs,
    resolve_example,
    runtime_class,
    shape_rule_inputs,
    tolerance,
)

from flowspec.kinds import KINDS, MASK, SCALE, BlockKind, Example, masks
from flowspec.kinds.options import Choice
from flowspec.runtime.base import Bijection
from flowspec.runtime.spline import SplineCoupling, rational_quadratic_spline

CASES = list(cases())
COUPLINGS = [c for c in CASES if c.values[0].features == "coupling"]


def _setup(kind: BlockKind, example: Example):
    cls = runtime_class(kind)
    block = build_block(kind, example)
    xs, cond = random_inputs(kind, example, cls=cls)
    return block, xs, cond, resolve_example(kind, example)


# ------------------------------------------------------------- every kind, every example


@pytest.mark.parametrize(("kind", "example"), CASES)
def test_shapes_follow_the_shape_rule(kind: BlockKind, example: Example) -> None:
    block, xs, cond, opts = _setup(kind, example)
    expected = [tuple(s) for s in kind.shape(opts, shape_rule_inputs(example))]
    assert len(expected) == kind.outputs(opts)
    with torch.no_grad():
        ys, ladj = block(*xs, **cond)
        ys = as_tuple(ys)
        assert [tuple(y.shape[1:]) for y in ys] == expected
        assert all(y.shape[0] == len(ladj) for y in ys)
        assert ladj.shape == (xs[0].shape[0],) and ladj.dtype == torch.float64
        back, ladj_inv = block.inverse(*ys, **cond)
        assert [b.shape for b in as_tuple(back)] == [x.shape for x in xs]
        assert ladj_inv.shape == ladj.shape


@pytest.mark.parametrize(("kind", "example"), CASES)
def test_round_trip(kind: BlockKind, example: Example) -> None:
    block, xs, cond, opts = _setup(kind, example)
    with torch.no_grad():
        ys, _ = block(*xs, **cond)
        back, _ = block.inverse(*as_tuple(ys), **cond)
    assert max_error(as_tuple(back), tuple(xs)) < tolerance(kind, opts)


@pytest.mark.parametrize(("kind", "example"), CASES)
def test_ladj_matches_the_jacobian(kind: BlockKind, example: Example) -> None:
    block, xs, cond, opts = _setup(kind, example)
    exact, cross = flat_jacobian_logdets(lambda *v: block.transform(*v, **cond), xs)
    # an adaptive ODE solver picks its steps from the whole batch: samples interact
    # through the step sizes, at the solver's tolerance
    integrated = kind.inverse_class(opts) == "integrated"
    tol = tolerance(kind, opts) if integrated else EXACT
    assert cross.item() < (tol if integrated else 1e-12), "the block mixes the batch"
    if is_stochastic(kind, opts):
        # the hook for estimators: a confidence interval around the exact value
        check_stochastic_ladj(lambda: block(*xs, **cond)[1], exact)
        return
    with torch.no_grad():
        _, ladj = block(*xs, **cond)
    assert torch.isfinite(ladj).all()
    assert (ladj - exact).abs().max().item() < tol


@pytest.mark.parametrize(("kind", "example"), CASES)
def test_inverse_ladj_is_minus_forward(kind: BlockKind, example: Example) -> None:
    block, xs, cond, opts = _setup(kind, example)
    if is_stochastic(kind, opts):
        pytest.skip("estimates of a stochastic log-det are compared in distribution")
    with torch.no_grad():
        ys, ladj = block(*xs, **cond)
        _, ladj_inv = block.inverse(*as_tuple(ys), **cond)
    assert (ladj + ladj_inv).abs().max().item() < tolerance(kind, opts)


@pytest.mark.parametrize(("kind", "example"), CASES)
def test_value_only_paths_agree_with_fused(kind: BlockKind, example: Example) -> None:
    block, xs, cond, opts = _setup(kind, example)
    tol = tolerance(kind, opts)
    with torch.no_grad():
        ys, _ = block(*xs, **cond)
        assert max_error(as_tuple(block.transform(*xs, **cond)), as_tuple(ys)) < tol
        back, _ = block.inverse(*as_tuple(ys), **cond)
        back_only = block.inverse_transform(*as_tuple(ys), **cond)
        assert max_error(as_tuple(back_only), as_tuple(back)) < tol


@pytest.mark.parametrize(("kind", "example"), CASES)
def test_gradient_reaches_every_parameter(kind: BlockKind, example: Example) -> None:
    block, xs, cond, _ = _setup(kind, example)
    ys, ladj = block(*xs, **cond)
    gen = torch.Generator().manual_seed(7)

    def weighted(t: torch.Tensor) -> torch.Tensor:
        return (t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum()

    loss = sum(weighted(y) for y in as_tuple(ys)) + weighted(ladj)
    params = dict(block.named_parameters())
    if not params:
        return
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient at {name}"
        assert p.grad.abs().max() > 0, f"zero gradient at {name}"


# ----------------------------------------------------------------- the registry itself


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_has_an_example(kind: BlockKind) -> None:
    assert kind.examples, f"{kind.name} has no Example for the harness"
    for example in kind.examples:
        resolve_example(kind, example)  # every example resolves against its options


@pytest.mark.parametrize(
    "kind", [k for k in KINDS if k.features == "coupling"], ids=lambda k: k.name
)
def test_coupling_examples_cover_every_mask_and_scale(kind: BlockKind) -> None:
    seen: dict[str, set] = {"mask": set(), "scale": set(), "flip": set(), "net": set()}
    for example in kind.examples:
        opts = resolve_example(kind, example)
        for key in seen:
            if key in opts:
                value = opts[key]
                seen[key].add(value.kind if isinstance(value, Choice) else value)
    assert seen["mask"] == set(MASK.words)
    assert seen["flip"] == {False, True}
    assert seen["net"] == {"mlp", "conv", "resnet"}
    if any(o.name == "scale" for o in kind.options):
        assert seen["scale"] == set(SCALE.words)


# ------------------------------------------------------------------------ couplings


@pytest.mark.parametrize(("kind", "example"), COUPLINGS)
def test_coupling_transforms_exactly_the_masked_features(
    kind: BlockKind, example: Example
) -> None:
    """The runtime updates exactly ``masks.transformed_indices`` — what W100/W101 assume."""
    block, xs, cond, opts = _setup(kind, example)
    (x,) = xs
    if "bound" in opts:  # keep every feature inside the spline's interval
        x = x.clamp(-opts["bound"] / 2, opts["bound"] / 2)
    with torch.no_grad():
        y, _ = block(x, **cond)
    changed = ((y - x).abs() > 1e-12).reshape(len(x), -1).any(dim=0)
    expected = set(kind.transformed(opts, tuple(example.shapes[0])))
    assert set(torch.nonzero(changed).flatten().tolist()) == expected
    assert expected == set(
        masks.transformed_indices(opts["mask"].kind, opts["flip"], example.shapes[0])
    )


@pytest.mark.parametrize(("kind", "example"), COUPLINGS)
def test_coupling_starts_at_the_identity(kind: BlockKind, example: Example) -> None:
    cls = runtime_class(kind)
    opts = resolve_example(kind, example)
    block = cls([tuple(s) for s in example.shapes], **opts).double()
    xs, cond = random_inputs(kind, example, cls=cls)
    with torch.no_grad():
        y, ladj = block(*xs, **cond)
    x = xs[0]
    assert ladj.abs().max().item() < 1e-12
    assert (y - x).abs().max().item() < 1e-12


def test_coupling_cond_is_required_when_declared() -> None:
    from flowspec.runtime.coupling import AffineCoupling

    net = Choice("mlp", hidden=[4], act=Choice("relu"), init=Choice("zero"))
    block = AffineCoupling([(4,)], net=net, mask=Choice("half"), cond=(2,))
    with pytest.raises(ValueError, match="cond"):
        block(torch.randn(2, 4))
    plain = AffineCoupling([(4,)], net=net, mask=Choice("half"))
    with pytest.raises(ValueError, match="cond"):
        plain(torch.randn(2, 4), cond=torch.randn(2, 2))


@pytest.mark.parametrize("kernel", [2, 4])
def test_conv_conditioner_with_an_even_kernel_keeps_the_size(kernel: int) -> None:
    from flowspec.runtime.coupling import AffineCoupling

    net = Choice(
        "conv", hidden=4, kernel=kernel, depth=1, act=Choice("relu"), init=Choice("default")
    )
    block = AffineCoupling([(2, 5, 3)], net=net, mask=Choice("checkerboard")).double()
    x = torch.randn(3, 2, 5, 3, dtype=torch.float64)
    y, ladj = block(x)
    back, ladj_inv = block.inverse(y)
    assert y.shape == x.shape and (back - x).abs().max() < EXACT
    assert (ladj + ladj_inv).abs().max() < EXACT


# -------------------------------------------------------------------------- splines


def _spline_params(shape: tuple[int, ...], bins: int, scale: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)

    def draw(*tail: int) -> torch.Tensor:
        return scale * torch.randn(*shape, *tail, generator=gen, dtype=torch.float64)

    return draw(bins), draw(bins), draw(bins - 1)


@pytest.mark.parametrize("bins", [1, 2, 8])
def test_spline_far_outside_the_bound_is_the_identity(bins: int) -> None:
    x = torch.tensor([1e6, -1e6, 3.0 + 1e-9, -3.0 - 1e-9, 1e300, -1e300], dtype=torch.float64)
    params = _spline_params(x.shape, bins, 3.0)
    for inverse in (False, True):
        y, ladj = rational_quadratic_spline(x, *params, bound=3.0, inverse=inverse)
        assert torch.equal(y, x) and torch.equal(ladj, torch.zeros_like(x))


def test_spline_all_tail_batch_is_finite_with_finite_gradients() -> None:
    x = torch.full((4, 3), 1e6, dtype=torch.float64)
    x[::2] = -1e6
    x.requires_grad_(True)
    params = [p.requires_grad_(True) for p in _spline_params(x.shape, 5, 2.0)]
    y, ladj = rational_quadratic_spline(x, *params, bound=2.0)
    assert torch.equal(y, x) and torch.equal(ladj, torch.zeros_like(ladj))
    (y.sum() + ladj.sum()).backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert all(torch.isfinite(p.grad).all() for p in params)


def test_spline_inverts_exactly_with_its_jacobian() -> None:
    x = torch.cat([torch.linspace(-2.5, 2.5, 501), torch.tensor([-1e6, 1e6, -2.0, 2.0])])
    x = x.double()
    params = _spline_params(x.shape, 8, 2.0, seed=3)
    y, ladj = rational_quadratic_spline(x, *params, bound=2.0)
    back, ladj_inv = rational_quadratic_spline(y, *params, bound=2.0, inverse=True)
    assert (back - x).abs().max() < EXACT and (ladj + ladj_inv).abs().max() < EXACT
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(rational_quadratic_spline(xg, *params, bound=2.0)[0].sum(), xg)
    assert (grad.log() - ladj).abs().max() < EXACT


def test_spline_is_monotone_inside_the_bound_and_maps_it_onto_itself() -> None:
    x = torch.linspace(-3.0, 3.0, 4001, dtype=torch.float64)
    params = _spline_params((1,), 8, 4.0, seed=5)  # steep, uneven bins
    params = [p.expand(len(x), -1) for p in params]
    y, ladj = rational_quadratic_spline(x, *params, bound=3.0)
    assert (y[1:] > y[:-1]).all()
    assert y[0] == -3.0 and y[-1] == 3.0
    assert torch.isfinite(ladj).all()


def test_spline_coupling_far_outside_the_bound_round_trips() -> None:
    net = Choice("mlp", hidden=[8], act=Choice("tanh"), init=Choice("zero"))
    block = SplineCoupling([(4,)], net=net, mask=Choice("alternate"), bins=4, bound=1.0)
    block = block.double()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.tensor([[1e6, -1e6, 0.3, 1e6], [-1e6, 1e6, -1e6, -0.2]], dtype=torch.float64)
    y, ladj = block(x)
    back, ladj_inv = block.inverse(y)
    assert torch.isfinite(y).all() and torch.isfinite(ladj).all()
    assert (back - x).abs().max() < EXACT and (ladj + ladj_inv).abs().max() < EXACT


# ----------------------------------------------------------------- the stochastic hook


class _NoisyScale(Bijection):
    """A test double: y = 2x with an unbiased, noisy estimate of ladj = d·log 2."""

    def forward(self, x):
        d = x[0].numel()
        return 2 * x, d * math.log(2) + 0.1 * torch.randn(len(x), dtype=x.dtype)

    def inverse(self, y):
        return y / 2, -y[0].numel() * math.log(2) * torch.ones(len(y), dtype=y.dtype)


def test_stochastic_hook_accepts_an_unbiased_and_rejects_a_biased_estimator() -> None:
    torch.manual_seed(0)
    block = _NoisyScale([(3,)])
    x = torch.randn(2, 3, dtype=torch.float64)
    exact, _ = flat_jacobian_logdets(block.transform, [x])
    check_stochastic_ladj(lambda: block(x)[1], exact)
    with pytest.raises(AssertionError, match="stochastic ladj"):
        check_stochastic_ladj(lambda: block(x)[1] + 0.05, exact)

"""MAF / IAF / NSF-AR against brute force: the autoregressive structure of the Jacobian in
the chosen order, round trips, log-dets, conditioning, and the bounded log-scale."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from flowspec.kinds import masks
from flowspec.kinds.options import Choice
from flowspec.runtime.autoregressive import (
    LOG_SCALE_BOUND,
    AutoregressiveAffine,
    AutoregressiveSpline,
    order_degrees,
)

F64 = torch.float64
ORDERS = [Choice("natural"), Choice("reverse"), Choice("random", seed=3)]


def block(
    kind: str = "affine",
    d: int = 5,
    order: Choice = ORDERS[0],
    iaf: bool = False,
    cond: tuple[int, ...] | None = None,
    hidden: list[int] | None = None,
    scale: float = 0.5,
    **options,
):
    """A float64 block with its parameters perturbed away from the identity start."""
    torch.manual_seed(0)
    cls = AutoregressiveAffine if kind == "affine" else AutoregressiveSpline
    if kind == "spline":
        options = {"bins": 5, "bound": 3.0, **options}
    b = cls(
        [(d,)],
        hidden=[16, 16] if hidden is None else hidden,
        act=Choice("tanh"),
        order=order,
        iaf=iaf,
        cond=cond,
        **options,
    ).double()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(scale * torch.randn_like(p))
    return b


def jacobian(fn, x: Tensor) -> Tensor:
    """[B, d, d] per-sample Jacobians of a batch map."""
    return torch.autograd.functional.jacobian(lambda v: fn(v).sum(0), x).permute(1, 0, 2)


def cases():
    for kind in ("affine", "spline"):
        for order in ORDERS:
            for iaf in (False, True):
                yield pytest.param(kind, order, iaf, id=f"{kind}-{order}-iaf={iaf}")


@pytest.mark.parametrize(("kind", "order", "iaf"), list(cases()))
def test_round_trip_and_log_det_against_brute_force(kind, order, iaf) -> None:
    b = block(kind, order=order, iaf=iaf, cond=(2,))
    x = 1.5 * torch.randn(6, 5, dtype=F64)
    c = torch.randn(6, 2, dtype=F64)
    with torch.no_grad():
        z, ladj = b(x, cond=c)
        back, ladj_inv = b.inverse(z, cond=c)
    assert (z - x).abs().max().item() > 1e-2  # not the identity
    # the inverse is d sequential passes, each inverting a spline bin by the quadratic
    # formula: its rounding compounds (1.2e-10 was seen on one CPU), so 1e-9 here
    assert (back - x).abs().max().item() < 1e-9
    assert (ladj + ladj_inv).abs().max().item() < 1e-9
    exact = torch.linalg.slogdet(jacobian(lambda v: b.transform(v, cond=c), x))[1]
    assert (ladj - exact).abs().max().item() < 1e-10
    with torch.no_grad():
        assert torch.equal(b.transform(x, cond=c), z)
        assert torch.equal(b.inverse_transform(z, cond=c), back)


@pytest.mark.parametrize(("kind", "order", "iaf"), list(cases()))
def test_jacobian_is_triangular_in_the_order(kind, order, iaf) -> None:
    """∂z_i/∂x_j = 0 when j comes after i in the order (one-pass direction: z from x;
    IAF's one-pass direction is the inverse)."""
    b = block(kind, order=order, iaf=iaf)
    x = torch.randn(4, 5, dtype=F64)
    fn = b.inverse_transform if iaf else b.transform
    jac = jacobian(fn, x)
    deg = torch.tensor(order_degrees(order, 5))
    later = deg[None, :] > deg[:, None]  # [i, j]: j after i
    assert jac[:, later].abs().max().item() == 0.0
    # and the structure is not trivially empty: earlier features do matter
    earlier = deg[None, :] < deg[:, None]
    assert jac[:, earlier].abs().max().item() > 1e-3
    if kind == "affine" and not iaf:  # the sequential direction is dense-triangular too
        jac_inv = jacobian(b.inverse_transform, x)
        assert jac_inv[:, later].abs().max().item() < 1e-12


def test_order_degrees() -> None:
    assert order_degrees(Choice("natural"), 4) == [1, 2, 3, 4]
    assert order_degrees(Choice("reverse"), 4) == [4, 3, 2, 1]
    perm = masks.random_order(6, 5)
    degrees = order_degrees(Choice("random", seed=5), 6)
    assert [degrees[i] for i in perm] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_starts_at_the_identity(kind: str) -> None:
    cls = AutoregressiveAffine if kind == "affine" else AutoregressiveSpline
    for iaf in (False, True):
        b = cls([(4,)], hidden=[8], order=Choice("random", seed=1), iaf=iaf, cond=(3,)).double()
        x = torch.randn(5, 4, dtype=F64)
        c = torch.randn(5, 3, dtype=F64)
        z, ladj = b(x, cond=c)
        assert (z - x).abs().max().item() < 1e-12
        assert ladj.abs().max().item() < 1e-12


def test_conditioning_changes_the_map() -> None:
    b = block(cond=(3,))
    x = torch.randn(4, 5, dtype=F64)
    c = torch.randn(4, 3, dtype=F64)
    c.requires_grad_(True)
    z, ladj = b(x, cond=c)
    (z.sum() + ladj.sum()).backward()
    assert c.grad.abs().min().item() > 0  # every entry of cond reaches the outputs
    with pytest.raises(ValueError, match="cond"):
        b(x)


def test_conditioning_of_any_shape_is_flattened() -> None:
    b = block(cond=(2, 2))
    x = torch.randn(3, 5, dtype=F64)
    c = torch.randn(3, 2, 2, dtype=F64)
    with torch.no_grad():
        z, _ = b(x, cond=c)
        assert (b.inverse_transform(z, cond=c) - x).abs().max().item() < 1e-10


@pytest.mark.parametrize("kind", ["affine", "spline"])
@pytest.mark.parametrize(("d", "hidden"), [(1, [4]), (2, []), (3, [7, 2, 5])])
def test_degenerate_sizes(kind: str, d: int, hidden: list[int]) -> None:
    """One feature, no hidden layer, and hidden layers narrower than d still give a
    valid autoregressive block."""
    b = block(kind, d=d, hidden=hidden, cond=(2,))
    x = torch.randn(4, d, dtype=F64)
    c = torch.randn(4, 2, dtype=F64)
    with torch.no_grad():
        z, ladj = b(x, cond=c)
        back, _ = b.inverse(z, cond=c)
    assert (back - x).abs().max().item() < 1e-10
    exact = torch.linalg.slogdet(jacobian(lambda v: b.transform(v, cond=c), x))[1]
    assert (ladj - exact).abs().max().item() < 1e-10


@pytest.mark.parametrize("iaf", [False, True])
def test_log_scale_is_bounded(iaf: bool) -> None:
    """However large the conditioner's outputs, |α| < B: per feature the scale stays in
    (e^−B, e^B), ladj in (−dB, dB), and everything is finite."""
    b = block(iaf=iaf, scale=50.0)
    x = torch.randn(16, 5, dtype=F64)
    with torch.no_grad():
        z, ladj = b(x)
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()
    assert ladj.abs().max().item() < 5 * LOG_SCALE_BOUND


def test_spline_is_the_identity_outside_the_bound() -> None:
    """The first feature in the order sees no input, so its spline is fixed: outside
    [−bound, bound] it is the identity with zero log-det."""
    b = block("spline", order=Choice("natural"), bound=1.0)
    x = torch.randn(6, 5, dtype=F64)
    x[:, 0] = torch.tensor([-5.0, -1.5, 1.2, 2.0, 3.0, 40.0], dtype=F64)
    with torch.no_grad():
        z, _ = b(x)
    assert torch.equal(z[:, 0], x[:, 0])


def test_gradients_reach_every_parameter() -> None:
    for kind in ("affine", "spline"):
        for iaf in (False, True):
            b = block(kind, iaf=iaf, cond=(2,))
            z, ladj = b(torch.randn(8, 5, dtype=F64), cond=torch.randn(8, 2, dtype=F64))
            (z.pow(2).sum() - ladj.sum()).backward()
            for name, p in b.named_parameters():
                assert p.grad is not None and p.grad.abs().max() > 0, (kind, iaf, name)


def test_float32() -> None:
    torch.manual_seed(0)
    b = AutoregressiveAffine([(4,)], hidden=[16], order=Choice("reverse"))
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(8, 4)
    z, ladj = b(x)
    assert z.dtype == ladj.dtype == torch.float32
    assert (b.inverse_transform(z) - x).abs().max().item() < 1e-5


# ------------------------------------------------------------------- init=


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_init_zero_starts_at_the_identity_and_random_does_not(kind):
    import flowspec

    spec = (
        "flow f {{\n    input x: [4]\n    x = autoregressive.{k}(x, hidden=[16]{o})\n"
        "    output x\n}}\n"
    )
    x = torch.randn(8, 4, dtype=F64)
    torch.manual_seed(0)
    zero = flowspec.compile(spec.format(k=kind, o=""), dtype=F64)
    z, ladj = zero(x)
    # equal bins / unit scale: the identity, up to the spline's rounding
    assert torch.allclose(z, x, atol=1e-12, rtol=0) and ladj.abs().max() < 1e-12
    torch.manual_seed(0)
    rand = flowspec.compile(spec.format(k=kind, o=", init=random"), dtype=F64)
    z, ladj = rand(x)
    assert (z - x).abs().max() > 1e-3
    back, inv = rand.inverse(z)
    assert torch.allclose(back, x, atol=1e-9) and torch.allclose(inv, -ladj, atol=1e-9)
    # still autoregressive in the order: the Jacobian is lower triangular, its log-det ladj
    jac = torch.autograd.functional.jacobian(lambda v: rand(v[None])[0][0], x[0])
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))
    assert torch.allclose(torch.linalg.slogdet(jac)[1], ladj[0], atol=1e-9)


def test_an_unknown_init_word_is_a_located_error():
    import flowspec

    text = (
        "flow f {\n    input x: [4]\n    x = autoregressive.affine(x, init=ones)\n"
        "    output x\n}\n"
    )
    (d,) = [d for d in flowspec.check(text) if d.is_error]
    assert (d.code, d.line, d.column) == ("E200", 3, 39)
    said = f"{d.message} {d.hint or ''}"
    assert "`ones`" in said and "zero" in said and "random" in said

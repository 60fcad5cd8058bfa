"""Block-specific checks for the non-coupling blocks with exact or analytic inverses,
beyond what the registry-driven harness (tests/test_blocks.py) runs on every kind:
data-dependent and running-statistics state, layouts shared with the checker,
reparametrisations under adversarial parameters, float32, and state_dict round trips."""

from __future__ import annotations

import math

import pytest
import torch
from harness import (
    as_tuple,
    build_block,
    flat_jacobian_logdets,
    max_error,
    random_inputs,
    resolve_example,
)

from flowspec.kinds import REGISTRY, Example
from flowspec.kinds.masks import numel, shuffle_permutation
from flowspec.runtime.base import load_runtime
from flowspec.runtime.elementwise import Affine, LeakyReLU, Logit, Sigmoid
from flowspec.runtime.linear import InvConv, Linear
from flowspec.runtime.norm import ActNorm, BatchNorm
from flowspec.runtime.permute import Permute, Reverse, Shuffle
from flowspec.runtime.planar import Planar, Radial
from flowspec.runtime.reshape import Concat, Flatten, Reshape, Split, Squeeze, Unsqueeze

F64 = torch.float64

MINE = (
    "split",
    "concat",
    "squeeze",
    "unsqueeze",
    "flatten",
    "reshape",
    "reverse",
    "shuffle",
    "permute",
    "actnorm",
    "batchnorm",
    "linear",
    "invconv",
    "affine",
    "leaky_relu",
    "logit",
    "sigmoid",
    "planar",
    "radial",
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------- layouts shared with the checker


def _permutation_cases():
    for name in MINE:
        kind = REGISTRY[name]
        if kind.features == "permutation":
            for i, example in enumerate(kind.examples):
                yield pytest.param(name, example, id=f"{name}-{i}")
    extra = [
        ("squeeze", ((3, 6, 4),), {"factor": 2}),
        ("unsqueeze", ((18, 2, 3),), {"factor": 3}),
        ("split", ((3, 5),), {"dim": -1}),
        ("split", ((7, 2),), {"sizes": [3, 1, 3]}),
        ("concat", ((2, 3), (2, 1)), {"dim": 1}),
        ("shuffle", ((7, 2),), {"seed": 11}),
        ("reshape", ((2, 3, 4),), {"shape": [4, -1, 3]}),
    ]
    for name, shapes, options in extra:
        yield pytest.param(name, Example(shapes, options), id=f"{name}-{shapes}-{options}")


@pytest.mark.parametrize(("name", "example"), list(_permutation_cases()))
def test_runtime_moves_entries_as_the_checker_says(name: str, example: Example) -> None:
    """Every permutation-like block moves entries exactly as its registry ``feature_map``
    (what W100/W101 reason with) says: output k reads input ``(src, flat index)``."""
    kind = REGISTRY[name]
    opts = resolve_example(kind, example)
    shapes = [tuple(s) for s in example.shapes]
    block = load_runtime(kind.runtime)(shapes, **opts)
    # encode (source tensor, flat index) in the value of each entry
    xs = [
        (1000 * src + torch.arange(numel(s), dtype=F64)).reshape(1, *s)
        for src, s in enumerate(shapes)
    ]
    out = block.transform(*xs)
    outs = out if isinstance(out, tuple) else (out,)
    expected = kind.feature_map(opts, shapes)
    assert len(outs) == len(expected)
    for y, fmap in zip(outs, expected):
        want = torch.tensor([1000 * src + i for src, i in fmap], dtype=F64)
        assert torch.equal(y.reshape(-1), want)


def test_squeeze_layout_formula():
    """The documented layout, spelled out: out[c·f² + i·f + j, y, x] = in[c, y·f + i, x·f + j]."""
    c, h, w, f = 2, 6, 9, 3
    x = torch.randn(2, c, h, w, generator=_gen(), dtype=F64)
    y = Squeeze([(c, h, w)], factor=f).transform(x)
    for cc in range(c):
        for i in range(f):
            for j in range(f):
                assert torch.equal(y[:, cc * f * f + i * f + j], x[:, cc, i::f, j::f])
    assert torch.equal(Unsqueeze([(c * f * f, h // f, w // f)], factor=f).transform(y), x)


def test_shuffle_uses_the_checkers_permutation():
    perm = shuffle_permutation(9, 5)
    x = torch.randn(4, 9, 2, generator=_gen(), dtype=F64)
    block = Shuffle([(9, 2)], seed=5)
    assert torch.equal(block.transform(x), x[:, perm])
    assert torch.equal(block.inverse_transform(block.transform(x)), x)
    assert Shuffle([(9, 2)], seed=6).perm.tolist() != perm
    # a function of the options: nothing to save
    assert block.state_dict() == {}


def test_zero_ladj_value_paths_return_views():
    """The value-only paths of zero-ladj blocks allocate nothing where the layout allows."""
    x = torch.randn(4, 6, 2, dtype=F64)
    for part in Split([(6, 2)]).transform(x):
        assert part.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    y = Concat([(2, 2), (4, 2)]).transform(x[:, :2], x[:, 2:])
    for part in Concat([(2, 2), (4, 2)]).inverse_transform(y):
        assert part.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()
    for block in (Flatten([(6, 2)]), Reshape([(6, 2)], shape=[3, -1])):
        z = block.transform(x)
        assert z.data_ptr() == x.data_ptr()
        assert block.inverse_transform(z).data_ptr() == x.data_ptr()
    assert Reshape([(6, 2)], shape=[3, -1]).out_shape == (3, 4)
    assert Split([(5,)]).sizes == [2, 3]


# -------------------------------------------------------------------------------- actnorm


@pytest.mark.parametrize("shape", [(3,), (2, 4, 5)])
def test_actnorm_first_training_batch_is_normalised(shape):
    block = ActNorm([shape]).to(F64)
    x = 3.0 + 2.5 * torch.randn(64, *shape, generator=_gen(), dtype=F64)
    x = x * torch.linspace(0.5, 4.0, shape[0], dtype=F64).reshape(1, -1, *[1] * (len(shape) - 1))
    y, ladj = block(x)
    dims = (0, *range(2, len(shape) + 1))
    assert torch.allclose(y.mean(dims), torch.zeros(shape[0], dtype=F64), atol=1e-10)
    assert torch.allclose(y.std(dims, correction=0), torch.ones(shape[0], dtype=F64), atol=1e-5)
    assert bool(block.initialized)
    # ladj = (H·W)·Σ log|s|, and the next batch does not re-initialise
    std = x.std(dims, correction=0)
    assert torch.allclose(ladj, -math.prod(shape[1:]) * torch.log(std).sum().expand(64))
    before = {k: v.clone() for k, v in block.state_dict().items()}
    block(torch.randn(8, *shape, generator=_gen(1), dtype=F64))
    for k, v in block.state_dict().items():
        assert torch.equal(v, before[k])


def test_actnorm_initialisation_survives_state_dict_round_trip():
    trained = ActNorm([(3,)]).to(F64)
    trained(torch.randn(32, 3, generator=_gen(), dtype=F64) * 4 + 1)
    state = trained.state_dict()
    assert "initialized" in state and bool(state["initialized"])

    fresh = ActNorm([(3,)]).to(F64)
    fresh.load_state_dict(state)
    x = torch.randn(16, 3, generator=_gen(2), dtype=F64)
    y, _ = fresh(x)  # train mode, but the loaded block is initialised: no re-init
    assert torch.equal(fresh.loc, trained.loc)
    assert torch.equal(y, trained(x)[0])

    # loading an uninitialised state into an initialised block re-arms the initialisation
    trained.load_state_dict(ActNorm([(3,)]).to(F64).state_dict())
    assert not bool(trained.initialized)
    y, _ = trained(x)
    assert torch.allclose(y.mean(0), torch.zeros(3, dtype=F64), atol=1e-10)


def test_actnorm_does_not_initialise_in_eval_or_inverse():
    block = ActNorm([(2,)]).to(F64)
    x = torch.randn(8, 2, generator=_gen(), dtype=F64) + 5
    block.eval()
    y, ladj = block(x)
    assert torch.equal(y, x) and torch.equal(ladj, torch.zeros(8, dtype=F64))
    block.train()
    block.inverse(x)
    assert not bool(block.initialized)


# ------------------------------------------------------------------------------ batchnorm


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3)])
def test_batchnorm_training_uses_batch_statistics_and_updates_running_ones(shape):
    momentum, eps = 0.3, 1e-5
    block = BatchNorm([shape], momentum=momentum, eps=eps).to(F64)
    x = 2.0 + 3.0 * torch.randn(32, *shape, generator=_gen(), dtype=F64)
    dims = (0, *range(2, len(shape) + 1))
    inner = math.prod(shape[1:])
    mean, var = x.mean(dims), x.var(dims, correction=0)
    n = x.numel() // shape[0]

    y, ladj = block(x)
    assert torch.allclose(y.mean(dims), torch.zeros(shape[0], dtype=F64), atol=1e-10)
    assert torch.allclose(y.var(dims, correction=0), var / (var + eps))
    expected = -0.5 * inner * torch.log(var + eps).sum()
    assert torch.allclose(ladj, expected.expand(32))
    running_mean = block.running_mean.reshape(-1)
    running_var = block.running_var.reshape(-1)
    assert torch.allclose(running_mean, momentum * mean)
    assert torch.allclose(running_var, (1 - momentum) + momentum * var * n / (n - 1))

    # eval: running statistics, no update, and the inverse undoes it exactly
    block.eval()
    y_eval, ladj_eval = block(x)
    assert torch.equal(block.running_mean.reshape(-1), running_mean)
    shape1 = (1, -1, *[1] * (len(shape) - 1))
    want = (x - running_mean.reshape(shape1)) / torch.sqrt(running_var.reshape(shape1) + eps)
    assert torch.allclose(y_eval, want)
    assert torch.allclose(
        ladj_eval, (-0.5 * inner * torch.log(running_var + eps).sum()).expand(32)
    )
    x_back, ladj_inv = block.inverse(y_eval)
    assert torch.allclose(x_back, x, atol=1e-12) and torch.allclose(ladj_inv, -ladj_eval)


def test_batchnorm_inverse_in_training_mode_uses_running_statistics():
    block = BatchNorm([(3,)]).to(F64)
    for seed in range(3):
        block(torch.randn(16, 3, generator=_gen(seed), dtype=F64) * 2 + 1)
    state = {k: v.clone() for k, v in block.state_dict().items()}
    y = torch.randn(8, 3, generator=_gen(9), dtype=F64)
    x_train, ladj_train = block.inverse(y)  # training mode
    for k, v in block.state_dict().items():  # the inverse never updates statistics
        assert torch.equal(v, state[k])
    block.eval()
    x_eval, ladj_eval = block.inverse(y)
    assert torch.equal(x_train, x_eval) and torch.equal(ladj_train, ladj_eval)
    assert torch.allclose(block(x_eval)[0], y, atol=1e-12)


def test_batchnorm_gradient_flows_through_batch_statistics():
    block = BatchNorm([(2,)]).to(F64)
    x = torch.randn(6, 2, generator=_gen(), dtype=F64, requires_grad=True)
    y, _ = block(x)
    (y[:, 0] * torch.arange(6, dtype=F64)).sum().backward()
    # d/dx of a normalised batch: the gradient of the mean over the batch is removed
    assert x.grad[:, 0].sum().abs() < 1e-10


# ------------------------------------------------------------------------------ LU linear


def _perturb(block: torch.nn.Module, scale: float, seed: int) -> None:
    gen = _gen(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_lu_linear_stays_invertible_under_large_perturbations(seed, scale):
    torch.manual_seed(seed)
    block = Linear([(6,)], lu=True).to(F64)
    _perturb(block, scale, seed)
    w = block.matrix()
    lower = block.lower.tril(-1) + torch.eye(6, dtype=F64)
    upper = block.upper.triu(1) + torch.diag(block.sign * block.log_s.exp())
    p = torch.eye(6, dtype=F64)[block.perm]
    assert torch.allclose(w, p @ lower @ upper)
    sign, logabs = torch.linalg.slogdet(w)
    assert sign != 0
    x = torch.randn(10, 6, generator=_gen(seed), dtype=F64)
    y, ladj = block(x)
    assert torch.allclose(ladj, logabs.expand(10), atol=1e-9)
    assert torch.allclose(y, x @ w.T)
    back, ladj_inv = block.inverse(y)
    assert torch.equal(ladj_inv, -ladj)
    # the inverse forms W⁻¹ for ≥ d rows and solves against the rows for fewer: both
    # are accurate to cond(W)·eps·|x|
    cond = torch.linalg.cond(w).item()
    bound = 1e-14 * cond * x.abs().max().item() + 1e-12
    assert (back - x).abs().max().item() <= bound
    assert (block.inverse_transform(y[:3]) - x[:3]).abs().max().item() <= bound


@pytest.mark.parametrize("lu", [True, False])
def test_invconv_against_a_dense_reference(lu):
    torch.manual_seed(3)
    block = InvConv([(4, 3, 2)], lu=lu).to(F64)
    _perturb(block, 1.0, 3)
    w = block.matrix()
    x = torch.randn(5, 4, 3, 2, generator=_gen(), dtype=F64)
    y, ladj = block(x)
    assert torch.allclose(y, torch.einsum("ij,bjhw->bihw", w, x))
    assert torch.allclose(ladj, 6 * torch.linalg.slogdet(w)[1].expand(5))
    back, ladj_inv = block.inverse(y)
    assert torch.allclose(back, x, atol=1e-10) and torch.allclose(ladj_inv, -ladj)
    # fewer right-hand sides (1 sample, 1 position) than channels: the solving path
    single = InvConv([(4, 1, 1)], lu=lu).to(F64)
    single.load_state_dict(block.state_dict())
    x1 = x[:1, :, :1, :1]
    assert torch.allclose(single.inverse_transform(single.transform(x1)), x1, atol=1e-10)


@pytest.mark.parametrize("cls", [Linear, InvConv])
@pytest.mark.parametrize("lu", [True, False])
def test_linear_state_dict_restores_the_random_factorisation(cls, lu):
    shape = (4,) if cls is Linear else (4, 2, 2)
    torch.manual_seed(0)
    a = cls([shape], lu=lu).to(F64)
    torch.manual_seed(1)
    b = cls([shape], lu=lu).to(F64)
    assert not torch.equal(a.matrix(), b.matrix())
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.matrix(), b.matrix())
    assert torch.linalg.matrix_norm(a.matrix() @ a.matrix().T - torch.eye(4, dtype=F64)) < 1e-6


# ------------------------------------------------------------------------- elementwise


def test_elementwise_formulas():
    x = torch.rand(5, 4, generator=_gen(), dtype=F64)
    y, ladj = Logit([(4,)], alpha=0.1)(x)
    u = 0.1 + 0.8 * x
    assert torch.allclose(y, torch.log(u / (1 - u)))
    assert torch.allclose(ladj, torch.log(0.8 / (u * (1 - u))).sum(1))
    y, ladj = LeakyReLU([(4,)], slope=0.3)(x - 0.5)
    assert torch.allclose(ladj, math.log(0.3) * (x < 0.5).sum(1).to(F64))
    y, ladj = Sigmoid([(4,)])(torch.full((1, 4), 800.0, dtype=F64))
    assert torch.isfinite(ladj).all()  # log σ' stays finite where σ' underflows
    block = Affine([(2, 2)])
    assert torch.equal(block.transform(x.reshape(5, 2, 2)), x.reshape(5, 2, 2))


# --------------------------------------------------------------------------------- planar


def _set_planar(block: Planar, w: torch.Tensor, u: torch.Tensor, b: float) -> None:
    with torch.no_grad():
        block.w.copy_(w)
        block.u.copy_(u)
        block.b.fill_(b)


def _adversarial_planar_parameters(d: int):
    gen = _gen(7)
    w = torch.randn(d, generator=gen, dtype=F64)
    v = torch.randn(d, generator=gen, dtype=F64)
    yield "antiparallel", w, -3.0 * w, 0.3
    yield "strongly antiparallel", w, -1e3 * w / (w @ w), -0.5
    yield "extremely antiparallel", w, -1e5 * w, 0.0  # softplus(wᵀu) underflows
    yield "tiny w", 1e-8 * w, v, 0.1
    yield "zero w", torch.zeros(d, dtype=F64), v, 0.2
    yield "huge u", w, 1e4 * v, 1.0
    yield "large w", 50 * w, v, -2.0
    yield "wᵀû close to -1", w, -20.0 * w / (w @ w) + 0.1 * v, 0.0


@pytest.mark.parametrize("act", ["tanh", "leaky_relu"])
def test_planar_constraint_holds_for_adversarial_parameters(act):
    block = Planar([(5,)], act=act).to(F64)
    for label, w, u, b in _adversarial_planar_parameters(5):
        _set_planar(block, w, u, b)
        u_hat, sp = block.constrained()
        wu = (block.w @ u_hat).item()
        assert wu >= -1 - 1e-9, label
        assert sp.item() > 0, label
        if (block.w @ block.w).item() > 0 and abs(wu) < 1e3:
            assert abs(wu - (sp.item() - 1)) <= 1e-9 * max(1.0, abs((w @ u).item())), label


@pytest.mark.parametrize("act", ["tanh", "leaky_relu"])
def test_planar_inverse_converges_for_adversarial_parameters(act):
    block = Planar([(5,)], act=act).to(F64)
    x = 2 * torch.randn(64, 5, generator=_gen(3), dtype=F64)
    x[0] = 0
    for label, w, u, b in _adversarial_planar_parameters(5):
        _set_planar(block, w, u, b)
        _, sp = block.constrained()
        if act == "leaky_relu" and sp.item() < 1e-12:
            continue  # wᵀû = −1 within rounding: the leaky map folds a half-space flat
        y, ladj = block(x)
        back, ladj_inv = block.inverse(y)
        # near wᵀû = −1 the inverse itself is ill-conditioned (its slope is 1/exp(ladj)):
        # no solver recovers x better than the rounding of y times that slope
        scale = (1 + y.abs().max().item()) / min(1.0, ladj.exp().min().item())
        assert (back - x).abs().max().item() < 1e-10 * scale, label
        ok = torch.isfinite(ladj)
        assert torch.allclose(ladj_inv[ok], -ladj[ok], atol=1e-8), label


def test_planar_ladj_against_brute_force_near_the_constraint():
    block = Planar([(2, 2)], act="tanh").to(F64)
    gen = _gen(4)
    w = torch.randn(4, generator=gen, dtype=F64)
    _set_planar(block, w, -(1 - 1e-3) * w / (w @ w) + 0.2 * torch.randn(4, dtype=F64), 0.1)
    x = torch.randn(6, 2, 2, generator=gen, dtype=F64)
    logdets, _ = flat_jacobian_logdets(block.transform, [x])
    assert torch.allclose(block(x)[1], logdets, atol=1e-9)


@pytest.mark.parametrize("act", ["tanh", "leaky_relu"])
def test_planar_float32(act):
    torch.manual_seed(0)
    block = Planar([(8,)], act=act)
    _set_planar(block, torch.randn(8), -2.0 * torch.randn(8), 0.5)
    x = torch.randn(256, 8, generator=_gen(1))
    y, ladj = block(x)
    back, ladj_inv = block.inverse(y)
    assert back.dtype == torch.float32
    assert (back - x).abs().max().item() < 1e-4
    assert torch.allclose(ladj_inv, -ladj, atol=1e-4)


class _Inverse(torch.nn.Module):
    """``forward`` is the wrapped block's inverse, for ``functional_call``."""

    def __init__(self, inner: Planar) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.inverse(y)


def test_planar_inverse_gradient_is_the_implicit_one():
    """Gradients of the inverse with respect to y and the parameters, through the root
    finding, agree with finite differences."""
    block = _Inverse(Planar([(3,)], act="tanh").to(F64))
    w = torch.tensor([0.9, -0.4, 0.3], dtype=F64, requires_grad=True)
    u = torch.tensor([-1.2, 0.5, 0.7], dtype=F64, requires_grad=True)
    b = torch.tensor(0.2, dtype=F64, requires_grad=True)
    y = torch.randn(4, 3, generator=_gen(), dtype=F64, requires_grad=True)

    def inverse(y, w, u, b):
        params = {"inner.w": w, "inner.u": u, "inner.b": b}
        return torch.func.functional_call(block, params, (y,))

    assert torch.autograd.gradcheck(inverse, (y, w, u, b))


def test_planar_reports_non_convergence():
    block = Planar([(4,)], act="tanh").to(F64)
    w = torch.randn(4, generator=_gen(), dtype=F64)
    _set_planar(block, w, 5 * w, 0.0)
    block.max_iter = 1
    y = 10 * torch.randn(32, 4, generator=_gen(1), dtype=F64)
    with pytest.raises(RuntimeError, match=r"planar.* did not converge in 1 iteration"):
        block.inverse(y)


# --------------------------------------------------------------------------------- radial


def _set_radial(block: Radial, x0, alpha_raw: float, beta_raw: float) -> None:
    with torch.no_grad():
        block.x0.copy_(x0)
        block.alpha_raw.fill_(alpha_raw)
        block.beta_raw.fill_(beta_raw)


@pytest.mark.parametrize(
    ("alpha_raw", "beta_raw"),
    [(0.0, 0.0), (0.5, -30.0), (-3.0, 8.0), (2.0, -2.0), (-10.0, -10.0), (1.0, 3.0)],
    ids=[
        "identity-ish",
        "beta-near-minus-alpha",
        "large-beta",
        "contracting",
        "tiny",
        "expanding",
    ],
)
def test_radial_closed_form_inverse_and_ladj(alpha_raw, beta_raw):
    d = 3
    block = Radial([(d,)]).to(F64)
    x0 = torch.tensor([0.3, -0.2, 1.0], dtype=F64)
    _set_radial(block, x0, alpha_raw, beta_raw)
    gen = _gen(5)
    x = torch.cat(
        [
            torch.randn(16, d, generator=gen, dtype=F64) * 3,
            x0 + 1e-6 * torch.randn(2, d, generator=gen, dtype=F64),  # close to the centre
            x0 + 1e4 * torch.randn(2, d, generator=gen, dtype=F64),  # far away
        ]
    )
    y, ladj = block(x)
    back, ladj_inv = block.inverse(y)
    assert (back - x).abs().max().item() < 1e-10 * (1 + x.abs().max().item())
    assert torch.allclose(ladj_inv, -ladj, atol=1e-9)
    logdets, _ = flat_jacobian_logdets(block.transform, [x[:16]])
    assert torch.allclose(ladj[:16], logdets, atol=1e-9)
    # the defining relations of the reparametrisation
    alpha = torch.nn.functional.softplus(block.alpha_raw)
    beta = -alpha + torch.nn.functional.softplus(block.beta_raw)
    assert alpha > 0 and beta >= -alpha


# -------------------------------------------------------------------------------- float32


FLOAT32_TOL = {"planar": 1e-4, "radial": 1e-4}


@pytest.mark.parametrize("name", MINE)
def test_float32_round_trip_of_every_example(name):
    kind = REGISTRY[name]
    for example in kind.examples:
        block = build_block(kind, example, dtype=torch.float32)
        xs, _ = random_inputs(kind, example, batch=8, dtype=torch.float32)
        ys, ladj = block(*xs)
        back, ladj_inv = block.inverse(*as_tuple(ys))
        assert all(y.dtype == torch.float32 for y in as_tuple(ys)) and ladj.dtype == torch.float32
        assert ladj.shape == (8,) and ladj_inv.shape == (8,)
        assert max_error(as_tuple(back), tuple(xs)) < FLOAT32_TOL.get(name, 1e-5)
        assert torch.allclose(ladj_inv, -ladj, atol=1e-4)


def test_blocks_follow_the_module_to_another_dtype():
    """Index buffers stay integer and float buffers follow ``.to``."""
    block = Linear([(3,)]).to(F64)
    assert block.sign.dtype == F64 and block.perm.dtype == torch.long
    block = Permute([(3,)], order=[2, 0, 1]).to(F64)
    assert block.perm.dtype == torch.long and block.inverse_perm.tolist() == [1, 2, 0]
    x = torch.randn(2, 3, dtype=F64)
    assert torch.equal(Reverse([(3,)]).transform(x), x.flip(1))


@pytest.mark.parametrize("name", MINE)
def test_meta_device_runs_every_path(name):
    """``on meta`` builds a flow for its shapes: no path may need the data's values."""
    kind = REGISTRY[name]
    for example in kind.examples:
        shapes = [tuple(s) for s in example.shapes]
        block = load_runtime(kind.runtime)(shapes, **resolve_example(kind, example))
        block.to("meta")
        xs = [torch.empty(3, *s, device="meta") for s in shapes]
        for train in (True, False):
            block.train(train)
            ys, ladj = block(*xs)
            back, _ = block.inverse(*as_tuple(ys))
            assert ladj.shape == (3,) and [b.shape for b in as_tuple(back)] == [
                x.shape for x in xs
            ]
            block.transform(*xs)
            block.inverse_transform(*as_tuple(ys))

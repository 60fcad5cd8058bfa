"""The ode block's options of issue 14 against brute force: the time embeddings keep the
log-det exact, Finlay et al.'s regularisers against explicit quadrature, the certified
exp(L·t) Lipschitz bound, and the NFE that `flowspec verify` prints."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor
from torchdiffeq import odeint

import flowspec
from flowspec.checks.examples import program
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice
from flowspec.runtime.ode import ODE
from flowspec.runtime.ode_nets import DynamicsMLP, FourierTime

F64 = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-10}
TIMES = [Choice("concat"), Choice("fourier", features=2), Choice("concatsquash")]


def mlp(hidden: list[int], act: str = "tanh") -> Choice:
    return Choice("mlp", hidden=hidden, act=Choice(act), init=Choice("zero"))


def ode(shape=(3,), seed: int = 0, scale: float = 0.5, **options) -> ODE:
    """A float64 block with its parameters moved by N(0, scale²) (f ≢ 0)."""
    torch.manual_seed(seed)
    options = {"solver": Choice("dopri5"), "adjoint": False, **TIGHT, **options}
    block = ODE([shape], net=options.pop("net", mlp([16])), **options).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(scale * torch.randn_like(p))
    return block


def jacobians(fn, x: Tensor) -> Tensor:
    """[B, d, d]: the Jacobian of a batched map, per sample, in float64."""
    b = x.shape[0]
    jac = torch.autograd.functional.jacobian(lambda v: fn(v).sum(0), x)  # [d, B, d]
    return jac.permute(1, 0, 2).reshape(b, x.shape[1], x.shape[1])


# ------------------------------------------------------------------- time embeddings


@pytest.mark.parametrize("lipschitz", [None, 1.5], ids=["free", "lipschitz"])
@pytest.mark.parametrize("time", TIMES, ids=lambda c: c.kind)
def test_every_time_embedding_keeps_the_log_det_exact(time: Choice, lipschitz) -> None:
    block = ode(time=time, lipschitz=lipschitz, trace=Choice("exact"))
    x = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        y, ladj = block(x)
        back, ladj_inv = block.inverse(y)
    assert (y - x).abs().max().item() > 1e-2  # the dynamics do move x
    exact = torch.linalg.slogdet(jacobians(block.transform, x))[1]
    assert (ladj - exact).abs().max().item() < 1e-7
    assert (back - x).abs().max().item() < 1e-8
    assert (ladj + ladj_inv).abs().max().item() < 1e-8


def test_concat_is_todays_block() -> None:
    """time=concat (the default) builds the same net, state_dict and map as before."""
    default, concat = ode(), ode(time=Choice("concat"))
    assert list(default.state_dict()) == list(concat.state_dict())
    assert all(k.startswith("dynamics.net.") for k in default.state_dict())
    x = torch.randn(5, 3, dtype=F64)
    with torch.no_grad():
        assert torch.equal(default.transform(x), concat.transform(x))


def test_fourier_features_are_zukos() -> None:
    emb = FourierTime(3).double()
    t = torch.tensor(0.3, dtype=F64)
    k = torch.arange(1, 4, dtype=F64) * math.pi
    assert torch.allclose(emb(t), torch.cat([(k * 0.3).cos(), (k * 0.3).sin()]))


def test_concatsquash_gates_and_shifts_every_layer() -> None:
    torch.manual_seed(0)
    init = Choice("default")
    net = DynamicsMLP(3, [5], Choice("tanh"), init, Choice("concatsquash")).double()
    x, t = torch.randn(2, 3, dtype=F64), torch.tensor(0.7, dtype=F64)
    tt = t.reshape(1, 1)
    h = net.layers[0](x) * torch.sigmoid(net.gates[0](tt)) + net.shifts[0](tt)
    h = torch.tanh(h)
    out = net.layers[1](h) * torch.sigmoid(net.gates[1](tt)) + net.shifts[1](tt)
    assert torch.allclose(net(x, t), out)
    # zero-initialised, the block is the identity whatever the gates
    block = ODE([(3,)], net=mlp([8]), time=Choice("concatsquash")).double()
    with torch.no_grad():
        y, ladj = block(x)
    assert (y - x).abs().max().item() < 1e-14 and ladj.abs().max().item() == 0.0


def test_parameter_counts_match_the_registry() -> None:
    from flowspec.core.spans import Source
    from flowspec.driver import Compilation

    kind = REGISTRY["ode"]
    for time in TIMES:
        for lip in (None, 2.0):
            extra = f", lipschitz={lip}" if lip else ""
            text = program(f"x = ode(x, net=mlp(hidden=[8, 6]), time={time}{extra})", "[3]")
            count = sum(p.numel() for p in flowspec.compile(text).parameters())
            node = Compilation(Source("t.flow", text)).resolved().graph.blocks()[0]
            assert kind.count_parameters(node.options, node.in_shapes) == count, (time, lip)


def test_conv_nets_reject_concatsquash_and_lipschitz() -> None:
    for extra in ("time=concatsquash", "lipschitz=1.0"):
        text = program(f"x = ode(x, net=conv(hidden=4), {extra})", "[1, 4, 4]")
        codes = [d.code for d in flowspec.check(text)]
        assert codes == ["E201"], (extra, codes)
    text = program("x = ode(x, net=conv(hidden=4), time=fourier(features=2))", "[1, 4, 4]")
    assert flowspec.check(text) == []


# ------------------------------------------------------------------------ regularisers


def brute_force_regularisers(block: ODE, x: Tensor, points: int = 201) -> tuple[Tensor, Tensor]:
    """∫‖f‖² dt and ∫‖∂f/∂x‖_F² dt per sample by Simpson's rule on a tight dopri5
    trajectory, the Jacobian by torch.autograd.functional.jacobian in float64."""
    dyn = block.dynamics
    ts = torch.linspace(0.0, block.t1, points, dtype=F64)
    with torch.no_grad():
        path = odeint(lambda t, v: dyn.velocity(t, v), x, ts, rtol=1e-12, atol=1e-12)
    kin, jac = [], []
    for t, xt in zip(ts, path, strict=True):
        with torch.no_grad():
            kin.append(dyn.velocity(t, xt).pow(2).sum(-1))
        jac.append(jacobians(lambda v, t=t: dyn.velocity(t, v), xt).pow(2).sum((1, 2)))
    h = block.t1 / (points - 1)
    w = torch.ones(points, dtype=F64)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    w = w * h / 3
    return (w[:, None] * torch.stack(kin)).sum(0), (w[:, None] * torch.stack(jac)).sum(0)


FINLAY = Choice("finlay", kinetic=0.3, jacobian=0.7)


@pytest.mark.parametrize("time", TIMES, ids=lambda c: c.kind)
def test_regularisers_match_quadrature_exact_trace(time: Choice) -> None:
    block = ode(
        (2,), time=time, regularize=FINLAY, trace=Choice("exact"), solver=Choice("rk4"), steps=50
    ).train()
    x = torch.randn(3, 2, dtype=F64)
    block(x)
    kin, jac = brute_force_regularisers(block, x)
    assert torch.allclose(block.kinetic_energy, kin, rtol=1e-6, atol=1e-9)
    assert torch.allclose(block.jacobian_norm, jac, rtol=1e-6, atol=1e-9)
    want = 0.3 * kin.mean() + 0.7 * jac.mean()
    assert abs(block.regularization().item() - want.item()) < 1e-6 * (1 + want.item())


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_jacobian_norm_is_unbiased(noise: str) -> None:
    trace = Choice("hutchinson", samples=1, noise=Choice(noise))
    block = ode((2,), regularize=FINLAY, trace=trace, solver=Choice("rk4"), steps=20).train()
    x = torch.randn(1, 2, dtype=F64)
    torch.manual_seed(1)
    block(x.expand(4000, 2))  # 4000 independent probes of the same point
    draws = block.jacobian_norm
    kin, jac = brute_force_regularisers(block, x)
    mean, se = draws.mean(), draws.std() / math.sqrt(draws.numel())
    assert abs(mean.item() - jac.item()) < 5 * se.item() + 1e-6
    # the kinetic energy does not depend on the probes
    assert torch.allclose(block.kinetic_energy, kin.expand(4000), rtol=1e-6)


def test_regularization_is_zero_in_eval_and_without_the_option() -> None:
    block = ode((2,), regularize=FINLAY, trace=Choice("exact")).eval()
    x = torch.randn(3, 2, dtype=F64)
    block(x)
    assert block.regularization().item() == 0.0
    block.train()
    block(x)
    assert block.regularization().item() > 0.0
    plain = ode((2,), trace=Choice("exact")).train()
    plain(x)
    assert plain.regularization().item() == 0.0


@pytest.mark.parametrize("trace", [Choice("exact"), Choice("hutchinson")], ids=["exact", "hutch"])
def test_the_adjoint_differentiates_the_regulariser(trace: Choice) -> None:
    """The regulariser's parameter gradient through the adjoint equals the one through
    the solver's steps (fixed probes: the same seed)."""
    grads = []
    for adjoint in (False, True):
        block = ode((2,), regularize=FINLAY, trace=trace, adjoint=adjoint, **TIGHT).train()
        torch.manual_seed(3)
        block(torch.randn(4, 2, dtype=F64))
        params = list(block.parameters())
        grads.append(torch.autograd.grad(block.regularization(), params))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(g.abs().max() > 0 for g in grads[0])


TWO_ODES = """flow f {
    input x: [2]
    x = ode(x, net=mlp(hidden=[8], init=default), regularize=finlay(kinetic=0.5, jacobian=0.25))
    x = ode(x, net=mlp(hidden=[8], init=default), regularize=finlay(kinetic=1, jacobian=0))
    output x
}
"""


def test_the_flow_sums_its_blocks_terms() -> None:
    torch.manual_seed(0)
    flow = flowspec.compile(TWO_ODES, dtype=torch.float64).train()
    flow.log_prob(torch.randn(6, 2, dtype=F64))
    want = flow.b0.regularization() + flow.b1.regularization()
    assert flow.regularizes() and want.item() > 0
    assert torch.allclose(flow.regularization(), want)
    other = flowspec.compile(program("x = ode(x, net=mlp(hidden=[8]))", "[2]"))
    assert not other.regularizes() and other.regularization().item() == 0.0


def test_train_adds_and_logs_the_regulariser(tmp_path: Path, capsys) -> None:
    from flowspec.cli import main

    spec = tmp_path / "reg.flow"
    spec.write_text(TWO_ODES, encoding="utf-8")
    common = ["--data", "moons", "--steps", "2", "--log-every", "1", "--batch", "32"]
    assert main(["train", str(spec), *common, "--out", str(tmp_path / "o")]) == 0
    rows = list(csv.DictReader((tmp_path / "o" / "metrics.csv").read_text().splitlines()))
    assert rows and all(float(r["regularization"]) > 0 for r in rows)
    assert f"reg {float(rows[-1]['regularization']):.4g}" in capsys.readouterr().out


# ------------------------------------------------------------------- Lipschitz bound


LIP = 1.2


@pytest.mark.parametrize("time", TIMES, ids=lambda c: c.kind)
def test_the_certified_bound_holds(time: Choice) -> None:
    block = ode((3,), scale=2.0, time=time, lipschitz=LIP, t=0.8, rtol=1e-9, atol=1e-9)
    bound = math.exp(LIP * 0.8)
    kind = REGISTRY["ode"].lipschitz({"lipschitz": LIP, "t": 0.8}, [(3,)])
    assert kind.value == pytest.approx(bound, rel=1e-15)
    assert block.dynamics.net.lipschitz_bound() <= LIP * (1 + 1e-9)
    assert block.lipschitz_bound() <= bound * (1 + 1e-9)
    with torch.no_grad():  # time columns far larger than the x weights: they do not count
        getattr(block.dynamics.net, "time", block.dynamics.net.layers[0]).weight.mul_(10.0)
    torch.manual_seed(5)
    x, x2 = torch.randn(64, 3, dtype=F64), torch.randn(64, 3, dtype=F64)
    x2 = x + 0.1 * x2
    with torch.no_grad():
        for fn in (block.transform, block.inverse_transform):
            ratio = (fn(x) - fn(x2)).norm(dim=1) / (x - x2).norm(dim=1)
            assert ratio.max().item() <= bound * (1 + 1e-6)
    for fn in (block.transform, block.inverse_transform):
        sigma = torch.linalg.matrix_norm(jacobians(fn, x[:8]), ord=2)
        assert sigma.max().item() <= bound * (1 + 1e-6)
        assert sigma.max().item() > 1.0  # the bound is not vacuous: the map does stretch


def test_bounds_and_summary_see_the_ode_bound(tmp_path: Path) -> None:
    spec = tmp_path / "lip.flow"
    spec.write_text(
        program("x = ode(x, net=mlp(hidden=[8]), lipschitz=0.5, t=2.0)", "[2]"), encoding="utf-8"
    )
    run = subprocess.run(
        [sys.executable, "-m", "flowspec", "bounds", str(spec), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["lipschitz"] == pytest.approx(math.e) and got["inverse_lipschitz"] == pytest.approx(
        math.e
    )
    summary = subprocess.run(
        [sys.executable, "-m", "flowspec", "summary", str(spec)], capture_output=True, text=True
    )
    assert "exp(0.5·2) = 2.718" in summary.stdout and "Grönwall" in summary.stdout


# ------------------------------------------------------------------------ verify's NFE


def test_verify_prints_the_nfe(tmp_path: Path) -> None:
    spec = tmp_path / "ode.flow"
    spec.write_text(
        program("x = ode(x, net=mlp(hidden=[8], act=tanh), trace=exact)\nx = reverse(x)", "[2]"),
        encoding="utf-8",
    )

    def verify(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flowspec", "verify", str(spec), *extra],
            capture_output=True,
            text=True,
        )

    text = verify()
    assert text.returncode == 0, text.stdout + text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith("nfe: b0"))
    assert "forward" in line and "inverse" in line and "backward" in line
    blocks = json.loads(verify("--format", "json").stdout)["reports"][0]["blocks"]
    nfe = blocks[0]["nfe"]
    assert set(nfe) == {"forward", "inverse", "backward"}
    assert nfe["forward"] > 0 and nfe["inverse"] > 0 and nfe["backward"] > 0  # adjoint
    assert "nfe" not in blocks[1]  # reverse has none
    assert f"forward {nfe['forward']}," in line

"""The ODE block's function-evaluation count against a counting hook (issue 14)."""

from __future__ import annotations

import pytest
import torch

from flowspec.kinds.options import Choice
from flowspec.runtime.ode import ODE


def _block(**options) -> ODE:
    torch.manual_seed(0)
    block = ODE(
        [(3,)],
        net=Choice("mlp", hidden=[16], act=Choice("tanh"), init=Choice("default")),
        **options,
    ).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


def _counted(block: ODE) -> list[int]:
    seen = [0]
    block.dynamics.register_forward_pre_hook(lambda module, args: seen.__setitem__(0, seen[0] + 1))
    return seen


@pytest.mark.parametrize("adjoint", [True, False])
@pytest.mark.parametrize("solver", ["dopri5", "rk4"])
def test_nfe_equals_a_counting_hook_forward_and_backward(adjoint, solver):
    block = _block(solver=Choice(solver), steps=7, adjoint=adjoint, rtol=1e-6, atol=1e-6)
    seen = _counted(block)
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    y, ladj = block(x)
    forward = seen[0]
    assert block.nfe == (forward, 0) and forward > 0
    if solver == "rk4":
        assert forward == 4 * 7  # four stages per step, seven steps
    (y.sum() + ladj.sum()).backward()
    assert block.nfe == (forward, seen[0] - forward)
    assert (block.nfe[1] > 0) == adjoint  # only the adjoint re-integrates
    seen[0] = 0
    block.inverse_transform(y.detach())  # a new call resets the count
    assert block.nfe == (seen[0], 0)


def test_train_logs_the_steps_function_evaluations(tmp_path, capsys):
    import csv
    from pathlib import Path

    from flowspec.cli import main

    root = Path(__file__).resolve().parent.parent
    common = ["--data", "moons", "--steps", "2", "--log-every", "1", "--batch", "32"]
    assert (
        main(["train", str(root / "specs/ffjord.flow"), *common, "--out", str(tmp_path / "o")])
        == 0
    )
    rows = list(csv.DictReader((tmp_path / "o" / "metrics.csv").read_text().splitlines()))
    assert all(int(r["nfe_forward"]) > 0 and int(r["nfe_backward"]) > 0 for r in rows)
    assert f"nfe {rows[-1]['nfe_forward']}+{rows[-1]['nfe_backward']}" in capsys.readouterr().out
    assert (
        main(["train", str(root / "specs/realnvp.flow"), *common, "--out", str(tmp_path / "r")])
        == 0
    )
    rows = list(csv.DictReader((tmp_path / "r" / "metrics.csv").read_text().splitlines()))
    assert all(r["nfe_forward"] == "" for r in rows)


# ---------------------------------------------------------------- verify's NFE and weights

HUTCHINSON = "x = ode(x, net=mlp(hidden=[8], act=tanh), t=1.5, rtol=1e-6, atol=1e-6)"


def test_verify_is_the_same_whatever_the_global_generator() -> None:
    """The module verify builds draws its initial weights under ``seed``: torch seeds its
    default generator randomly per process, which made the NFE (and every measured
    error) of `flowspec verify` differ between runs, text or JSON."""
    import flowspec
    from flowspec.checks.examples import program

    text = program(HUTCHINSON, "[2]")
    reports = []
    for state in (1, 2):
        torch.manual_seed(state)
        reports.append(flowspec.verify(text, draws=20))
    (a, *_), (b, *_) = (r.rows for r in reports)
    assert a.nfe == b.nfe and a.nfe is not None
    assert [repr(c.measured) for c in a.checks] == [repr(c.measured) for c in b.checks]
    seeded = flowspec.verify(text, draws=40).rows[0]  # more draws before the NFE call
    assert seeded.nfe == a.nfe


def test_verify_text_and_json_report_the_same_nfe(tmp_path) -> None:
    import json
    import subprocess
    import sys

    from flowspec.checks.examples import program

    spec = tmp_path / "hutch.flow"
    spec.write_text(program(HUTCHINSON, "[2]"), encoding="utf-8")

    def run(*extra: str) -> str:
        args = [sys.executable, "-m", "flowspec", "verify", str(spec), "--draws", "20", *extra]
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    line = next(x for x in run().splitlines() if x.startswith("nfe: b0"))
    nfe = json.loads(run("--format", "json"))["reports"][0]["blocks"][0]["nfe"]
    want = f"forward {nfe['forward']}, inverse {nfe['inverse']}, backward {nfe['backward']} "
    assert want in line


LIPSCHITZ = "x = ode(x, net=mlp(hidden=[8, 8], act=tanh), lipschitz=1.5, t=0.5, trace=exact)"


def test_verify_measures_the_certified_ode_weights() -> None:
    import math

    import flowspec
    from flowspec.checks.examples import program
    from flowspec.verify import prepare

    text = program(LIPSCHITZ, "[2]")
    report = flowspec.verify(text, draws=20)
    weights = report.rows[0].get("weights")
    share = 1.5 ** (1 / 3)  # three layers, tanh is 1-Lipschitz
    assert weights.ok and weights.measured <= weights.tolerance
    assert weights.tolerance == pytest.approx(share, rel=1e-6)  # times 1 + τ
    assert "≤ 1.5" in weights.note
    # the weights as used bypass the normalisation: 2× the certified ones
    flow = prepare(text)
    net = flow.b0.dynamics.net
    used = net.x_weights
    net.x_weights = lambda: [2.0 * w for w in used()]
    broken = flowspec.verify(flow, draws=20).rows[0].get("weights")
    assert not broken.ok and broken.measured > 1.5 * share
    assert math.isfinite(broken.measured)
    plain = flowspec.verify(program(HUTCHINSON, "[2]"), draws=20).rows[0]
    assert plain.get("weights") is None  # no lipschitz: nothing to measure

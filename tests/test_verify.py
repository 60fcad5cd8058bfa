"""``flowspec verify`` (issue 11): passes on the reference specs, and fails, naming the
spec line, the quantity, the measured value and the tolerance, on broken modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SPECS
from hypothesis import HealthCheck, given, settings
from test_property_compile import programs

import flowspec
from flowspec.verify import prepare

pytest_plugins = ["pytester"]

GOOD = (
    "flow good {\n    input x: [2]\n    x = coupling.affine(x, net=mlp(hidden=[8]))\n"
    "    x = reverse(x)\n    x = coupling.affine(x, net=mlp(hidden=[8]))\n    output x\n}\n"
)
#: checks clean, but one euler step over t = 4 is no inverse of the step back
BROKEN = (
    "flow broken {\n    input x: [2]\n"
    "    x = ode(x, net=mlp(hidden=[32], act=tanh), t=4.0, solver=euler, steps=1, trace=exact)\n"
    "    output x\n}\n"
)


def _spec(name: str) -> Path:
    return ROOT / "specs" / f"{name}.flow"


def _failures(report, quantity: str) -> list[str]:
    return [line for line in report.failure_lines() if f": {quantity}: " in line]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_reference_spec_verifies(spec: Path) -> None:
    # the whole folder takes about 8 s here, so it runs by default
    report = flowspec.verify(spec)
    assert report.ok, str(report)
    assert report.rows[-1].attr == "flow"
    text = str(report)
    assert text.startswith(f"verify {spec}") and "ok:" in text


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs())
def test_random_programs_verify(program) -> None:
    text, _planar = program
    report = flowspec.verify(text)
    assert report.ok, text + str(report)


def test_the_report_has_a_row_per_block_and_one_for_the_flow() -> None:
    report = flowspec.verify(_spec("realnvp"))
    assert [r.attr for r in report.rows] == [f"b{i}" for i in range(16)] + ["flow"]
    row = report.rows[0]
    assert row.kind == "coupling.affine" and row.location.endswith("realnvp.flow:7")
    quantities = {c.quantity for c in row.checks}
    assert {"round trip", "ladj", "inverse ladj", "fused", "finite", "gradients"} <= quantities
    assert {"lipschitz", "inverse lipschitz"} <= {c.quantity for c in report.rows[1].checks}
    json.dumps(report.to_dict())


def test_a_ladj_off_by_a_constant_fails_at_its_line() -> None:
    flow = prepare(_spec("realnvp"))
    block = flow.b2
    forward = block.forward

    def off(*xs, **cond):
        y, ladj = forward(*xs, **cond)
        return y, ladj + 0.5

    block.forward = off
    report = flowspec.verify(flow)
    assert not report.ok
    (line,) = [f for f in _failures(report, "ladj") if "(b2)" in f]
    assert str(_spec("realnvp")) + ":7: `coupling.affine` (b2): ladj: measured" in line
    assert "> tolerance 6.0e-08" in line
    assert any(r.attr == "flow" and not r.ok for r in report.rows)
    assert all(r.ok for r in report.rows if r.attr not in ("b2", "flow"))


def test_an_inverse_off_by_1e_3_fails_at_its_line() -> None:
    flow = prepare(_spec("realnvp"))
    block = flow.b4
    inverse, inverse_transform = block.inverse, block.inverse_transform
    block.inverse = lambda y: (inverse(y)[0] + 1e-3, inverse(y)[1])
    block.inverse_transform = lambda y: inverse_transform(y) + 1e-3
    report = flowspec.verify(flow)
    (line,) = [f for f in _failures(report, "round trip") if "(b4)" in f]
    assert ":7: `coupling.affine` (b4): round trip: measured" in line
    measured = float(line.split("measured ")[1].split()[0])
    assert 1e-4 < measured <= 1e-3


def test_residual_weights_rescaled_past_the_proven_bound_fail() -> None:
    # bypass the normalisation: the weights used are 3× the certified ones
    flow = prepare(_spec("iresnet"))
    g = flow.b0.g
    certified = g.weights
    g.weights = lambda: [3.0 * w for w in certified()]
    report = flowspec.verify(flow)
    row = report.rows[0]
    assert row.kind == "residual" and not row.ok
    weights = row.get("weights")
    assert not weights.ok and weights.measured > 0.9 * 1.5 and weights.tolerance < 0.91
    (line,) = _failures(report, "weights")
    assert "iresnet.flow:10: `residual` (b0): weights: measured" in line


def test_a_biased_estimator_fails_its_confidence_interval() -> None:
    flow = prepare(_spec("residual_flow"))
    block = flow.b1  # roulette, line 9
    forward = block.forward
    block.forward = lambda x: (forward(x)[0], forward(x)[1] + 0.05)
    report = flowspec.verify(flow)
    (line,) = [f for f in _failures(report, "stochastic ladj") if "(b1)" in f]
    assert "residual_flow.flow:9: `residual` (b1): stochastic ladj: measured" in line
    assert "standard error" in line
    assert all(r.ok for r in report.rows if r.attr not in ("b1", "flow"))


def test_a_numerically_broken_spec_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.flow"
    path.write_text(BROKEN, encoding="utf-8")
    assert flowspec.check(path) == []
    report = flowspec.verify(path)
    assert not report.ok
    assert any(f"{path}:3: `ode` (b0): round trip" in f for f in report.failure_lines())


def test_float32_tolerances_are_looser() -> None:
    report = flowspec.verify(_spec("nice"), dtype=torch.float32)
    assert report.ok, str(report)
    tol = report.rows[0].get("round trip").tolerance
    assert 1e-3 < tol < 2e-3


def test_verify_restores_a_given_flow() -> None:
    flow = flowspec.compile(_spec("nice"))
    flow.train()
    assert flowspec.verify(flow).ok
    assert flow.training and flow._probe.dtype == torch.float32


def test_a_flow_without_its_spec_needs_spec() -> None:
    flow = flowspec.compile(_spec("nice"))
    type(flow).SPEC_SOURCE = None
    with pytest.raises(ValueError, match="spec=PATH"):
        flowspec.verify(flow)
    assert flowspec.verify(flow, spec=_spec("nice")).ok
    with pytest.raises(ValueError, match="spec hash"):
        flowspec.verify(flow, spec=_spec("realnvp"))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", "verify", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_exit_codes_and_formats(tmp_path: Path, run_cli) -> None:
    (tmp_path / "good.flow").write_text(GOOD, encoding="utf-8")
    (tmp_path / "broken.flow").write_text(BROKEN, encoding="utf-8")
    ok = _cli("good.flow", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 of 1 flow(s) verified" in ok.stdout
    bad = _cli(".", "--samples", "2", "--seed", "3", cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAILED broken.flow:3: `ode` (b0): round trip: measured" in bad.stdout
    assert "1 of 2 flow(s) verified, 1 failed" in bad.stdout
    # the other formats and the usage errors in-process (run_cli runs in tmp_path)
    result = run_cli("verify", ".", "--format", "json")
    data = json.loads(result.stdout)
    assert result.status == 1 and not data["ok"]
    assert [r["ok"] for r in data["reports"]] == [False, True]
    junit = run_cli("verify", "broken.flow", "--format", "junit").stdout
    assert junit.startswith("<?xml") and 'failures="2"' in junit
    usage = run_cli("verify", "good.flow", "--samples", "0")
    assert usage.status == 2 and "--samples" in usage.stderr


def test_cli_reports_spec_errors(tmp_path: Path, run_cli) -> None:
    (tmp_path / "bad.flow").write_text("flow f {\n    input x: [2]\n    output y\n}\n")
    result = run_cli("verify", "bad.flow")
    assert result.status == 1 and "E200" in result.stdout


def test_pytest_plugin_verifies_each_spec(pytester) -> None:
    pytester.makefile(".flow", good=GOOD, broken=BROKEN)
    result = pytester.runpytest("--flowspec")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest("--flowspec", "--flowspec-verify")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*broken.flow:3: `ode` (b0): round trip: measured*"])


def _large(d: int) -> str:
    return (
        f"flow big {{\n    input x: [{d}]\n    repeat 2 {{\n        x = actnorm(x)\n"
        "        x = coupling.additive(x, net=mlp(hidden=[4]))\n        x = reverse(x)\n"
        "    }\n    output x\n}\n"
    )


def test_large_inputs_are_sub_sampled() -> None:
    # 1,100 features: one sample, LARGE_BLOCKS random blocks brute-forced, the rest skipped
    report = flowspec.verify(_large(1100))
    assert report.ok, str(report)
    ladj = [r.get("ladj") for r in report.rows[:-1]]
    assert sum(not c.skipped for c in ladj) == 4 and sum(c.skipped for c in ladj) == 2
    assert "4 random blocks that large are brute-forced" in str(report)
    assert not report.rows[-1].get("ladj").skipped  # the whole flow: one dense Jacobian
    # 5,000 features: no dense Jacobian; σ_max of the permutations by power iteration
    report = flowspec.verify(_large(5000))
    assert report.ok, str(report)
    assert all(r.get("ladj").skipped for r in report.rows)
    lip = report.rows[2].get("lipschitz")
    assert report.rows[2].kind == "reverse" and abs(lip.measured - 1.0) < 1e-6


def test_cli_verifies_the_trained_weights_of_a_checkpoint(tmp_path: Path, run_cli) -> None:
    import torch

    spec = _spec("realnvp")
    flow = flowspec.compile(spec)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(5):
        loss = -flow.log_prob(torch.randn(64, 2) * torch.tensor([1.0, 2.0])).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ckpt = tmp_path / "trained.ckpt"
    flowspec.save(flow, ckpt)
    ok = run_cli("verify", str(spec), "--weights", str(ckpt))
    assert ok.status == 0, ok.stdout + ok.stderr
    assert "1 of 1 flow(s) verified" in ok.stdout
    other = run_cli("verify", str(_spec("maf")), "--weights", str(ckpt))
    assert other.status == 1 and "saved from a different spec" in other.stdout
    two = run_cli("verify", str(spec), str(_spec("maf")), "--weights", str(ckpt))
    assert two.status == 2 and "exactly one FILE" in two.stderr

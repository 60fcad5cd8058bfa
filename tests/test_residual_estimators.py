"""Residual log-det estimators: always-exact terms before the roulette tail, the
eval-mode estimator, the spread `verify` reports and what `summary` says of them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import flowspec
from flowspec.checks.examples import diagnose
from flowspec.runtime.residual import Estimator


def _spec(
    logdet: str, eval_logdet: str = "same", c: float = 0.8, trace: str = "hutchinson"
) -> str:
    return (
        "flow f {\n    input x: [3]\n"
        "    x = residual(x, net=mlp(hidden=[16], act=lipswish, init=default), "
        f"lipschitz={c}, logdet={logdet}, eval_logdet={eval_logdet}, trace={trace})\n"
        "    output x\n}\n"
    )


def _flow(logdet: str, eval_logdet: str = "same", trace: str = "hutchinson") -> flowspec.Flow:
    torch.manual_seed(0)
    return flowspec.compile(_spec(logdet, eval_logdet, trace=trace)).double()


def _exact(flow: flowspec.Flow, x: torch.Tensor) -> torch.Tensor:
    block = flow.b0
    jac = torch.autograd.functional.jacobian(lambda v: block.transform(v[None])[0], x[0])
    return torch.linalg.slogdet(jac)[1]


def _ladjs(flow: flowspec.Flow, x: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([flow.b0(x)[1][0] for _ in range(n)])


def test_exact_terms_zero_is_the_original_estimator() -> None:
    """e = 0: N ~ Geometric(p) on {1, 2, …}, term k weighted 1/(k(1 − p)^(k−1))."""
    torch.manual_seed(3)
    n, w = Estimator("roulette", p=0.3).weights()
    q = 0.7
    assert w == pytest.approx([(-1) ** (k + 1) / (k * q ** (k - 1)) for k in range(1, n + 1)])


@pytest.mark.parametrize("e", [0, 2, 5])
def test_terms_are_exact_terms_plus_a_geometric_tail(e: int) -> None:
    torch.manual_seed(1)
    draws = [Estimator("roulette", p=0.4, exact_terms=e).weights() for _ in range(4000)]
    counts = torch.tensor([float(n) for n, _ in draws])
    assert int(counts.min()) == e + 1
    # E[N] = 1/p, sd √(1 − p)/p; the mean within 4 standard errors
    assert abs(counts.mean().item() - (e + 1 / 0.4)) < 4 * (0.6**0.5 / 0.4) / 4000**0.5
    for n, w in draws[:50]:
        assert w[:e] == pytest.approx([(-1) ** (k + 1) / k for k in range(1, e + 1)])
        assert w[e:] == pytest.approx(
            [(-1) ** (k + 1) / (k * 0.6 ** (k - e - 1)) for k in range(e + 1, n + 1)]
        )


@pytest.mark.parametrize("e", [0, 3])
def test_roulette_with_exact_terms_is_unbiased(e: int) -> None:
    flow = _flow(f"roulette(p=0.5, exact_terms={e})")
    x = torch.randn(1, 3, dtype=torch.float64) * 2
    exact = _exact(flow, x)
    est = _ladjs(flow, x, 3000)
    se = est.std() / len(est) ** 0.5
    assert abs(est.mean() - exact) < 4 * se + 1e-12


def test_exact_terms_lower_the_spread() -> None:
    """With exact traces the only randomness is the roulette tail, which exact terms
    shorten."""
    x = torch.randn(1, 3, dtype=torch.float64) * 2
    flows = [_flow(f"roulette(p=0.5, exact_terms={e})", trace="exact") for e in (0, 6)]
    spread = [_ladjs(f, x, 2000).std() for f in flows]
    assert spread[1] < 0.5 * spread[0]


def test_eval_mode_uses_eval_logdet() -> None:
    flow = _flow("roulette(p=0.5)", "exact")
    x = torch.randn(4, 3, dtype=torch.float64)
    exact = torch.stack([_exact(flow, x[i : i + 1]) for i in range(4)])
    flow.eval()
    with torch.no_grad():
        a, b = flow.b0(x)[1], flow.b0(x)[1]
    assert torch.allclose(a, exact, atol=1e-10) and torch.equal(a, b)
    flow.train()
    draws = _ladjs(flow, x[:1], 20)
    assert draws.std() > 0  # training keeps the roulette estimator


def test_eval_series_is_deterministic_and_within_its_bias() -> None:
    flow = _flow("roulette(p=0.5)", "series(terms=20)", trace="exact").eval()
    x = torch.randn(1, 3, dtype=torch.float64) * 2
    a, b = _ladjs(flow, x, 2)
    assert a == b
    assert abs(a - _exact(flow, x)) <= flow.b0.series_tail_bound(20)


def test_eval_same_keeps_the_training_estimator() -> None:
    flow = _flow("roulette(p=0.5, exact_terms=1)")
    assert flow.b0.eval_estimator is flow.b0.train_estimator
    assert flow.b0.train_estimator == Estimator("roulette", p=0.5, exact_terms=1)


def test_an_exact_eval_estimator_is_refused_in_half_precision() -> None:
    with pytest.raises(ValueError, match=r"takes torch\.linalg\.slogdet"):
        flowspec.compile(_spec("roulette", "exact"), dtype="bfloat16")


def _codes(line: str, capsys: pytest.CaptureFixture[str]) -> str:
    diagnose(line)
    return capsys.readouterr().out


def test_w107_only_where_no_p_proves_the_variance(capsys: pytest.CaptureFixture[str]) -> None:
    line = "x = residual(x, net=mlp(hidden=[8], act=lipswish), lipschitz={})"
    assert "W107" in _codes(line.format(0.999), capsys)
    assert "W107" not in _codes(line.format(0.98), capsys)
    series = "x = residual(x, net=mlp(hidden=[8]), lipschitz=0.999, logdet=series(terms=9))"
    assert "W107" not in _codes(series, capsys)
    evals = (
        "x = residual(x, net=mlp(hidden=[8]), lipschitz=0.999, logdet=series, "
        "eval_logdet=roulette)"
    )
    assert "W107" in _codes(evals, capsys)


def test_require_exact_logdet_names_a_stochastic_eval_estimator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _codes(
        "require exact_logdet\n"
        "x = residual(x, net=mlp(hidden=[8]), logdet=exact, eval_logdet=roulette)",
        capsys,
    )
    assert "E401" in out and "eval_logdet=roulette" in out


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_summary_states_estimators_and_whether_the_variance_is_proven(tmp_path) -> None:
    spec = tmp_path / "r.flow"
    spec.write_text(_spec("roulette(p=0.5, exact_terms=2)", "series(terms=20)", c=0.6))
    out = _cli("summary", str(spec))
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("log-det estimators"))
    assert "training: roulette(p=0.5, exact_terms=2), 4 terms on average" in line
    assert "variance proven finite (c² = 0.36 < 1 − p)" in line
    assert "eval: series(terms=20), 20 terms on average" in line
    spec.write_text(_spec("roulette(p=0.5)", c=0.9))
    line = next(x for x in _cli("summary", str(spec)).stdout.splitlines() if "estimators" in x)
    assert "variance finite if ρ(J_g)² < 1 − p = 0.5 (not proven: c² = 0.81)" in line
    assert "eval: the same" in line


def test_verify_reports_the_spread_of_one_estimate(tmp_path) -> None:
    spec = tmp_path / "r.flow"
    spec.write_text(_spec("roulette(p=0.5)"))
    out = _cli("verify", str(spec), "--format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    block = json.loads(out.stdout)["reports"][0]["blocks"][0]
    sd = next(c for c in block["checks"] if c["quantity"] == "estimate sd")
    assert sd["ok"] and sd["measured"] > 0 and sd["tolerance"] == "inf"
    spec.write_text(_spec("roulette(p=0.5)", "exact"))
    out = _cli("verify", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr
    header, row = out.stdout.splitlines()[1:3]
    assert "σ est" in header
    spread = float(row[header.index("σ est") :].split()[0])
    assert spread < 1e-12  # eval_logdet=exact: verify runs the module in eval mode


def test_option_types_resolve() -> None:
    flow = _flow("roulette(p=0.25, exact_terms=4)", "roulette(exact_terms=20)")
    assert flow.b0.train_estimator == Estimator("roulette", p=0.25, exact_terms=4)
    assert flow.b0.eval_estimator == Estimator("roulette", p=0.5, exact_terms=20)

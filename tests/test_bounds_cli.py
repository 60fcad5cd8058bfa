"""`flowspec bounds`: the expressivity limits of bi-Lipschitz flows (Verine et al. 2021),
against closed forms and scipy, and its data bounds on data with a known answer."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import chi2

from flowspec.bounds import bounds, chi2_cdf, max_ball_mass, min_ball_mass
from flowspec.core.spans import Source
from flowspec.driver import Compilation

TWO_RESIDUALS = """flow f {
    input x: [2]
    x = residual(x, net=mlp(hidden=[16], act=elu), lipschitz=0.5)
    x = residual(x, net=mlp(hidden=[16], act=elu), lipschitz=0.5)
    output x
}
"""


def resolved(text: str = TWO_RESIDUALS):
    return Compilation(Source("two.flow", text)).resolved()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", "bounds", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("d", range(1, 65))
def test_the_chi2_mass_agrees_with_scipy(d):
    for x in (0.0, 0.1, 1.0, d / 2, d, 3.0 * d):
        assert chi2_cdf(x, d) == pytest.approx(chi2.cdf(x, d), abs=1e-12)


def test_two_residual_blocks_give_the_closed_forms():
    b = bounds(resolved(), radii=[0.01, 0.1, 0.5, 1.0, 2.0])
    assert b.lipschitz.value == pytest.approx(2.25)  # (1 + c)^2
    assert b.inverse_lipschitz.value == pytest.approx(4.0)  # (1 / (1 - c))^2
    for r, hi, lo in zip(b.radii, b.max_ball_mass(), b.min_ball_mass()):
        assert hi == pytest.approx(1 - math.exp(-((2.25 * r) ** 2) / 2), abs=1e-9)
        assert lo == pytest.approx(1 - math.exp(-((r / 4) ** 2) / 2), abs=1e-9)


def test_data_in_a_tiny_ball_force_a_large_dense_bound():
    rng = np.random.default_rng(1)
    angle, radius = rng.uniform(0, 2 * np.pi, 1000), 0.01 * np.sqrt(rng.uniform(0, 1, 1000))
    data = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + 3.0
    b = bounds(resolved(), data=data, confidence=0.95)
    assert b.tv is not None and b.tv["kind"] == "dense"
    assert b.tv["value"] > 0.9
    assert b.tv["confidence"] == 0.95


def test_normal_data_give_no_positive_bound():
    # an identity flow fits N(0, I), and it has L1 = L2 = 1 ≤ the proven bounds
    data = np.random.default_rng(2).standard_normal((2000, 2))
    assert bounds(resolved(), data=data).tv is None


def test_a_ring_around_an_empty_centre_forces_a_sparse_bound():
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, 2 * np.pi, 2000)
    ring = 30.0 + 0.05 * rng.standard_normal(2000)
    data = np.stack([ring * np.cos(angle), ring * np.sin(angle)], 1)
    b = bounds(resolved(), data=data)
    assert b.tv is not None and b.tv["kind"] == "sparse"
    assert b.tv["value"] > 0.1 and b.tv["center"] is None


def test_the_bounds_hold_against_a_model_that_attains_them():
    """A linear map z = L·x with L = 2.25 is a flow with Lip(F) = 2.25: its mass in a
    ball of radius R is exactly the max ball mass, never more."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200_000, 2)) / 2.25
    for r in (0.1, 0.5, 1.0):
        empirical = float((np.linalg.norm(x, axis=1) <= r).mean())
        assert empirical <= max_ball_mass(r, 2, 2.25) + 4 * math.sqrt(0.25 / len(x))
        assert empirical == pytest.approx(max_ball_mass(r, 2, 2.25), abs=0.005)
    assert min_ball_mass(1.0, 2, None) == 0.0 and max_ball_mass(1.0, 2, None) == 1.0


def test_the_cli_prints_json_with_the_documented_keys(tmp_path):
    spec = tmp_path / "two.flow"
    spec.write_text(TWO_RESIDUALS)
    data = tmp_path / "tiny.npy"
    np.save(data, 3.0 + 0.001 * np.random.default_rng(5).standard_normal((400, 2)))
    result = run(str(spec), "--data", str(data), "--format", "json", "--radius", "0.01")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {
        "lipschitz",
        "inverse_lipschitz",
        "dim",
        "radii",
        "max_ball_mass",
        "min_ball_mass",
        "tv_lower_bound",
    }
    assert out["dim"] == 2 and out["radii"] == [0.01]
    assert set(out["tv_lower_bound"]) == {"value", "confidence", "kind", "radius", "center"}
    text = run(str(spec), "--data", str(data))
    assert "valid bound at 95% confidence" in text.stdout


def test_an_unbounded_block_is_named_and_bad_input_is_a_clear_error(tmp_path):
    spec = tmp_path / "nvp.flow"
    spec.write_text(
        "flow f {\n    input x: [2]\n    x = coupling.affine(x, net=mlp(hidden=[8]))\n"
        "    x = reverse(x)\n    output x\n}\n"
    )
    result = run(str(spec))
    assert result.returncode == 0
    assert "no bound, because `coupling.affine` (line 3) is unbounded" in result.stdout
    wrong = tmp_path / "wide.npy"
    np.save(wrong, np.zeros((10, 3)))
    result = run(str(spec), "--data", str(wrong))
    assert result.returncode == 1
    assert "3 features per sample" in result.stderr and "Traceback" not in result.stderr
    assert run(str(spec), "--confidence", "1.5").returncode == 2

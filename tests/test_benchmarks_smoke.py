"""Smoke tests of the benchmark scripts: they run at their ``--quick`` sizes and print the
JSON they promise (slow: each starts a subprocess and trains small models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_residual_quick_json() -> None:
    pytest.importorskip("normflows")
    pytest.importorskip("FrEIA")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_residual.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout)
    assert set(result) == {
        "settings",
        "sigma_max",
        "eval_log_prob",
        "eval_log_prob_roulette",
        "inverse",
        "train_step",
        "peak_memory_mb",
    }
    libraries = {"flowspec", "normflows", "FrEIA"}
    assert set(result["sigma_max"]) == libraries
    assert result["sigma_max"]["flowspec"]["over_c"] == 0
    for key in ("eval_log_prob", "inverse", "train_step"):
        assert {"ms", "ratio"} <= set(result[key])
        assert {"normflows", "FrEIA", "faster peer"} == set(result[key]["ratio"])
    assert set(result["inverse"]["error"]) == libraries
    assert {"flowspec neumann", "flowspec backprop", "normflows", "FrEIA"} == set(
        result["peak_memory_mb"]
    )

"""Shared fixtures: the spec paths, golden-file updating, and a ``run_cli`` fixture.

``--runslow`` runs the tests marked ``slow`` too (the default ``-m 'not slow'`` in
pyproject skips them).  ``--update-golden`` (or ``FLOWSPEC_UPDATE_GOLDEN=1``) rewrites
golden snapshots instead of comparing against them.
"""

from __future__ import annotations

import io
import os
import random
import sys
import zlib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.flow"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden snapshots in tests/golden"
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--runslow"):
        config.option.markexpr = ""


@pytest.fixture(autouse=True)
def _seeded(request: pytest.FixtureRequest) -> None:
    """Every test draws from generators seeded by its own node id, so a test sees the
    same random numbers whatever else runs before it (``-k``, ``-x``, another CPU), and
    a failure reproduces.  torch is seeded only when the test module imported it."""
    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden")) or os.environ.get(
        "FLOWSPEC_UPDATE_GOLDEN", ""
    ) not in ("", "0")


@dataclass
class CliResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run ``flowspec ARGS...`` in-process (``flowspec.cli.main``) from ``tmp_path``;
    returns the exit status and the captured output."""
    from flowspec.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = main([str(a) for a in args])
        return CliResult(status, out.getvalue(), err.getvalue())

    return run

"""The reference specs check clean, and the grammar ships inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, SPECS
from harness import LANGUAGE_MD_REALNVP

import flowspec
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.syntax import dsl

REFERENCE = {
    "nice",
    "realnvp",
    "realnvp_tabular",
    "glow",
    "nsf",
    "planar",
    "iresnet",
    "residual_flow",
    "ffjord",
    "maf",
}


def test_the_reference_architectures_are_all_there():
    assert REFERENCE - {p.stem for p in SPECS} == set()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_checks_clean(path):
    assert flowspec.check(path) == []
    assert flowspec.check(str(path)) == []


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_defines_one_flow(path):
    comp = Compilation.of(path)
    assert len(comp.flow_names()) == 1
    comp.flow_graph()  # no flow= needed


def test_the_realnvp_spec_is_the_one_of_the_language_reference():
    program, _ = dsl.parse(Source("realnvp.flow", (ROOT / "specs" / "realnvp.flow").read_text()))
    reference, _ = dsl.parse(Source("reference.flow", LANGUAGE_MD_REALNVP))
    assert program == reference  # spans (and so comments and layout) aside


def test_the_iresnet_spec_proves_its_lipschitz_requirements():
    from flowspec.checks.lipschitz import lipschitz_bound

    fg = Compilation.of(ROOT / "specs" / "iresnet.flow").flow_graph()
    required = {r.property: r.bound for r in fg.requirements}
    assert lipschitz_bound(fg).value <= required["lipschitz"]
    assert lipschitz_bound(fg, inverse=True).value <= required["inverse_lipschitz"] * (1 + 1e-12)


def test_flowspec_check_on_all_specs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "flowspec", "check", *map(str, SPECS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok: {len(SPECS)} files checked, no problems" in proc.stdout


def _build_wheel(tmp_path: Path) -> Path:
    # build from a copy so the shared working tree gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("flowspec", "grammar"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("flowspec-*.whl")
    return wheel


def test_the_grammar_ships_inside_the_wheel_and_is_what_the_parser_loads(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "flowspec/grammar/flow.lark" in names
        assert (
            zf.read("flowspec/grammar/flow.lark") == (ROOT / "grammar" / "flow.lark").read_bytes()
        )
        site = tmp_path / "site"
        zf.extractall(site)
    # the unpacked wheel alone (first on the path) parses and checks a spec
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import flowspec, sys; "
        f"assert flowspec.__file__.startswith({str(site)!r}), flowspec.__file__; "
        f"sys.exit(len(flowspec.check({str(SPECS[0])!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr

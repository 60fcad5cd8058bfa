"""Invariants of the layout a newcomer can rely on (issue 9, "Must show").

- ``flowspec.check`` never imports torch (nor networkx, unless a ``cond=`` ordering
  check asks for the graph): checked in a fresh interpreter over every spec in specs/
  and its YAML conversion.
- The front ends (``flowspec/syntax``) import nothing from the IR, the checks, codegen
  or the runtime; ``flowspec/kinds`` and ``flowspec/core`` import neither the runtime
  nor torch; codegen imports no check.  These are static scans of every ``import`` in
  the source (including imports inside functions and under ``TYPE_CHECKING``).
- No module under ``flowspec/`` is longer than 600 lines.

A known violation is an ``xfail(strict=True)`` case naming the offending imports, so
the case fails (and asks to be removed from the table) once the violation is fixed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SPECS

from flowspec.driver import Compilation
from flowspec.syntax.to_yaml import to_yaml

PACKAGE = ROOT / "flowspec"
MAX_LINES = 600


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _modules(under: str) -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py")) if under else sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in the file, as ``(line, dotted name)``.
    ``from a.b import c`` counts as ``a.b.c`` (``c`` may be a submodule)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(ROOT).with_suffix("").parts[:-1]
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def offending(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    """``"file:line imports module"`` for each import of a forbidden package."""
    return [
        f"{_rel(path)}:{line} imports {name}"
        for line, name in imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def _cases(paths: list[Path], known: dict[str, str]) -> list:
    return [
        pytest.param(
            p,
            id=_rel(p),
            marks=[pytest.mark.xfail(strict=True, reason=known[_rel(p)])]
            if _rel(p) in known
            else [],
        )
        for p in paths
    ]


# ------------------------------------------------------------------ check stays light

CHECK_IN_A_FRESH_PROCESS = """
import json, sys
import flowspec
errors = {p: [d.code for d in flowspec.check(p) if d.is_error] for p in sys.argv[1:]}
print(json.dumps({"errors": errors, "loaded": sorted(m for m in ("torch", "networkx")
                                                     if m in sys.modules)}))
"""


def test_check_never_imports_torch_or_networkx(tmp_path: Path) -> None:
    paths = [str(p) for p in SPECS]
    for spec in SPECS:
        program, diags = Compilation.of(spec).parsed
        assert program is not None, diags
        yaml_path = tmp_path / f"{spec.stem}.yaml"
        yaml_path.write_text(to_yaml(program), encoding="utf-8")
        paths.append(str(yaml_path))
    result = subprocess.run(
        [sys.executable, "-c", CHECK_IN_A_FRESH_PROCESS, *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    # the check did its work: every reference spec (and its YAML twin) is clean
    assert report["errors"] == {p: [] for p in paths}
    # a cond= read orders the inverse with networkx; torch is never loaded
    assert "torch" not in report["loaded"]
    plain = [
        p
        for p in paths
        if "cond=" not in Path(p).read_text() and "cond:" not in Path(p).read_text()
    ]
    result = subprocess.run(
        [sys.executable, "-c", CHECK_IN_A_FRESH_PROCESS, *plain],
        capture_output=True,
        text=True,
        check=True,
    )
    # without a cond= read nothing asks for the networkx graph
    assert json.loads(result.stdout)["loaded"] == []


# ------------------------------------------------------------------ import direction

FRONT_END_FORBIDDEN = ("flowspec.ir", "flowspec.checks", "flowspec.codegen", "flowspec.runtime")

#: front-end modules that still reach into a later stage, and what they import; issue 9
#: ("one option resolver") removes these
FRONT_END_KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("path", _cases(_modules("syntax"), FRONT_END_KNOWN))
def test_front_ends_import_no_later_stage(path: Path) -> None:
    assert offending(path, FRONT_END_FORBIDDEN) == []


COMPILE_TIME_FORBIDDEN = ("flowspec.runtime", "flowspec.compiler", "torch", "torchdiffeq")


@pytest.mark.parametrize("path", _cases(_modules("kinds") + _modules("core"), {}))
def test_kinds_and_core_import_no_runtime_and_no_torch(path: Path) -> None:
    assert offending(path, COMPILE_TIME_FORBIDDEN) == []


#: the benchmarks' peer libraries (the ``bench`` extra): flowspec never depends on them
BENCHMARK_ONLY = ("normflows", "FrEIA", "nflows", "zuko")


@pytest.mark.parametrize("path", _cases(_modules(""), {}))
def test_flowspec_imports_no_benchmark_peer(path: Path) -> None:
    assert offending(path, BENCHMARK_ONLY) == []


def test_codegen_imports_no_check() -> None:
    assert offending(PACKAGE / "codegen.py", ("flowspec.checks",)) == []


def test_the_scan_sees_every_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from flowspec.ir.graph import Node\n"
        "def build():\n"
        "    import torch.nn\n"
        "    from flowspec import runtime\n",
        encoding="utf-8",
    )
    assert [name for _, name in imports(source)] == [
        "typing.TYPE_CHECKING",
        "flowspec.ir.graph.Node",
        "torch.nn",
        "flowspec.runtime",
    ]


# ------------------------------------------------------------------ module size

#: modules still over the limit; other stages of issue 9 split them
LONG_KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("path", _cases(_modules(""), LONG_KNOWN))
def test_no_module_is_longer_than_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_rel(path)} has {lines} lines"


def test_known_violations_name_existing_files() -> None:
    # a file split or renamed leaves its xfail entry behind: remove the entry
    for table in (FRONT_END_KNOWN, LONG_KNOWN):
        for rel in table:
            assert (ROOT / rel).is_file(), f"{rel} is gone: remove it from the table"

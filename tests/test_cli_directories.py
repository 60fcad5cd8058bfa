"""`flowspec check DIR` and `flowspec fmt --check DIR`, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

GOOD = "flow f {\n    input x: [2]\n    x = reverse(x)\n    output x\n}\n"
BAD = "flow f {\n    input x: [2]\n    x = reverse(y)\n    output x\n}\n"
YAML = "# commented\nflowspec: 1\nflows:\n  - name: g\n    input: {name: x, shape: [2]}\n"
YAML += "    body:\n      - {op: reverse, in: x}\n    output: [x]\n"


def flowspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *args], capture_output=True, text=True, timeout=120
    )


def test_check_a_directory_checks_the_specs_below_it(tmp_path: Path) -> None:
    (tmp_path / "a.flow").write_text(GOOD)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.flow").write_text(BAD)
    (tmp_path / "sub" / "c.yaml").write_text(YAML)
    (tmp_path / "ci.yml").write_text("on: push\n")  # not a spec: skipped
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "d.flow").write_text(BAD)  # hidden: skipped
    result = flowspec("check", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'sub' / 'b.flow'}:3:17" in result.stdout
    assert result.stdout.count("error[") == 1
    assert "1 error(s), 2 warning(s) in 3 files" in result.stdout  # W100 in a and c


def test_a_directory_without_specs_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "ci.yml").write_text("on: push\n")
    result = flowspec("check", str(tmp_path))
    assert result.returncode == 2
    assert "no flow specs" in result.stderr and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def test_fmt_check_a_directory_reads_its_flow_files(tmp_path: Path) -> None:
    (tmp_path / "a.flow").write_text(GOOD)
    (tmp_path / "c.yaml").write_text(YAML)  # YAML is not formatted: skipped
    assert flowspec("fmt", "--check", str(tmp_path)).returncode == 0
    (tmp_path / "b.flow").write_text(GOOD.replace("    x = reverse", "  x = reverse"))
    result = flowspec("fmt", "--check", str(tmp_path))
    assert result.returncode == 1
    assert "b.flow" in result.stdout + result.stderr

"""``.pre-commit-hooks.yaml`` (issue 11, "CI fit"): it parses, each hook names a real
``flowspec`` command with real options, its ``files`` pattern selects specs, and the
entry does what pre-commit will ask of it on the files pre-commit would pass."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import yaml
from conftest import ROOT

from flowspec.cli import build_parser

HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
BY_ID = {hook["id"]: hook for hook in HOOKS}

GOOD = "flow f {\n    input x: [4]\n    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n    x = coupling.affine(x, net=mlp)\n    output x\n}\n"  # noqa: E501
BAD = "flow f {\n    input x: [4]\n    x = reverse(y)\n    output x\n}\n"
YAML_SPEC = (
    "# a spec after a comment\nflowspec: 1\nflows:\n  - name: f\n"
    "    input: {name: x, shape: [4]}\n    body:\n      - {op: reverse, in: x}\n"
    "    output: [x]\n"
)
CI_YAML = "# CI configuration, not a spec\non: push\njobs: {}\n"


def test_the_hooks_file_lists_both_hooks_with_the_required_keys():
    assert isinstance(HOOKS, list) and set(BY_ID) == {"flowspec-check", "flowspec-fmt"}
    for hook in HOOKS:
        assert {"id", "name", "entry", "language", "files"} <= set(hook)
        assert hook["language"] == "python"


def _argv(hook: dict) -> list[str]:
    program, *argv = shlex.split(hook["entry"])
    # the console script pip installs (pyproject's [project.scripts])
    (script,) = entry_points(group="console_scripts", name=program)
    assert script.value == "flowspec.cli:main"
    return argv


@pytest.mark.parametrize("hook_id", ["flowspec-check", "flowspec-fmt"])
def test_each_entry_is_a_real_command_with_real_options(hook_id):
    argv = _argv(BY_ID[hook_id])
    args = build_parser().parse_args([*argv, "spec.flow"])  # a UsageError if not
    assert args.command == hook_id.removeprefix("flowspec-")
    assert args.run.__name__ == f"cmd_{args.command}"


def test_the_files_patterns_select_specs():
    check = re.compile(BY_ID["flowspec-check"]["files"])
    fmt = re.compile(BY_ID["flowspec-fmt"]["files"])
    for name in ("specs/a.flow", "b.yaml", "deep/c.yml"):
        assert check.search(name), name
    for name in ("a.py", "flow.txt", "a.flow.bak", "yaml"):
        assert not check.search(name), name
    assert fmt.search("a.flow") and not fmt.search("a.yaml")  # fmt formats .flow only


def _run(hook_id: str, *files: str, cwd) -> subprocess.CompletedProcess:
    argv = _argv(BY_ID[hook_id])
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *argv, *files],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_check_hook_skips_yaml_that_is_not_a_spec_and_fails_on_a_bad_spec(tmp_path):
    (tmp_path / "good.flow").write_text(GOOD)
    (tmp_path / "spec.yaml").write_text(YAML_SPEC)
    (tmp_path / "ci.yml").write_text(CI_YAML)
    (tmp_path / "bad.flow").write_text(BAD)
    done = _run("flowspec-check", "good.flow", "spec.yaml", "ci.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in 2 files" in done.stdout  # ci.yml skipped
    done = _run("flowspec-check", "good.flow", "ci.yml", "bad.flow", cwd=tmp_path)
    assert done.returncode == 1 and "bad.flow:3" in done.stdout
    # named without --specs-only, the CI file is checked (and is not a spec)
    plain = subprocess.run(
        [sys.executable, "-m", "flowspec", "check", "ci.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 1


def test_the_fmt_hook_rewrites_an_unformatted_spec(tmp_path):
    (tmp_path / "a.flow").write_text(GOOD.replace("    x = reverse(x)", "  x=reverse( x )"))
    done = _run("flowspec-fmt", "a.flow", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.flow").read_text() == GOOD
    assert _run("flowspec-fmt", "a.flow", cwd=tmp_path).stdout == ""

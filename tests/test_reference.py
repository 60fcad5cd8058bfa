"""The reference in docs/ stays generated from the registries, and the CLI shows it.

docs/blocks.md is generated from the block registry and docs/diagnostics.md from the
code registry (``python -m flowspec.reference --write``), as the README's code table
is; these tests keep the committed files equal to the generated text, check that every
kind and every code has its entry, that each code's example reports that code, that a
new kind needs nothing but regeneration, and drive ``flowspec kinds`` / ``flowspec
explain`` as a user runs them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from flowspec.core.diagnostics import CODES
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.kinds import KINDS, REGISTRY, BlockKind, Bound, Example
from flowspec.kinds.base import _same, _unbounded
from flowspec.kinds.options import Float, Option
from flowspec.reference import DOCS, generate
from flowspec.reference import blocks as reference_blocks
from flowspec.reference.codes import EXPLANATIONS
from flowspec.syntax.limits import MAX_BYTES, Limits

REGENERATE = "regenerate with `python -m flowspec.reference --write`"


def _committed(which: str) -> str:
    return (ROOT / DOCS[which]).read_text(encoding="utf-8")


@pytest.mark.parametrize("which", sorted(DOCS))
def test_committed_reference_equals_the_generated_text(which: str) -> None:
    assert _committed(which) == generate(which), f"{DOCS[which]} is stale: {REGENERATE}"


def test_every_kind_has_an_entry_with_every_option() -> None:
    text = _committed("blocks")
    for kind in KINDS:
        assert f"\n### `{kind.name}`\n" in text, kind.name
        entry = text.split(f"\n### `{kind.name}`\n", 1)[1].split("\n### ", 1)[0]
        assert reference_blocks.sentence(kind.summary) in entry
        assert "- **Log-det:** " in entry and "- **Inverse:** " in entry
        if kind.paper:
            assert kind.paper in entry
        for option in kind.options:
            assert f"  - `{option.name}`: " in entry, (kind.name, option.name)


def test_every_code_has_an_entry() -> None:
    text = _committed("diagnostics")
    for code in CODES.values():
        assert f"\n## {code.code} `{code.slug}`\n" in text
        assert code.description in text
    assert set(EXPLANATIONS) <= set(CODES), "an explanation of a code that does not exist"


@pytest.mark.parametrize("code", sorted(c for c, e in EXPLANATIONS.items() if e.example))
def test_each_code_example_reports_its_code(code: str) -> None:
    explanation = EXPLANATIONS[code]
    limits = Limits.of(MAX_BYTES, explanation.max_statements or 20_000)
    comp = Compilation(Source("example.flow", explanation.example), limits)
    assert [d.code for d in comp.diagnostics if d.code == code], comp.diagnostics
    # an example shows its own code first, not a different mistake
    assert comp.diagnostics[0].code == code or code.startswith("W")


def test_classes_are_described_by_the_options_that_change_them() -> None:
    entry = reference_blocks.kind_entry(REGISTRY["residual"])
    assert "`stochastic` by default; `exact-bruteforce` with `logdet=exact`" in entry
    assert "at the defaults: forward ≤ 1.97; inverse ≤ 33.33" in entry
    ode = reference_blocks.kind_entry(REGISTRY["ode"])
    assert "`stochastic` by default; `exact` with `trace=exact`" in ode
    split = reference_blocks.kind_entry(REGISTRY["split"])
    assert "`[6]` → `[1]`, `[2]`, `[3]`" in split  # the shape rule run on an example


def test_a_new_kind_needs_only_regeneration(monkeypatch: pytest.MonkeyPatch) -> None:
    # the README's "Adding a block kind" example, with one option: nothing in the
    # reference is edited, the generated text just has one more entry
    sinh = BlockKind(
        "sinh",
        "y = sinh(x)",
        "",
        (Option("gain", Float(0.0, 10.0, min_open=True), 1.0, doc="a made-up option"),),
        _same,
        "flowspec.runtime.elementwise:Sinh",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("sinh grows without bound"),
        inverse_lipschitz=lambda opts, shapes: Bound(1.0),
        features="elementwise",
        parameters=lambda opts, shapes: 0,
        examples=(Example(((3,),)),),
        math="y = sinh(x); ladj = Σ log cosh(x)",
    )
    monkeypatch.setattr(reference_blocks, "KINDS", (*KINDS, sinh))
    text = reference_blocks.blocks_markdown()
    entry = text.split("\n### `sinh`\n", 1)[1].split("\n## ", 1)[0]
    assert "x = sinh(x, gain=1.0)" in entry
    assert "- **Math:** y = sinh(x); ladj = Σ log cosh(x)." in entry
    assert "`gain`: a number in (0, 10]; default `1.0`; a made-up option." in entry
    assert "forward unbounded: sinh grows without bound; inverse ≤ 1" in entry
    assert "`[3]` → `[3]`" in entry
    assert "| [`sinh`](#sinh) | y = sinh(x) | analytic | analytic |" in text


def test_math_falls_back_to_the_runtime_docstring() -> None:
    # read from the source file: the reference never imports the runtime (torch)
    kind = REGISTRY["reverse"]
    text = reference_blocks.runtime_doc(kind)
    assert text.startswith("Reverse the order of the features")


def test_generating_the_block_reference_imports_no_torch() -> None:
    code = (
        "import sys; from flowspec.reference import generate, explain; generate('blocks'); "
        "explain('residual'); print(sorted(m for m in ('torch', 'flowspec.runtime.flow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_write_writes_every_generated_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flowspec.reference", "--write", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for which, rel in DOCS.items():
        assert (tmp_path / rel).read_text(encoding="utf-8") == generate(which)


# ------------------------------------------------------------------ the CLI


def flowspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *args], capture_output=True, text=True, timeout=120
    )


def test_kinds_lists_every_kind_with_its_summary() -> None:
    result = flowspec("kinds")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for kind in KINDS:
        assert any(
            re.match(rf"{re.escape(kind.name)}\s+{re.escape(kind.summary)}$", ln) for ln in lines
        )


def test_explain_a_kind_prints_its_entry() -> None:
    result = flowspec("explain", "coupling.affine")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# `coupling.affine`\n")
    assert (
        "x = coupling.affine(x, net=mlp(...), mask=half, flip=false, scale=softclamp"
        in result.stdout
    )
    assert "`scale`: one of `exp`, `sigmoid`, `softclamp`" in result.stdout
    assert "Real NVP, arXiv:1605.08803" in result.stdout


@pytest.mark.parametrize("name", ["E201", "e201"])
def test_explain_a_code_prints_its_entry(name: str) -> None:
    result = flowspec("explain", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# E201 `bad-argument`\n")
    assert "error[E201]: `bins` must be at least 1, got 0" in result.stdout


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("coupling.afine", "did you mean `coupling.affine`"), ("E2O1", "`E201`")],
)
def test_explain_an_unknown_name_is_a_usage_error_with_a_suggestion(
    name: str, suggestion: str
) -> None:
    result = flowspec("explain", name)
    assert result.returncode == 2
    assert (
        f"`{name}` is neither a block kind, a diagnostic code nor an option word" in result.stderr
    )
    assert suggestion in result.stderr
    assert result.stdout == ""


def test_explain_an_option_word_prints_its_table() -> None:
    result = flowspec("explain", "mlp")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Words: net\n")
    assert "`hidden`: a list of at most 64 widths, each 1 … 65,536" in result.stdout
    both = flowspec("explain", "exact").stdout  # a log-det estimator and a trace estimator
    assert "# Words: log-det estimator" in both and "# Words: trace estimator" in both


def test_explain_a_name_nothing_is_near() -> None:
    result = flowspec("explain", "zzzz")
    assert result.returncode == 2
    assert "`flowspec kinds` lists the kinds" in result.stderr

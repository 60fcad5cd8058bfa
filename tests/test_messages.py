"""Smaller items of issue 10: IAF's directions in ``summary``, ``check`` on a file that
cannot be read (E206), ``str(SpecError)``, and compile() on a missing file."""

from __future__ import annotations

from pathlib import Path

import pytest

import flowspec
from flowspec.core.diagnostics import SpecError
from flowspec.driver import Compilation
from flowspec.summary import summary_table

AR = """
flow ar {{
    input x: [4]
    x = autoregressive.{kind}(x, hidden=[8], iaf={iaf})
    output x
}}
"""


def _summary(text: str) -> str:
    comp = Compilation.of(text)
    return summary_table(comp, comp.flow_graph(None))


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_summary_says_iaf_is_sequential_in_the_density_direction(kind) -> None:
    iaf = _summary(AR.format(kind=kind, iaf="true"))
    row = next(line for line in iaf.splitlines() if line.startswith("0 "))
    assert row.split()[-3] == "analytic" and "sequential" not in row
    assert (
        f"block 0 (autoregressive.{kind}, line 4): the density direction (data → latent, "
        "log_prob) runs in sequential passes, one per feature; the inverse (sampling) is one "
        "pass"
    ) in iaf
    maf = _summary(AR.format(kind=kind, iaf="false"))
    row = next(line for line in maf.splitlines() if line.startswith("0 "))
    assert row.split()[-3] == "sequential" and "density direction" not in maf


def test_iaf_satisfies_analytic_inverse_and_maf_too() -> None:
    # sequential is still analytic (no iteration), for both directions
    for iaf in ("true", "false"):
        text = AR.format(kind="affine", iaf=iaf).replace(
            "input x: [4]", "input x: [4]\n    require analytic_inverse"
        )
        assert [d.code for d in flowspec.check(text)] == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("nope.flow", "spec file `nope.flow` does not exist"),
        ("missing/spec.yaml", "spec file `missing/spec.yaml` does not exist"),
    ],
)
def test_check_on_a_missing_file_returns_e206(name, says) -> None:
    (d,) = flowspec.check(name)
    assert (d.code, d.line, d.column, d.message) == ("E206", 1, 1, says)
    assert d.span.file == name


def test_check_on_a_directory_or_binary_file_returns_e206(tmp_path: Path) -> None:
    (d,) = flowspec.check(tmp_path)
    assert d.code == "E206" and "is a directory" in d.message
    binary = tmp_path / "model.flow"
    binary.write_bytes(b"\xff\xfe\x00flow")
    (d,) = flowspec.check(binary)
    assert d.code == "E206" and d.message == f"spec file `{binary}` is not UTF-8 text"


def test_compile_on_a_missing_file_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        flowspec.compile("nope.flow")
    assert [d.code for d in err.value.diagnostics] == ["E206"]


def test_spec_error_text_starts_with_the_diagnostic() -> None:
    with pytest.raises(SpecError) as err:
        flowspec.compile("flow f {\n    input x: [2]\n    x = nope(x)\n    output x\n}\n")
    text = str(err.value)
    assert text.startswith("error[E200]: ")
    assert text == err.value.render()


def test_w104_is_for_a_written_mlp_on_an_image_only() -> None:
    base = "flow f {{\n    input x: [{shape}]\n    x = residual(x{net})\n    output x\n}}\n"
    mlp = ", net=mlp(hidden=[8], act=lipswish)"
    (d,) = flowspec.check(base.format(shape="2, 2, 2", net=mlp))
    assert (d.code, d.line, d.column) == ("W104", 3, 21)
    assert flowspec.check(base.format(shape="8", net=mlp)) == []
    conv = ", net=conv(hidden=4, act=lipswish)"
    assert flowspec.check(base.format(shape="2, 2, 2", net=conv)) == []

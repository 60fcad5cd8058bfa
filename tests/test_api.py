"""flowspec.compile's contract: errors, flow selection, placement, training, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import flowspec
from flowspec.cli import main
from flowspec.datasets import two_moons

ROOT = Path(__file__).resolve().parent.parent
REALNVP = ROOT / "specs" / "realnvp.flow"

TWO_FLOWS = """
flow first {
    input x: [4]
    x = coupling.affine(x, net=mlp)
    x = reverse(x)
    x = coupling.affine(x, net=mlp)
    output x
}
flow second {
    input x: [3]
    x = affine(x)
    output x
}
"""


def test_spec_with_errors_raises_one_spec_error_rendered_like_check():
    bad = "flow f {\n    input x: [4]\n    x = leaky_relu(x, slope=0)\n    output x\n}\n"
    with pytest.raises(flowspec.SpecError) as info:
        flowspec.compile(bad)
    err = info.value
    assert [d.code for d in err.diagnostics] == ["E302"]
    text = str(err)
    assert "error[E302]" in text and "--> <string>:3:23" in text
    assert "^^^^^^^" in text


def test_flow_selection():
    with pytest.raises(ValueError, match="first, second"):
        flowspec.compile(TWO_FLOWS)
    assert flowspec.compile(TWO_FLOWS, flow="second").input_shape == (3,)
    with pytest.raises(ValueError, match="no flow named 'third'"):
        flowspec.compile(TWO_FLOWS, flow="third")


def test_dtype_and_spec_hash_ignore_layout():
    a = flowspec.compile(TWO_FLOWS, flow="second", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in a.parameters())
    relaid = TWO_FLOWS.replace("    x = affine(x)", "x   =   affine( x )  # a comment")
    b = flowspec.compile(relaid, flow="second")
    assert a.spec_hash == b.spec_hash
    c = flowspec.compile(TWO_FLOWS.replace("[3]", "[5]"), flow="second")
    assert c.spec_hash != a.spec_hash


def test_on_blocks_place_parameters_and_computation():
    spec = """
flow placed {
    input x: [4]
    x = affine(x)
    on meta { x = affine(x) }
    on "cpu" { x = affine(x) }
    output x
}
"""
    flow = flowspec.compile(spec)
    devices = [{p.device.type for p in getattr(flow, f"b{i}").parameters()} for i in range(3)]
    assert devices == [{"cpu"}, {"meta"}, {"cpu"}]
    source = flow.GENERATED_SOURCE
    assert ".to('meta')" in source and ".to(home)" in source
    # compile(device=) places the unplaced blocks; on meta the flow runs shape-only
    meta = flowspec.compile(spec.replace('on "cpu"', "on meta"), device="meta")
    z, ladj = meta(torch.empty(5, 4, device="meta"))
    assert z.shape == (5, 4) and ladj.shape == (5,)


def test_unavailable_device_is_a_diagnostic_not_a_traceback():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = "flow f {\n    input x: [2]\n    on cuda:1 { x = affine(x) }\n    output x\n}\n"
    assert flowspec.check(spec) == []  # placement is valid; the machine lacks it
    with pytest.raises(flowspec.SpecError) as info:
        flowspec.compile(spec)
    (d,) = info.value.diagnostics
    assert (d.code, d.line, d.column) == ("E500", 3, 8)


def test_compile_to_an_unavailable_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"device='cuda:3'.* not available"):
        flowspec.compile(REALNVP, device="cuda:3")


def test_training_realnvp_lowers_held_out_nll():
    torch.manual_seed(0)
    flow = flowspec.compile(REALNVP)
    g = torch.Generator().manual_seed(0)
    train, test = two_moons(8192, generator=g), two_moons(2048, generator=g)
    with torch.no_grad():
        before = -flow.log_prob(test).mean().item()
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    for _ in range(300):
        batch = train[torch.randint(0, len(train), (256,))]
        loss = -flow.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = -flow.log_prob(test).mean().item()
    # a standard normal fit of the standardised moons sits near 2.84 nats; a flow that
    # learned the two arcs is well below it
    assert before > 2.7
    assert after < before - 0.8, (before, after)


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_compile_writes_an_importable_module(tmp_path, capsys):
    target = tmp_path / "model.py"
    code, _, _ = run(["compile", str(REALNVP), "-o", str(target)], capsys)
    assert code == 0 and target.exists()
    text = target.read_text()
    assert "# line 7: x = coupling.affine(x, net=mlp(hidden=[64, 64], act=relu))" in text
    result = subprocess.run(
        [sys.executable, "-c", "import model; m = model.Model(); print(m.input_shape)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "(2,)"


def test_cli_compile_reports_errors_with_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.flow"
    bad.write_text("flow f {\n    input x: [4]\n    x = reverse(y)\n    output x\n}\n")
    code, _, err = run(["compile", str(bad), "-o", str(tmp_path / "m.py")], capsys)
    assert code == 1 and "error[E200]: unknown tensor `y`" in err
    assert not (tmp_path / "m.py").exists()


def test_cli_summary_table(capsys):
    code, out, _ = run(["summary", str(REALNVP)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("flow realnvp: input [2]")
    assert "coupling.affine" in out and "reverse" in out
    assert "total: 16 blocks" in out
    # 8 couplings × (2·64 + 64·64 + 64·2 (+ biases)) parameters
    per_coupling = (1 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2)
    assert f"{8 * per_coupling:,} parameters" in out


def test_cli_summary_of_a_spec_placed_on_a_device_this_machine_lacks(tmp_path, capsys):
    spec = tmp_path / "gpu.flow"
    spec.write_text(
        "flow f {\n    input x: [2]\n    on cuda:1 { x = affine(x) }\n    output x\n}\n"
    )
    code, out, err = run(["summary", str(spec)], capsys)
    assert code == 0, err
    assert "affine @cuda:1" in out and "4 parameters" in out


def test_cli_graph_dot_and_missing_graphviz(tmp_path, capsys, monkeypatch):
    dot = tmp_path / "flow.dot"
    code, _, _ = run(["graph", str(REALNVP), "-o", str(dot)], capsys)
    assert code == 0
    text = dot.read_text()
    assert text.startswith('digraph "realnvp"')
    # one DOT line break between the kind and the line (not an escaped backslash)
    assert (
        '[label="coupling.affine\\nnet=mlp(hidden=[64, 64], act=relu)\\nmask=half\\nline 7"];'
        in text
    )
    monkeypatch.setattr("shutil.which", lambda name: None)
    code, _, err = run(["graph", str(REALNVP), "-o", str(tmp_path / "flow.svg")], capsys)
    assert code == 2 and "graphviz" in err and "Traceback" not in err


def test_cli_check_json(capsys):
    code, out, _ = run(["check", "--format", "json", str(REALNVP)], capsys)
    assert code == 0 and json.loads(out) == []


@pytest.mark.skipif(
    __import__("shutil").which("dot") is None, reason="graphviz's dot is not installed"
)
def test_cli_graph_svg_through_graphviz(tmp_path, capsys):
    target = tmp_path / "flow.svg"
    code, _, _ = run(["graph", str(REALNVP), "-o", str(target)], capsys)
    assert code == 0
    svg = target.read_text()
    assert "<svg" in svg and "coupling.affine" in svg and "\\n" not in svg

"""Resources known before anything is allocated (issue 11).

Every registry entry counts its parameters from shapes and options alone; the proof
that each formula is right is that it equals the parameters of the built runtime block
for every example of every kind.  The flow-level count backs ``flowspec check
--max-params`` (E501) and ``flowspec summary``, neither of which builds a module.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness import cases, resolve_example, runtime_class, shape_rule_inputs

import flowspec
from flowspec.kinds import KINDS, REGISTRY, BlockKind, Example
from flowspec.kinds.options import Choice


@pytest.mark.parametrize(("kind", "example"), list(cases()))
def test_the_parameter_formula_equals_the_built_block(kind, example):
    opts = resolve_example(kind, example)
    block = runtime_class(kind)([tuple(s) for s in example.shapes], **opts)
    real = sum(p.numel() for p in block.parameters())
    assert kind.parameters(opts, shape_rule_inputs(example)) == real


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_gives_its_activation_size(kind):
    for example in kind.examples:
        n = kind.activations(resolve_example(kind, example), shape_rule_inputs(example))
        assert isinstance(n, int) and n >= 0


def test_a_kind_without_a_parameter_count_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match=r"block kind `scale` gives no `parameters=`"):
        BlockKind("scale", "y = s·x", "", (), lambda opts, shapes: shapes, "m:Scale")


def _lipswish(net: str, **options):
    return Choice(net, {"act": "lipswish", **options})


#: configurations the registry's examples do not reach: learned activations (LipSwish's
#: β), even kernels, deeper nets, an mlp on an image, a MADE without hidden layers
MORE = [
    ("coupling.affine", Example(((6,),), {"net": _lipswish("mlp", hidden=[5, 7])}, cond=(2,))),
    (
        "coupling.spline",
        Example(
            ((4, 4, 4),),
            {"mask": "channel", "net": _lipswish("conv", hidden=3, kernel=2, depth=3)},
        ),
    ),
    (
        "coupling.additive",
        Example(((2, 4, 4),), {"net": _lipswish("resnet", hidden=4, blocks=3)}, cond=(3, 4, 4)),
    ),
    ("autoregressive.affine", Example(((3,),), {"hidden": [], "act": "lipswish"}, cond=(2, 2))),
    ("autoregressive.spline", Example(((3,),), {"hidden": [4, 6], "act": "lipswish"})),
    ("residual", Example(((2, 3),), {"net": _lipswish("mlp", hidden=[4, 4])})),
    ("residual", Example(((2, 4, 4),), {"net": _lipswish("conv", hidden=3, kernel=1, depth=3)})),
    ("ode", Example(((2, 3, 3),), {"net": Choice("conv", {"hidden": 4, "act": "lipswish"})})),
    ("ode", Example(((2, 2, 2),), {"net": Choice("resnet", {"hidden": 2, "blocks": 1})})),
    ("ode", Example(((2, 2),), {"net": _lipswish("mlp", hidden=[3])})),
    ("actnorm", Example(((3, 2),))),
    ("invconv", Example(((5, 1, 2),))),
]


@pytest.mark.parametrize(
    ("name", "example"), MORE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MORE)]
)
def test_the_parameter_formula_equals_the_built_block_beyond_the_examples(name, example):
    test_the_parameter_formula_equals_the_built_block(REGISTRY[name], example)


# ------------------------------------------------- a 10¹² parameter spec (Must show)

#: exactly 10¹² parameters: one dense 10⁶ × 10⁶ matrix
TERA = """\
flow tera {
    input x: [1000000]
    x = linear(x, lu=false)
    output x
}
"""

#: issue 11's example: a typo'd input before an LU-parametrised `linear`
#: (2·10¹² + 10⁶ parameters), which used to crash summary and compile with 8 TB
TYPO = """\
flow typo {
    input x: [1000000]
    x = reverse(x)
    x = linear(x)
    x = reverse(x)
    output x
}
"""

#: runs `flowspec check` as its only child, so RUSAGE_CHILDREN is that process's alone
_MEASURE = """\
import resource, subprocess, sys, time
start = time.perf_counter()
r = subprocess.run([sys.executable, "-m", "flowspec", "check", sys.argv[1]],
                   capture_output=True, text=True)
took = time.perf_counter() - start
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(r.returncode, kb, took)
sys.stdout.write(r.stdout)
"""


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "big.flow"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_check_refuses_a_tera_parameter_spec_in_a_small_process(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", _MEASURE, _write(tmp_path, TERA)],
        capture_output=True,
        text=True,
        check=True,
    )
    head, output = r.stdout.split("\n", 1)
    status, kb, took = head.split()
    print(
        f"flowspec check of a 10^12 parameter spec: {float(took):.2f} s, {int(kb) / 1024:.0f} MB"
    )
    assert int(status) == 1
    assert "error[E501]: flow `tera` has 1,000,000,000,000 parameters" in output
    assert "big.flow:3:9" in output
    assert int(kb) < 200 * 1024  # Linux: ru_maxrss in KB


def test_summary_prints_the_count_of_a_tera_parameter_spec(run_cli, tmp_path):
    r = run_cli("summary", _write(tmp_path, TERA))
    assert r.status == 0, r.stderr
    assert "total: 1 blocks, 1,000,000,000,000 parameters" in r.stdout
    assert "(4.0 TB in float32" in r.stdout
    assert "over the limit of 2,000,000,000 parameters" in r.stdout


def test_compile_refuses_a_tera_parameter_spec_with_a_spec_error():
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(TERA)
    assert [(d.code, d.line, d.column) for d in e.value.diagnostics] == [("E501", 3, 9)]


def test_the_issue_example_is_rejected_by_check_at_the_linear():
    (d,) = flowspec.check(TYPO)
    assert (d.code, d.line, d.column) == ("E501", 4, 9)
    assert f"has {2 * 10**12 + 10**6:,} parameters" in d.message
    assert "the largest is this `linear`" in d.message


def test_e501_points_at_the_largest_contributors():
    text = """\
flow f {
    input x: [4096]
    repeat 3 {
        x = coupling.affine(x, net=mlp(hidden=[2048]))
        x = reverse(x)
    }
    x = affine(x)
    x = linear(x)
    output x
}
"""
    coupling = 3 * (2048 * 2048 + 2048 + 2048 * 4096 + 4096)
    linear = 2 * 4096 * 4096 + 4096
    total = coupling + linear + 2 * 4096
    (d,) = flowspec.check(text, max_params=10**6)
    assert (d.code, d.line, d.column) == ("E501", 4, 13)  # the repeated coupling, ×3
    assert f"has {total:,} parameters" in d.message
    assert f"`coupling.affine` ×3: {coupling:,} parameters" in d.message
    labels = [(label.span.line, label.span.column, label.message) for label in d.labels]
    assert labels[0][:2] == (8, 9) and f"`linear`: {linear:,} parameters" in labels[0][2]
    assert labels[1][:2] == (7, 9) and "`affine`: 8,192 parameters" in labels[1][2]
    assert len(labels) == 2  # reverse learns nothing: not a contributor
    assert flowspec.check(text, max_params=total) == []
    assert flowspec.check(text, max_params=0) == []


def test_check_takes_max_params_on_the_command_line(run_cli, tmp_path):
    path = _write(tmp_path, TYPO.replace("[1000000]", "[100]"))
    assert run_cli("check", path).status == 0
    r = run_cli("check", "--max-params", "20000", path)
    assert r.status == 1 and "error[E501]" in r.stdout and "over the limit of 20,000" in r.stdout
    assert run_cli("check", "--max-params", "0", _tera_file(tmp_path)).status == 0


def _tera_file(tmp_path) -> str:
    path = tmp_path / "tera.flow"
    path.write_text(TERA, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- the memory estimate


def test_the_memory_estimate_follows_its_documented_model():
    from flowspec.checks.resources import flow_resources
    from flowspec.driver import Compilation

    text = """\
flow f {
    input x: [4]
    x = reverse(x)
    x = coupling.affine(x, net=mlp(hidden=[8]))
    output x
}
"""
    res = flow_resources(Compilation.of(text).flow_graph())
    # the net: [2] → 8 → [2 parameters × 2 transformed features]
    assert res.parameters == (0, 2 * 8 + 8 + 8 * 4 + 4)
    assert res.activations == (0, 2 * 8 + 4)  # the hidden layer and its activation, the output
    # training keeps the input, both outputs and the net's layers
    assert res.training_per_sample == 4 + 4 + (4 + 20)
    # inference peaks in the coupling: its input and output, and its net's layers
    assert res.inference_per_sample == 4 + 4 + 20


def test_inference_counts_the_tensors_a_split_keeps_alive():
    from flowspec.checks.resources import flow_resources
    from flowspec.driver import Compilation

    text = """\
flow f {
    input x: [6]
    a, b = split(x)
    a = affine(a)
    x = concat(a, b)
    output x
}
"""
    res = flow_resources(Compilation.of(text).flow_graph())
    assert res.parameters == (0, 6, 0)
    # at the affine: b (3, waiting for the concat), a and the affine's output
    assert res.inference_per_sample == max(6 + 3 + 3, 3 + 3 + 3, 3 + 3 + 6)
    assert res.training_per_sample == 6 + 6 + 3 + 6


def test_the_readme_shows_what_summary_prints(run_cli):
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("### Parameters and memory, before anything is built")[1]
    shown = shown.split("```\n", 2)[1]
    r = run_cli("summary", ROOT / "specs" / "realnvp.flow")
    assert r.status == 0
    assert r.stdout.endswith(shown), (shown, r.stdout)

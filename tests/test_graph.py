"""``flowspec graph`` on real flows (issue 10, finding 10).

The IR records where each node came from (``Node.origin``: repeat iterations and block
calls); the diagram draws those as clusters, collapses a large flow's repeats to one
body labelled ``× N`` (``--expand`` draws every iteration), labels blocks with the
options that tell them apart, and has a legend for dashed (read-only: ``cond=``,
``context``) and dotted (carried to the next iteration) edges.  The DOT text is parsed
here into clusters, nodes and edges, so the tests check structure, not layout.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from conftest import ROOT

from flowspec.core.spans import Span
from flowspec.diagram import COLLAPSE_ABOVE, _period, to_dot
from flowspec.driver import Compilation, load_source
from flowspec.ir.graph import FlowGraph, Node, Tensor
from flowspec.kinds.options import Choice, TensorName
from flowspec.syntax.to_yaml import to_yaml

GLOW = ROOT / "specs" / "glow.flow"


def glow_text(steps: int) -> str:
    """specs/glow.flow with ``steps`` steps per level (32: the 96-step Glow)."""
    text = GLOW.read_text(encoding="utf-8")
    assert "let steps = 2" in text
    return text.replace("let steps = 2", f"let steps = {steps}")


def lowered(spec: str) -> FlowGraph:
    """The checked flow of a spec's text or path (the checker's annotations set)."""
    comp = Compilation(load_source(spec))
    assert not comp.errors, comp.errors
    return comp.flow_graph()


@dataclass
class Drawn:
    """A DOT text taken apart: clusters (label, parent index), nodes (label, the
    clusters holding them, innermost last) and edges (source, target, attributes)."""

    clusters: list[tuple[str, int | None]] = field(default_factory=list)
    nodes: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def labels(self, kind: str) -> list[str]:
        return [label for label, _ in self.nodes.values() if label.split("\\n")[0] == kind]

    def clusters_named(self, text: str) -> list[int]:
        return [i for i, (label, _) in enumerate(self.clusters) if text in label]

    def in_cluster(self, index: int) -> list[str]:
        return [label for label, where in self.nodes.values() if index in where]


NODE = re.compile(r'^\s*"([^"]+)" \[label="((?:[^"\\]|\\.)*)"')
EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\];$')
CLUSTER_LABEL = re.compile(r'^\s*label="((?:[^"\\]|\\.)*)";')


def parse(dot: str) -> Drawn:
    drawn, stack = Drawn(), []
    lines = dot.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("subgraph cluster_"):
            label = CLUSTER_LABEL.match(lines[i + 1])
            drawn.clusters.append((label.group(1) if label else "", stack[-1] if stack else None))
            stack.append(len(drawn.clusters) - 1)
        elif line.strip() == "}" and stack:
            stack.pop()
        elif m := EDGE.match(line):
            if not m.group(1).startswith("_legend"):
                drawn.edges.append((m.group(1), m.group(2), m.group(3)))
        elif m := NODE.match(line):
            drawn.nodes[m.group(1)] = (m.group(2), tuple(stack))
    return drawn


# ----------------------------------------------------------------- the IR


def test_nodes_record_their_repeat_iteration_and_block_call():
    fg = lowered(glow_text(2))
    couplings = [n for n in fg.blocks() if n.kind == "coupling.affine"]
    assert len(couplings) == 6
    first = couplings[0].origin
    assert [f.kind for f in first] == ["repeat", "block"]
    repeat, call = first
    assert (repeat.index, repeat.count, repeat.span.line) == (0, 2, 18)
    assert (call.name, call.span.line, call.args) == ("glow_step", 19, ())
    assert [n.origin[0].index for n in couplings] == [0, 1, 0, 1, 0, 1]
    # the third level's call writes hidden=64: the frame keeps it, evaluated
    assert couplings[-1].origin[1].args == (("hidden", 64),)
    squeeze = next(n for n in fg.blocks() if n.kind == "squeeze")
    assert squeeze.origin == ()


def test_origin_of_a_repeat_inside_a_block_inside_a_repeat_and_from_yaml():
    text = (
        "block pair(x, k=1) {\n"
        "    repeat k as j {\n"
        "        x = coupling.affine(x, net=mlp(hidden=[8]))\n"
        "        x = reverse(x)\n"
        "    }\n"
        "    return x\n"
        "}\n"
        "flow f {\n"
        "    input x: [4]\n"
        "    repeat 3 as i {\n"
        "        x = pair(x, k=i + 1)\n"
        "    }\n"
        "    output x\n"
        "}\n"
    )
    fg = lowered(text)
    frames = [
        [(f.kind, f.span.line, f.index, f.count, f.name, f.args) for f in n.origin]
        for n in fg.blocks()
    ]
    assert len(frames) == 2 * (1 + 2 + 3)
    assert frames[0] == [
        ("repeat", 10, 0, 3, "i", ()),
        ("block", 11, 0, 1, "pair", (("k", 1),)),
        ("repeat", 2, 0, 1, "j", ()),
    ]
    assert frames[-1][0][2] == 2 and frames[-1][2][2:4] == (2, 3)
    # YAML lowers to the same origins (lines differ; iterations, counts, names do not)
    yaml_fg = lowered(to_yaml(Compilation(load_source(text)).program))
    strip = [[(f.kind, f.index, f.count, f.name, f.args) for f in n.origin] for n in fg.blocks()]
    assert strip == [
        [(f.kind, f.index, f.count, f.name, f.args) for f in n.origin] for n in yaml_fg.blocks()
    ]


# --------------------------------------------------------------- collapsing


def test_the_96_step_glow_is_drawn_collapsed_by_default():
    fg = lowered(glow_text(32))
    assert len(fg.blocks()) > COLLAPSE_ABOVE
    drawn = parse(to_dot(fg))
    repeats = drawn.clusters_named("repeat × 32")
    assert len(repeats) == 3
    assert all("the body drawn once" in drawn.clusters[i][0] for i in repeats)
    steps = drawn.clusters_named("glow_step(")
    assert len(steps) == 3 and [drawn.clusters[i][1] for i in steps] == repeats
    assert "glow_step(hidden=64)" in drawn.clusters[steps[2]][0]
    # the body once per level: 3 couplings, not 96
    assert len(drawn.labels("coupling.affine")) == 3
    for i in steps:
        kinds = [label.split("\\n")[0] for label in drawn.in_cluster(i)]
        assert kinds == ["actnorm", "invconv", "coupling.affine"]
    # the tensor carried to the next iteration: one dotted edge back per level
    back = [e for e in drawn.edges if "style=dotted" in e[2] and "constraint=false" in e[2]]
    assert len(back) == 3
    assert all(drawn.nodes[a][0].startswith("coupling.affine") for a, _, _ in back)
    assert all(drawn.nodes[b][0].startswith("actnorm") for _, b, _ in back)
    assert "carried to the next iteration" in to_dot(fg)
    # the same diagram with collapse=True
    assert to_dot(fg, collapse=True) == to_dot(fg)


def test_expand_draws_every_iteration():
    fg = lowered(glow_text(32))
    drawn = parse(to_dot(fg, collapse=False))
    assert len(drawn.labels("coupling.affine")) == 96
    repeats = drawn.clusters_named("repeat × 32")
    assert len(repeats) == 3
    steps = drawn.clusters_named("glow_step(")
    assert len(steps) == 96
    for r in repeats:
        inside = [i for i in steps if drawn.clusters[i][1] == r]
        assert len(inside) == 32
        # each call carries its iteration (the iteration holds one item: the call)
        assert [drawn.clusters[i][0].rsplit("[", 1)[1] for i in inside] == [
            f"iteration {k}]" for k in range(32)
        ]
    assert not [e for e in drawn.edges if "style=dotted" in e[2]]
    assert "legend" not in to_dot(fg, collapse=False)


def test_a_small_flow_is_drawn_expanded_by_default():
    fg = lowered(str(ROOT / "specs" / "realnvp.flow"))
    assert len(fg.blocks()) <= COLLAPSE_ABOVE
    assert len(parse(to_dot(fg)).labels("coupling.affine")) == 8
    collapsed = parse(to_dot(fg, collapse=True))
    assert len(collapsed.labels("coupling.affine")) == 1
    assert collapsed.clusters_named("repeat × 8")


def test_options_that_change_with_the_index_are_shown_as_their_values():
    text = (
        "flow f {\n"
        "    input x: [4]\n"
        "    repeat 5 as i {\n"
        "        x = coupling.affine(x, net=mlp(hidden=[8]))\n"
        "        x = shuffle(x, seed=3 * i)\n"
        "    }\n"
        "    output x\n"
        "}\n"
    )
    fg = lowered(text)
    drawn = parse(to_dot(fg, collapse=True))
    (shuffle,) = drawn.labels("shuffle")
    assert "seed=0, 3, …, 12" in shuffle
    expanded = parse(to_dot(fg, collapse=False))
    assert sorted(label for label, _ in expanded.clusters) == sorted(
        ["repeat × 5   (line 3)", *(f"i = {k}" for k in range(5))]
    )
    assert [s.split("\\n")[1] for s in expanded.labels("shuffle")] == [
        f"seed={3 * k}" for k in range(5)
    ]


def test_iterations_that_differ_in_structure_are_drawn_one_period():
    text = (
        "flow f {\n"
        "    input x: [4]\n"
        "    repeat 4 as i {\n"
        "        x = coupling.affine(x, net=mlp(hidden=[8]))\n"
        "        repeat i % 2 + 1 {\n"
        "            x = reverse(x)\n"
        "        }\n"
        "    }\n"
        "    output x\n"
        "}\n"
    )
    fg = lowered(text)
    drawn = parse(to_dot(fg, collapse=True))
    (outer,) = drawn.clusters_named("repeat × 4")
    assert "2 iterations drawn, repeating" in drawn.clusters[outer][0]
    assert len(drawn.labels("coupling.affine")) == 2
    assert len(drawn.labels("reverse")) == 2  # the inner repeats × 1 and × 2, once each
    assert drawn.clusters_named("repeat × 2   (line 5; the body drawn once)")
    assert len(parse(to_dot(fg, collapse=False)).labels("reverse")) == 1 + 2 + 1 + 2


def test_iterations_without_blocks_are_counted_in_the_label():
    text = (
        "flow f {\n"
        "    input x: [4]\n"
        "    x = coupling.affine(x, net=mlp(hidden=[8]))\n"
        "    repeat 4 as i {\n"
        "        repeat i % 2 {\n"
        "            x = reverse(x)\n"
        "        }\n"
        "    }\n"
        "    output x\n"
        "}\n"
    )
    drawn = parse(to_dot(lowered(text), collapse=True))
    (outer,) = drawn.clusters_named("repeat × 4")
    assert drawn.clusters[outer][0] == (
        "repeat × 4   (line 4; 2 of the iterations hold blocks; the body drawn once)"
    )
    assert len(drawn.labels("reverse")) == 1


def test_the_period_is_the_brute_force_one():
    rng = random.Random(0)

    def brute(seq):
        return next(
            p for p in range(1, len(seq) + 1) if all(x == seq[i % p] for i, x in enumerate(seq))
        )

    for _ in range(2000):
        n = rng.randint(1, 12)
        seq = [rng.randint(0, 2) for _ in range(n)]
        if rng.random() < 0.5:  # make periodic sequences common
            seq = (seq[: rng.randint(1, n)] * n)[:n]
        assert _period(seq) == brute(seq), seq


# ------------------------------------------------------------------ labels


def test_flip_mask_order_and_the_net_tell_blocks_apart():
    text = (
        "flow f {\n"
        "    input x: [4]\n"
        "    x = coupling.affine(x, net=mlp(hidden=[16, 16]), mask=alternate)\n"
        "    x = coupling.affine(x, net=mlp(hidden=[16, 16]), mask=alternate, flip=true)\n"
        "    x = autoregressive.affine(x, order=reverse)\n"
        "    x = autoregressive.affine(x, order=random(seed=7), iaf=true)\n"
        "    output x\n"
        "}\n"
    )
    drawn = parse(to_dot(lowered(text)))
    plain, flipped = drawn.labels("coupling.affine")
    assert plain != flipped
    assert plain == "coupling.affine\\nnet=mlp(hidden=[16, 16])\\nmask=alternate\\nline 3"
    assert "flip=true" in flipped and "flip" not in plain
    natural, shuffled = drawn.labels("autoregressive.affine")
    assert "order=reverse" in natural
    assert "order=random(seed=7)" in shuffled and "iaf=true" in shuffled


def test_a_default_option_is_not_shown_but_mask_always_is():
    drawn = parse(to_dot(lowered(str(ROOT / "specs" / "maf.flow"))))
    labels = drawn.labels("autoregressive.affine")
    assert ["order=natural" in s for s in labels] == [True, False, False]
    assert "order=random(seed=0)" in labels[2] and "act=tanh" in labels[2]
    assert all("iaf" not in s for s in labels)  # iaf=false is the default
    nice = parse(to_dot(lowered(str(ROOT / "specs" / "nice.flow"))))
    assert all("mask=alternate" in s for s in nice.labels("coupling.additive"))


# ------------------------------------------------------------ edges, legend


def test_cond_edges_are_dashed_and_explained_by_the_legend():
    text = (
        "flow f {\n"
        "    input x: [4]\n"
        "    a, b = split(x)\n"
        "    b = coupling.affine(b, net=mlp(hidden=[8]), cond=a)\n"
        "    x = concat(a, b)\n"
        "    output x\n"
        "}\n"
    )
    dot = to_dot(lowered(text))
    drawn = parse(dot)
    dashed = [e for e in drawn.edges if "style=dashed" in e[2]]
    assert len(dashed) == 1 and 'label="a [2]"' in dashed[0][2]
    assert drawn.nodes[dashed[0][1]][0].startswith("coupling.affine")
    assert "read, not consumed: cond= / context" in dot
    assert "carried to the next iteration" not in dot


def _span(line: int) -> Span:
    return Span("ctx.flow", 0, 1, line, 1, line, 2)


def test_a_context_node_is_drawn_like_an_input_with_dashed_edges():
    """The ``context NAME: [..]`` statement (LANGUAGE.md §2) lowers to a node of kind
    ``"context"`` whose tensor only ``cond=`` reads; built by hand here."""
    fg = FlowGraph("cf", _span(1))
    fg.add_node(Node("in1", "input", _span(2), _span(2), outputs=("x#0",)))
    fg.add_node(Node("ctx2", "context", _span(3), _span(3), outputs=("y#1",)))
    coupling = Node(
        "n3",
        "coupling.affine",
        _span(4),
        _span(4),
        inputs=("x#0",),
        outputs=("x#2",),
        reads={"cond": "y#1"},
    )
    coupling.options = {
        "net": Choice("mlp", hidden=[8]),
        "mask": Choice("half"),
        "flip": True,
        "scale": Choice("softclamp"),
        "cond": TensorName("y", "y#1"),
    }
    fg.add_node(coupling)
    fg.add_node(Node("out4", "output", _span(5), _span(5), inputs=("x#2",)))
    fg.tensors = {
        "x#0": Tensor("x#0", "x", _span(2), "in1", (2,)),
        "y#1": Tensor("y#1", "y", _span(3), "ctx2", (3,)),
        "x#2": Tensor("x#2", "x", _span(4), "n3", (2,)),
    }
    fg.input_shape = (2,)
    fg.add_edge("in1", "n3", "x#0", False)
    fg.add_edge("ctx2", "n3", "y#1", True)
    fg.add_edge("n3", "out4", "x#2", False)
    dot = to_dot(fg)
    assert '"ctx2" [label="context y [3]", shape=oval, style="dashed"];' in dot
    assert '"ctx2" -> "n3" [label="y [3]", style=dashed];' in dot
    assert "cond=" not in parse(dot).nodes["n3"][0]  # the edge shows it, not the label
    assert "flip=true" in parse(dot).nodes["n3"][0]
    assert "read, not consumed: cond= / context" in dot


# --------------------------------------------------------------------- CLI


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", "graph", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_cli_collapses_by_default_and_expands_on_request(tmp_path):
    spec = tmp_path / "glow96.flow"
    spec.write_text(glow_text(32), encoding="utf-8")
    out = tmp_path / "g.dot"
    done = cli(str(spec), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote {out}\n"
    assert len(parse(out.read_text()).labels("coupling.affine")) == 3
    done = cli(str(spec), "-o", str(out), "--expand")
    assert done.returncode == 0, done.stderr
    assert len(parse(out.read_text()).labels("coupling.affine")) == 96
    small = ROOT / "specs" / "realnvp.flow"
    done = cli(str(small), "-o", str(out), "--collapse")
    assert done.returncode == 0, done.stderr
    assert len(parse(out.read_text()).labels("coupling.affine")) == 1
    done = cli(str(small), "-o", str(out), "--collapse", "--expand")
    assert done.returncode == 2 and "not allowed with" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_cli_renders_the_96_step_glow_as_a_picture_of_readable_size(tmp_path):
    spec = tmp_path / "glow96.flow"
    spec.write_text(glow_text(32), encoding="utf-8")
    svg = tmp_path / "g.svg"
    done = cli(str(spec), "-o", str(svg))
    assert done.returncode == 0, done.stderr
    text = svg.read_text()
    width, height = (
        float(v) for v in re.search(r'width="(\d+)pt" height="(\d+)pt"', text).groups()
    )
    # was 314 × 25,032 pt (410 × 32,767 px as PNG): now about 780 × 1,400 pt
    assert height < 2500 and width < 1500
    assert "repeat × 32" in text and "glow_step(hidden=64)" in text


def test_graph_never_imports_torch(tmp_path):
    """Drawing runs no generated code and needs no torch (README: Layout, reports)."""
    out = tmp_path / "g.dot"
    code = (
        "import sys\n"
        "from flowspec.cli import main\n"
        f"status = main(['graph', {str(GLOW)!r}, '-o', {str(out)!r}])\n"
        "assert status == 0, status\n"
        "assert 'torch' not in sys.modules, 'graph imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith('digraph "glow"')

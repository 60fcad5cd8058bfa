r"""Shapes (E202): run each block's shape rule in program order.

Annotates ``Node.in_shapes`` / ``out_shapes`` and ``Tensor.shape``; a block whose
inputs have unknown shapes (an earlier error) is skipped silently.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("a, b = split(x, sizes=[3, 3])\nx = concat(a, b)", "[5]")
    E202 3:21 split sizes [3, 3] add up to 6, but the axis has 5 features
    >>> diagnose("x = squeeze(x)", "[1, 3, 4]")
    E202 3:9 squeeze by 2 needs height and width divisible by 2, got 3×4
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic
from flowspec.ir.graph import FlowGraph
from flowspec.kinds import REGISTRY, ShapeError


def check_shapes(fg: FlowGraph) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for node in fg.blocks():
        if node.options is None or len(node.inputs) != node.n_positional:
            continue  # an unknown tensor argument was already reported (E200)
        shapes = [fg.tensors[t].shape for t in node.inputs]
        shapes += [fg.tensors[t].shape for t in node.reads.values()]
        if any(s is None for s in shapes):
            continue
        spec = REGISTRY[node.kind]
        try:
            out = spec.shape(node.options, shapes)
        except ShapeError as e:
            span = node.arg_span(e.option) if e.option else node.span
            diags.append(Diagnostic("E202", e.message, span, hint=e.hint))
            continue
        node.in_shapes = shapes
        node.out_shapes = out
        for tid, shape in zip(node.outputs, out):
            fg.tensors[tid].shape = tuple(shape)
    return diags

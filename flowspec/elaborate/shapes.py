r"""Elaboration, step 2 — shapes (E202): run each block's shape rule in program order.

Records ``Node.in_shapes`` / ``out_shapes`` and ``Tensor.shape``; a block whose options
did not resolve, or whose inputs have unknown shapes (an earlier error), is skipped
silently.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("a, b = split(x, sizes=[3, 3])\nx = concat(a, b)", "[5]")
    E202 3:21 split sizes [3, 3] add up to 6, but the axis has 5 features
    >>> diagnose("x = squeeze(x)", "[1, 3, 4]")
    E202 3:9 squeeze by 2 needs height and width divisible by 2, got 3×4

An input whose first axis is 1 is usually a batch axis written into the shape; a shape
error then says so (``help: shapes exclude the batch axis ...``).
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic
from flowspec.ir.graph import FlowGraph
from flowspec.kinds import REGISTRY, ShapeError


def _with_batch_axis_help(fg: FlowGraph, message: str, span, hint: str | None) -> Diagnostic:
    """E202, with a help line when ``input`` looks like it holds a batch axis of 1."""
    shape = fg.input_shape
    if not shape or len(shape) < 2 or shape[0] != 1:
        return Diagnostic("E202", message, span, hint=hint)
    name = fg.tensors[fg.input].name if fg.input in fg.tensors else "x"
    rest = ", ".join(map(str, shape[1:]))
    batch = (
        f"shapes exclude the batch axis: `input {name}: {list(shape)}` has a first axis of 1; "
        f"did you mean `input {name}: [{rest}]`?"
    )
    if hint is None:
        return Diagnostic("E202", message, span, hint=batch)
    return Diagnostic("E202", message, span, hint=hint, notes=(batch,))


def infer_shapes(fg: FlowGraph) -> list[Diagnostic]:
    """Infer the shape of every tensor of ``fg`` from its blocks' shape rules."""
    diags: list[Diagnostic] = []
    for node in fg.blocks():
        if node.options is None or len(node.inputs) != node.n_positional:
            continue  # an unknown tensor argument was already reported (E200)
        known = [fg.tensors[t].shape for t in (*node.inputs, *node.reads.values())]
        shapes = [s for s in known if s is not None]
        if len(shapes) != len(known):
            continue
        spec = REGISTRY[node.kind]
        try:
            out = spec.shape(node.options, shapes)
        except ShapeError as e:
            span = node.arg_span(e.option) if e.option else node.span
            diags.append(_with_batch_axis_help(fg, e.message, span, e.hint))
            continue
        node.in_shapes = shapes
        node.out_shapes = out
        for tid, shape in zip(node.outputs, out):
            fg.tensors[tid].shape = tuple(shape)
    return diags

"""Elaboration: the stage between lowering and the checks.

Lowering leaves each block's options as written.  Elaboration resolves them against
the registry (:mod:`flowspec.elaborate.options`: E200, E201) and then infers every
tensor's shape (:mod:`flowspec.elaborate.shapes`: E202).  Its result is a
:class:`~flowspec.ir.resolved.ResolvedFlow`, which the checks (read-only), the code
generator and ``summary`` read; nothing after this stage writes to the graph.
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic
from flowspec.elaborate.options import resolve_arguments
from flowspec.elaborate.shapes import infer_shapes
from flowspec.ir.graph import FlowGraph
from flowspec.ir.resolved import ResolvedFlow


def elaborate(fg: FlowGraph) -> tuple[ResolvedFlow, list[Diagnostic]]:
    """Resolve ``fg``'s options, then its shapes; the view of the result, and the
    problems found."""
    diags = resolve_arguments(fg)
    diags += infer_shapes(fg)
    return ResolvedFlow.of(fg), diags


__all__ = ["ResolvedFlow", "elaborate"]

"""Blocks no flow calls are checked too: a typo in an unused block is still a typo.

An unused block is lowered as if it were called once with its defaults.  Its tensor
parameters have no shape without a call, so what is checked is what needs none: names
(tensors, constants, block kinds, options, requirements), statement structure, the
``return``, recursion, and each block's options (the arguments pass).  Shapes,
consumption and the flow-wide properties are checked where the block is called.

    block b(x) {
        x = coupling.afine(x)         # E200 unknown block kind, even if no flow calls b
        return x
    }
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowspec.ir.graph import INPUT, FlowGraph, Node
from flowspec.syntax import ast

if TYPE_CHECKING:
    from flowspec.ir.lower import _Lowerer


def check_unused_blocks(lowerer: _Lowerer, program: ast.Program) -> None:
    """Lower every block definition no call has expanded, recording the diagnostics."""
    from flowspec.elaborate.options import resolve_arguments
    from flowspec.ir.lower import _Abort, _Scope

    for block in program.blocks:
        if id(block) in lowerer.expanded:  # a block expanded here expands its callees
            continue
        fg = FlowGraph(f"block {block.name.id}", block.span)
        stack = ((block.name.id, block.span),)  # so a call of itself is E203
        scope = _Scope({}, lowerer.constants(lowerer.defaults(block)), None, stack)
        params = lowerer.new_node(
            fg, Node(lowerer.fresh("in"), INPUT, block.span, block.name.span)
        )
        params.outputs = tuple(
            lowerer.bind(fg, scope, p.name, params.id) for p in block.params if p.default is None
        )
        try:
            returned = lowerer.block_body(fg, block, scope)
            if returned is not None:
                lowerer.returned_tensors(returned, scope)
        except _Abort:
            continue
        lowerer.diagnostics.extend(resolve_arguments(fg))
